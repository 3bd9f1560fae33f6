"""The session on disk: saved as it changes, restored after a restart or a crash,
Undo discard, and every accepted take exported to one .mid.

A tiny random RWKV-7 on a fake clock (as in test_engine_session.py): what is
checked is the bookkeeping (takes, numbers, accepted marks, settings, the
re-primed context), not the music.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
import symusic

from copilot_app.engine.clock import FakeClock, InternalGrid, Meter
from copilot_app.engine.player import Player
from copilot_app.engine.session import LiveSession, SessionSettings
from copilot_app.engine.session_store import (VERSION, SavedSession, SessionFileError, SessionStore, decode,
                                              encode, latest_session, load_or_fresh, new_session_path,
                                              read_session)
from copilot_app.engine.take_export import NothingToExport, write_accepted
from copilot_app.engine.take_export import restrikes_end_notes as trimmed
from model.tokens.config import TICKS_PER_QUARTER
from tests.test_engine_player import RecordingPort
from tests.test_engine_session import BPM, PHRASE, play, tiny_model  # noqa: F401 (fixture)


def fresh(model, meter=Meter(), settings=None, start=0.0):
    clock = FakeClock()
    clock.set(start)
    player = Player(RecordingPort(), clock)
    return LiveSession(model, player, InternalGrid(BPM, meter, origin=start), clock,
                       settings or SessionSettings(seed=1, variations=2)), clock


def made_session(model, path):
    """Three takes, the second discarded, the third accepted with variation 2; saved to ``path``."""
    session, clock = fresh(model)
    assert session.use_store(SessionStore(path, background=False)) is None  # no file yet: a new session
    play(session, clock, PHRASE)
    first = session.trigger(2.0)
    play(session, clock, [(6.0, "on", 62, 50), (6.4, "off", 62)])
    second = session.trigger(6.5)
    third = session.trigger(12.5)
    session.discard(second)
    session.accept(third, 1, now=13.0)
    session.settings.temperature = 0.7
    session.save()
    return session, clock, (first, second, third)


def test_round_trip_same_takes_numbers_go_on_and_accepted_marks_stay(tiny_model, tmp_path):
    path = tmp_path / "sessions" / "s.json"
    old, _clock, (first, second, third) = made_session(tiny_model, path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "composer-copilot-session" and doc["version"] == VERSION

    new, clock = fresh(tiny_model, start=500.0)  # a restart: another process, another clock
    assert new.use_store(SessionStore(path, background=False)) is None
    assert [t.number for t in new.takes] == [1, 3]
    assert new.takes == [first, third]               # notes, tempo, meter, model: equal values
    assert new.library.view(3).accepted == 1 and new.library.view(1).accepted is None
    assert new.settings.temperature == 0.7 and new.settings.variations == 2
    assert [p.source for p in new.library.phrases] == [p.source for p in old.library.phrases]
    # The context is re-primed from the saved notes: an answer goes on at once, numbered after 3.
    assert new._context_notes, "nothing re-primed"
    fourth = new.trigger(501.0)
    assert fourth.number == 4 and fourth.timeline > third.timeline
    assert fourth.start_quarters >= new.quarters_at(501.0) - 1e-9
    # Undo discard works across the restart too: take 2 comes back, in its place.
    assert new.undo_discard() == second
    assert [t.number for t in new.takes] == [1, 2, 3, 4]
    assert new.undo_discard() is None


def test_undo_discard_brings_back_the_take_and_its_accepted_mark(tiny_model):
    session, clock = fresh(tiny_model)
    play(session, clock, PHRASE)
    first = session.trigger(2.0)
    second = session.trigger(6.5)
    session.accept(first, 1, now=7.0)
    session.discard(first)
    session.discard(second)
    assert session.takes == []
    assert session.undo_discard() is second
    assert session.undo_discard() is first
    assert [t.number for t in session.takes] == [1, 2]
    assert session.library.view(1).accepted == 1
    assert session.trigger(12.5).number == 3


def test_a_crash_mid_write_leaves_the_previous_file_loadable(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    session, clock, _takes = made_session(tiny_model, path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", crash)
    errors: list[str] = []
    session.store.on_error = errors.append
    session.trigger(16.5)
    session.save()
    assert len(errors) == 1 and "not saved" in errors[0] and "s.json" in errors[0]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left behind
    monkeypatch.undo()
    assert [v.take.number for v in read_session(path).takes] == [1, 3]
    session.save()  # the next change gets through
    assert [v.take.number for v in read_session(path).takes] == [1, 3, 4]


@pytest.mark.parametrize("content, words", [
    (b"{not json", "unreadable JSON"),
    (b'{"format": "composer-copilot-session", "version": 99, "takes": []}', "newer"),
    (b'{"format": "composer-copilot-session", "version": 1, "takes": [{"number": 1}]}', "damaged"),
    (b'{"format": "composer-copilot-session", "version": 1, "takes": [{"number": 1, "start_quarters": 0,'
     b' "velocity": 80, "tempo_bpm": 120, "meter": [4, 4], "variations": [[[0, 24, 300, 80]]]}]}', "pitch"),
    (b'["a list"]', "not a Composer Copilot session"),
])
def test_a_bad_or_future_file_gives_one_line_and_a_fresh_session_and_is_kept(tiny_model, tmp_path,
                                                                              content, words):
    path = tmp_path / "s.json"
    path.write_bytes(content)
    session, _clock = fresh(tiny_model)
    message = session.use_store(SessionStore(path, background=False))
    assert message is not None and words in message and "\n" not in message and "kept as" in message
    assert session.takes == [] and session.library.last_number == 0
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("s.json.unreadable-")]
    assert len(kept) == 1 and kept[0].read_bytes() == content  # set aside, not overwritten
    assert read_session(path).takes == ()  # the fresh session is saved where it was
    assert latest_session(tmp_path) == path


def test_decode_rejects_bad_values_with_one_line():
    good = encode(SavedSession())
    assert decode(good) == SavedSession(settings={})
    doc = json.loads(good)
    doc["context"] = [[0, 24, 60, 0]]  # velocity 0 is not a note
    with pytest.raises(SessionFileError, match="velocity"):
        decode(json.dumps(doc).encode(), "x.json")
    doc["context"] = []
    doc["settings"] = {"temperature": "hot", "bars": 3, "nonsense": 1, "seed": None}
    assert decode(json.dumps(doc).encode()).settings == {"bars": 3, "seed": None}  # unknown/mistyped dropped


def test_background_store_writes_the_latest_and_flushes_on_close(tmp_path):
    path = tmp_path / "s.json"
    store = SessionStore(path)
    for n in range(20):
        store.save(SavedSession(last_number=n))
    assert store.flush(10.0)
    assert read_session(path).last_number == 19
    store.close()
    store.save(SavedSession(last_number=42))  # after close: written at once
    assert read_session(path).last_number == 42


def test_new_session_paths_and_latest(tmp_path):
    assert latest_session(tmp_path / "none") is None
    a = new_session_path(tmp_path)
    a.write_text("{}")
    b = new_session_path(tmp_path)
    assert a != b and b.suffix == ".json"
    b.write_text("{}")
    os.utime(a, (1, 1))
    assert latest_session(tmp_path) == b
    assert load_or_fresh(tmp_path / "missing.json").session is None


def test_export_all_accepted_takes_one_track_each_tempo_and_meter_kept(tiny_model, tmp_path):
    waltz, clock = fresh(tiny_model, meter=Meter(3, 4))
    play(waltz, clock, PHRASE)
    a = waltz.trigger(2.0)
    waltz.accept(a, 1, now=3.0)
    out = tmp_path / "all.mid"
    with pytest.raises(NothingToExport):
        write_accepted(out, [])
    # A second session in another tempo and meter (views are what a snapshot carries).
    other, clock2 = fresh(tiny_model, meter=Meter(6, 8))
    other.set_tempo(90.0, now=0.0)
    play(other, clock2, PHRASE)
    b = other.trigger(3.0)
    c = other.trigger(9.0)  # not accepted: not exported
    other.accept(b, 0, now=10.0)
    b_view = other.library.view(b)
    views = [waltz.library.view(a), b_view, other.library.view(c)]
    views[1] = replace(b_view, take=replace(b, number=5))  # numbers differ within one session
    assert write_accepted(out, views) == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "all.mid"]  # atomic: no temp file left
    score = symusic.Score(str(out))
    assert [t.name for t in score.tracks] == ["Composer Copilot take 1 variation 2",
                                              "Composer Copilot take 5 variation 1"]
    tpq = score.ticks_per_quarter
    assert [round(t.qpm, 3) for t in score.tempos] == [120.0, 90.0]
    assert [(s.numerator, s.denominator) for s in score.time_signatures] == [(3, 4), (6, 8)]
    second_start = score.tempos[1].time
    assert score.time_signatures[1].time == second_start and second_start % (3 * tpq) == 0
    first, second = score.tracks
    assert len(first.notes) == len(trimmed(a.notes(1))) and len(second.notes) == len(trimmed(b.notes(0)))
    assert all(n.time < second_start for n in first.notes)
    assert all(n.time >= second_start for n in second.notes)
    # Each track's notes keep their place in the bar and their velocity.
    bar = int(3 * TICKS_PER_QUARTER)
    origin = int(round(a.start_quarters * TICKS_PER_QUARTER)) // bar * bar
    want = sorted((n.start - origin, n.pitch, n.velocity) for n in trimmed(a.notes(1)))
    got = sorted((n.time * TICKS_PER_QUARTER // tpq, n.pitch, n.velocity) for n in first.notes)
    assert got == want


def test_the_engine_saves_as_it_goes_so_a_crash_loses_nothing_made(tiny_model, tmp_path):
    """Through LiveEngine's commands: every change reaches the file while the engine
    runs (no close: as if the process were killed), a new session gets its own file."""
    from copilot_app.engine.live import LiveEngine, wait_until

    path = tmp_path / "sessions" / "a.json"
    errors: list[str] = []
    engine = LiveEngine(tiny_model, RecordingPort(), settings=SessionSettings(seed=2, trigger_beats=0, variations=2),
                        on_error=errors.append)
    engine.start()
    try:
        engine.use_session(path)

        def saved() -> list[tuple[int, int | None]]:
            try:
                return [(v.take.number, v.accepted) for v in read_session(path).takes]
            except (OSError, SessionFileError):
                return []
        engine.trigger()
        engine.trigger()
        assert wait_until(lambda: [n for n, _ in saved()] == [1, 2], 20.0)
        engine.accept(1, 1)
        assert wait_until(lambda: saved() == [(1, 1), (2, None)], 5.0)
        engine.discard(2)
        assert wait_until(lambda: saved() == [(1, 1)] and len(read_session(path).discarded) == 1, 5.0)
        engine.undo_discard()
        assert wait_until(lambda: saved() == [(1, 1), (2, None)], 5.0)
        engine.update_settings(temperature=0.5)
        assert wait_until(lambda: read_session(path).settings.get("temperature") == 0.5, 5.0)
        other = tmp_path / "sessions" / "b.json"
        engine.new_session(other)
        assert wait_until(lambda: other.is_file() and read_session(other).takes == (), 5.0)
        engine.trigger()
        assert wait_until(lambda: [v.take.number for v in read_session(other).takes] == [1], 20.0)
        assert saved() == [(1, 1), (2, None)]  # the first session is left as it was
    finally:
        engine.close()
    assert errors == []
