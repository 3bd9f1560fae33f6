"""The live session on a fake clock with fake ports and a tiny real RWKV-7.

Random weights are fine here: the grammar and time-floor masks must make any
model's answer valid REMI that starts on the grid where it should, and the
Player must leave nothing hanging.
"""
from __future__ import annotations

import mido
import pytest
import torch

from copilot_app.engine.clock import FakeClock, InternalGrid, Meter
from copilot_app.engine.dynamics import phrase_dynamics
from copilot_app.engine.midi_input import Stamped, route
from copilot_app.engine.player import Player
from copilot_app.engine.session import LiveSession, SessionSettings
from model import RWKV7, RWKVConfig
from model.tokens.config import build_tokenizer
from model.tokens.grammar import RemiGrammar
from model.tokens.streaming import DecodedNote
from tests.test_engine_player import RecordingPort, balance

BPM = 120.0  # 0.5 s a beat, 2 s a 4/4 bar


@pytest.fixture(scope="module")
def tiny_model() -> RWKV7:
    torch.manual_seed(0)
    cfg = RWKVConfig(vocab_size=len(build_tokenizer().vocab), n_layer=2, n_embd=64, head_size=32)
    model = RWKV7(cfg).eval()
    with torch.no_grad():  # zero-init output projections would make every answer alike
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def make_session(model, settings=None, meter=Meter()):
    clock, port = FakeClock(), RecordingPort()
    player = Player(port, clock)
    session = LiveSession(model, player, InternalGrid(BPM, meter, origin=0.0), clock,
                          settings or SessionSettings(seed=1))
    return session, player, port, clock


def play(session, clock, phrase):
    """phrase: (time_s, 'on'|'off', pitch[, velocity]) in time order."""
    for t, kind, pitch, *vel in phrase:
        clock.set(t)
        msg = (mido.Message("note_on", note=pitch, velocity=vel[0] if vel else 90) if kind == "on"
               else mido.Message("note_off", note=pitch))
        session.handle(route(Stamped(t, msg)))


PHRASE = [(0.0, "on", 60, 70), (0.45, "off", 60), (0.5, "on", 64, 90), (0.95, "off", 64),
          (1.0, "on", 67, 110), (1.0, "on", 72, 80), (1.9, "off", 67), (1.9, "off", 72)]


def test_notes_become_tokens_in_the_model_state_as_they_are_final(tiny_model):
    session, *_rest, clock = make_session(tiny_model)
    before = session.stats.tokens_in
    play(session, clock, PHRASE)
    session.poll(2.2)
    assert session.stats.notes_in == 4
    # Bar, TimeSig, 3 positions, 4 x (Pitch, Duration) are final once the
    # clock passes the last note-off: nothing waits for the trigger.
    assert session.stats.tokens_in - before >= 2 + 3 + 8


def test_silence_triggers_a_take_on_the_next_bar(tiny_model):
    session, player, port, clock = make_session(tiny_model)
    play(session, clock, PHRASE)
    assert session.poll(2.8) is None                   # 0.9 s of silence < 2 beats
    take = session.poll(2.95)                          # 1.05 s >= 2 beats (1.0 s)
    assert take is not None and take.start_quarters == pytest.approx(8.0)  # bar 2 at 4.0 s
    notes = take.notes()
    assert notes, "a 2-bar answer with no notes"
    assert all(8 * 24 <= n.start < 16 * 24 for n in notes)  # inside bars 2-3 (24 ticks a quarter)
    # Nothing plays before the bar line; then notes go out at their times.
    player.pump(3.99)
    assert not any(m.type == "note_on" for m in port.messages)
    clock.set(4.0 + notes[0].start_quarters * 0.5 - 8 * 0.5 + 1e-9)  # float slack: the session sums differently
    player.pump()
    assert any(m.type == "note_on" and m.note == notes[0].pitch for m in port.messages)
    player.pump(100.0)
    assert balance(port.messages) == {}
    # The answer follows the player's dynamics (dynamics.py): within the
    # phrase's range (70-110), louder on the beats the player accented, and the
    # take keeps each note's velocity (audition, export).
    sent = [m.velocity for m in port.messages if m.type == "note_on" and m.velocity > 0]
    assert sent and all(70 <= v <= 110 for v in sent)
    assert sorted(sent) == sorted(n.velocity for n in notes)
    dyn = phrase_dynamics([(0, 70), (24, 90), (48, 110), (48, 80)], 96)
    assert [n.velocity for n in notes] == [dyn.velocity(n.start, 8 * 24) for n in notes]


def test_fixed_velocity_setting_plays_every_answer_note_at_it(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=1, fixed_velocity=64))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    player.pump(100.0)
    assert take.notes() and {n.velocity for n in take.notes()} == {64}
    assert {m.velocity for m in port.messages if m.type == "note_on" and m.velocity > 0} == {64}


def test_answers_to_a_soft_phrase_are_softer_than_to_a_loud_one(tiny_model):
    levels = {}
    for scale in (0.5, 1.0):
        session, *_rest, clock = make_session(tiny_model)
        play(session, clock, [(t, kind, pitch, *(round(v * scale) for v in vel))
                              for t, kind, pitch, *vel in PHRASE])
        take = session.trigger(2.0)
        levels[scale] = [n.velocity for n in take.notes()]
    assert levels[1.0] and max(levels[0.5]) < min(levels[1.0])


def test_take_tokens_are_valid_remi_after_the_context(tiny_model):
    settings = SessionSettings(seed=3, variations=3, temperature=1.5, top_p=1.0)
    session, *_rest, clock = make_session(tiny_model, settings)
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    assert len(take.variations) == 3
    assert len({tuple(v) for v in take.variations}) > 1  # different variations
    for notes in take.variations:
        starts = [n.start for n in notes]
        assert starts == sorted(starts)
        assert all(21 <= n.pitch <= 108 for n in notes)


def test_same_seed_same_take(tiny_model):
    takes = []
    for _ in range(2):
        session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=7, variations=2))
        play(session, clock, PHRASE)
        takes.append(session.trigger(2.0).variations)
    assert takes[0] == takes[1]


def test_barge_in_stops_playback_cleanly_and_joins_the_context(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=2, start_on="now"))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    assert take.notes()
    player.pump(2.0 + 0.3)
    tokens_before = session.stats.tokens_in
    play(session, clock, [(2.31, "on", 62), (2.6, "off", 62)])
    assert session.library.view(take).interrupted and player.pending == 0 and player.open_notes == set()
    assert balance(port.messages) == {}
    session.poll(3.5)
    assert session.stats.tokens_in > tokens_before  # the new note went into the state


def test_trigger_key_and_controller(tiny_model):
    session, _player, _port, clock = make_session(
        tiny_model, SessionSettings(seed=4, trigger_key=108, trigger_cc=67, trigger_beats=0))
    play(session, clock, PHRASE[:4])
    clock.set(1.2)
    take = session.handle(route(Stamped(1.2, mido.Message("note_on", note=108, velocity=60))))
    assert take is not None and session.stats.notes_in == 2  # the trigger key is not a note
    assert session.poll(30.0) is None  # silence trigger is off
    play(session, clock, [(31.0, "on", 65), (31.4, "off", 65)])
    cc = lambda v: route(Stamped(31.5, mido.Message("control_change", control=67, value=v)))
    assert session.handle(cc(127)) is not None
    assert session.handle(cc(127)) is None  # held down: no second take
    session.handle(cc(0))


def test_variations_audition_and_accept(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=5, variations=3))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    session.next_variation(now=2.1)
    assert session.library.view(take).auditioned == 1
    session.previous_variation(now=2.1)
    session.previous_variation(now=2.1)
    assert session.library.view(take).auditioned == 2
    assert session.accept() is take and session.library.view(take).accepted == 2
    player.pump(60.0)
    session.stop()
    assert balance(port.messages) == {}


def test_waltz_meter_bars_have_three_beats(tiny_model):
    session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=6), meter=Meter(3, 4))
    play(session, clock, [(0.0, "on", 60), (1.4, "off", 60)])
    take = session.trigger(1.5)
    assert take.start_quarters == pytest.approx(3.0)  # the 3/4 bar line
    assert all(3 * 24 <= n.start < 9 * 24 for n in take.notes())
    grammar = RemiGrammar()
    assert grammar.v.timesig  # the tokenizer knows 3/4


def test_midi_clock_from_the_daw_sets_the_grid(tiny_model):
    from copilot_app.engine.clock import MidiClockGrid

    clock, port = FakeClock(), RecordingPort()
    grid = MidiClockGrid()
    session = LiveSession(tiny_model, Player(port, clock), grid, clock, SessionSettings(seed=1))
    session.handle(route(Stamped(0.0, mido.Message("start"))))
    t = 0.0
    for _ in range(24 * 4):  # one bar at 100 BPM
        t += 60 / (100 * 24)
        session.handle(route(Stamped(t, mido.Message("clock"))))
    assert grid.bpm == pytest.approx(100) and grid.beat_at(t) == pytest.approx(4.0)
    session.handle(route(Stamped(t, mido.Message("songpos", pos=32))))  # bar 3 in sixteenths
    assert grid.beat_at(t) == pytest.approx(8.0)
    play(session, clock, [(t + 0.01, "on", 60), (t + 0.5, "off", 60)])
    take = session.trigger(t + 0.6)
    assert take.start_quarters == pytest.approx(12.0)  # the DAW's next bar line


def test_answer_prepared_during_the_pause_is_the_same_take(tiny_model):
    takes = {}
    for ahead in (True, False):
        session, player, port, clock = make_session(
            tiny_model, SessionSettings(seed=11, variations=2, prepare_ahead=ahead))
        play(session, clock, PHRASE)
        assert session.poll(2.1) is None                    # the pause begins: prepared now
        assert (session._prepared is not None) == ahead
        take = session.poll(2.95)
        assert take is not None and take.prepared == ahead
        takes[ahead] = take.variations
        player.pump(100.0)
        assert balance(port.messages) == {}
    assert takes[True] == takes[False]


def test_playing_again_drops_or_stops_the_prepared_answer(tiny_model):
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=12))
    play(session, clock, PHRASE)
    session.poll(2.1)
    first = session._prepared
    assert first is not None
    play(session, clock, [(2.3, "on", 62), (2.6, "off", 62)])   # the player goes on
    session.poll(2.8)             # the new note's tokens make a new context: prepared anew
    assert session._prepared is not first and session._prepared.version > first.version
    take = session.poll(3.7)
    assert take is not None and take.prepared
    assert take.variations is not first.variations

    # A note arriving while the answer is being prepared stops the preparation.
    arrivals = iter(range(1000))
    clock = FakeClock()
    session = LiveSession(tiny_model, Player(RecordingPort(), clock), InternalGrid(BPM, origin=0.0), clock,
                          SessionSettings(seed=13, bars=8),
                          input_counter=lambda: next(arrivals))  # "input keeps arriving"
    play(session, clock, PHRASE)
    session.poll(2.1)
    assert session._prepared is None


def test_an_older_take_can_be_auditioned_and_a_playing_take_discarded(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=21, variations=2))
    play(session, clock, PHRASE)
    first = session.trigger(2.0)
    play(session, clock, [(6.0, "on", 62), (6.4, "off", 62)])
    second = session.trigger(6.5)
    assert session.playing is second and first.notes(1), "the tiny model answered with silence"
    # Audition variation 2 of the *first* take (not the last): from the next bar line (8.0 s).
    assert session.audition(1, now=7.0, take=first.number) is first
    views = session.library
    assert views.view(first).auditioned == 1 and views.view(second).auditioned == 0
    assert session.playing is first
    shift = session.quarters_at(8.0) - first.start_quarters
    want = sorted(session._planned(n, first.velocity, shift).start for n in first.notes(1))
    assert player.pending == 2 * len(want)  # a note-on and a note-off each
    player.pump(want[0] + 0.001)           # its first note sounds now
    assert player.open_notes
    # Discarding the take that plays stops it, with every note-off.
    assert session.discard(first) is first
    assert first not in session.takes and session.playing is None
    assert player.pending == 0 and player.open_notes == set()
    assert balance(port.messages) == {}
    assert session.discard(first) is None  # already gone
    # Discarding a take that is not playing leaves playback alone.
    third = session.trigger(12.5)
    assert third.number == 3                # numbers are never given twice
    pending = player.pending
    assert session.discard(second) is second and player.pending == pending
    assert session.takes == [third]
    player.pump(100.0)
    assert balance(port.messages) == {}


def test_accept_any_take_with_a_chosen_variation(tiny_model):
    session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=22, variations=3))
    play(session, clock, PHRASE)
    first = session.trigger(2.0)
    second = session.trigger(2.5)
    assert session.accept(first, 2) is first and session.library.view(first).accepted == 2
    assert session.library.view(second).accepted is None
    assert session.accept() is second        # default: the last take, as before


def test_set_tempo_keeps_the_beat_and_the_quarters(tiny_model):
    session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=23, start_on="bar"))
    play(session, clock, PHRASE)
    before = session.quarters_at(3.0)         # 120 BPM: 6 quarters at 3.0 s
    session.set_tempo(60.0, now=3.0)
    assert session.quarters_at(3.0) == pytest.approx(before)
    assert session.grid.bpm == 60.0 and session.grid.seconds_per_beat == pytest.approx(1.0)
    # The next bar line (quarter 8) is now 2 s away, not 1 s.
    assert session.grid.next_boundary(3.0, "bar") == pytest.approx(5.0)
    take = session.trigger(3.0)
    assert take.start_quarters == pytest.approx(8.0)
    with pytest.raises(ValueError):
        session.set_tempo(5.0)


def test_set_grid_starts_a_new_timeline_and_keeps_the_takes(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=24, start_on="now"))
    play(session, clock, PHRASE)
    # A take with known notes (not the model's), auditioned so it sounds at 4.0 s.
    take = session.record_take(8.0, [[DecodedNote(8 * 24, 48, 60, 90), DecodedNote(9 * 24, 48, 64, 90)]], 90)
    session.audition(0, now=2.1, take=take)  # from the next bar line, 4.0 s
    clock.set(4.1)
    player.pump(4.1)
    assert player.open_notes
    clock.set(4.3)
    session.set_grid(InternalGrid(BPM, Meter(3, 4), origin=4.3))
    # Playback stopped with its note-offs; the context starts over on the new grid.
    assert player.pending == 0 and player.open_notes == set() and balance(port.messages) == {}
    assert session.grid.meter == Meter(3, 4) and session.quarters_at(4.3) == 0.0
    assert session.takes == [take] and session.playing is None
    assert session.runner.logits is not None  # BOS and the 3/4 TimeSig went in
    session.settings.start_on = "bar"
    play(session, clock, [(4.3, "on", 60), (5.7, "off", 60)])
    second = session.trigger(5.8)
    assert second.number == 2
    assert second.start_quarters == pytest.approx(3.0)  # the new grid's first 3/4 bar line
    player.pump(100.0)
    assert balance(port.messages) == {}


def test_empty_bars_enter_the_state_as_they_pass_so_an_answer_starts_in_the_current_bar(tiny_model):
    settings = SessionSettings(seed=2, trigger_beats=0, start_on="bar")  # answers only when asked
    session, player, port, clock = make_session(tiny_model, settings)
    play(session, clock, PHRASE)  # the first bar (0-2 s at 120 BPM)
    session.poll(1.95)
    before = session.stats.tokens_in
    assert session.poll(4.5) is None  # the 2nd and 3rd bars have begun, nobody played
    assert session.stats.tokens_in - before == 4  # Bar/TimeSig, twice
    steps = []
    real_step = tiny_model.step
    tiny_model.step = lambda *a, **kw: steps.append(1) or real_step(*a, **kw)
    try:
        take = session.trigger(4.5)
    finally:
        del tiny_model.step
    notes = take.notes()
    assert notes and all(n.start >= 3 * 4 * 24 for n in notes)  # from the 4th bar, the next bar line
    player.pump(100.0)
    assert balance(port.messages) == {}
    assert session.settings.trigger_beats == 0 and steps  # sampled from the state, not re-primed


# -- the session model: accept, phrases from files, models, numbering --------------------

def test_the_accepted_mark_stays_when_another_variation_is_auditioned(tiny_model):
    session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=31, variations=3))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    session.audition(1, now=2.1, take=take)
    session.accept(take, now=2.1)                    # accept what is auditioned: variation 2
    session.previous_variation(now=2.2, take=take)   # <- auditions variation 1
    view = session.library.view(take)
    assert view.auditioned == 0 and view.accepted == 1


def test_the_accepted_variation_is_the_context_the_next_answer_continues(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=32, variations=3,
                                                                            trigger_beats=0))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    accepted = next(i for i, v in enumerate(take.variations) if v)  # one with notes
    clock.set(9.0)
    session.accept(take, accepted, now=9.0)
    assert session.library.phrase.source == "accepted"
    nxt = session.trigger(9.0)
    # The next answer's context holds the accepted notes, in their place, and comes after them.
    placed = {(n.start, n.pitch) for n in nxt.context}
    assert {(n.start, n.pitch) for n in take.notes(accepted)} <= placed
    end = max(n.start + n.duration for n in take.notes(accepted)) / 24
    assert nxt.start_quarters >= end
    # Another variation accepted: a different context.
    other = next(i for i, v in enumerate(take.variations) if i != accepted)
    session.accept(take, other, now=9.5)
    assert session.library.view(take).accepted == other
    player.pump(100.0)
    session.stop()
    assert balance(port.messages) == {}


def test_accepting_while_the_take_plays_answers_after_it(tiny_model):
    session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=33, bars=2, trigger_beats=0))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)                # plays from bar 2 (4.0 s) to bar 4 (8.0 s)
    session.accept(take, 0, now=2.5)           # accepted before it has even started
    nxt = session.trigger(2.6)
    assert nxt.start_quarters >= 16.0          # not on top of the accepted take


def write_phrase_file(path, tempo: float, meters, notes) -> None:
    from model.tokens.midi_io import write_notes
    from model.tokens.performance import GridNote

    write_notes(path, [GridNote(*n) for n in notes], meters, tempo, name="phrase")


def test_an_opened_file_is_the_context_in_its_tempo_and_meter(tiny_model, tmp_path):
    from copilot_app.engine.phrase_file import read_phrase

    # 104 BPM, 2/4: eight quarter notes of a C major scale (four bars).
    path = tmp_path / "scale.mid"
    write_phrase_file(path, 104.0, [(0, 2, 4)],
                      [(i * 24, 24, p, 80) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])
    phrase = read_phrase(path)
    assert phrase.meter == Meter(2, 4) and round(phrase.tempo_bpm) == 104
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=34, trigger_beats=0))
    play(session, clock, [(0.0, "on", 61), (0.3, "off", 61)])     # something played before
    clock.set(3.0)
    placed = session.open_phrase(phrase, now=3.0)
    assert session.grid.bpm == pytest.approx(104.0) and session.grid.meter == Meter(2, 4)
    assert placed.source == "file" and [n.pitch for n in placed.notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert session.quarters_at(3.0) == pytest.approx(8.0)          # the file ends now
    first = session.trigger(3.0)
    clock.set(20.0)
    again = session.trigger(20.0)                                  # Continue later: still the file
    for take in (first, again):
        assert [n.pitch for n in take.context][-8:] == [60, 62, 64, 65, 67, 69, 71, 72]
        assert 61 not in {n.pitch for n in take.context}           # not what was played before
        assert take.meter == Meter(2, 4) and take.tempo_bpm == pytest.approx(104.0)
        assert take.start_quarters % 2 == 0                        # on a 2/4 bar line
        assert all(n.start < take.start_quarters * 24 + 2 * 2 * 24 for n in take.notes())  # 2 bars of 2/4
    # Played at the file's tempo: a quarter lasts 60/104 s.
    assert session.time_at_quarters(1.0) - session.time_at_quarters(0.0) == pytest.approx(60 / 104)
    player.pump(100.0)
    assert balance(port.messages) == {}


def test_a_stray_short_bar_at_the_end_does_not_set_the_meter(tmp_path):
    from copilot_app.engine.phrase_file import read_phrase

    path = tmp_path / "stray.mid"
    bars = [(b * 96 + i * 24, 24, 60 + i, 80) for b in range(3) for i in range(4)]
    write_phrase_file(path, 90.0, [(0, 4, 4), (3 * 96, 1, 4)], bars + [(3 * 96, 24, 72, 80)])
    phrase = read_phrase(path)
    assert phrase.meter == Meter(4, 4)


def test_take_numbers_never_repeat_and_old_takes_audition_after_a_model_switch(tiny_model):
    session, player, port, clock = make_session(tiny_model, SessionSettings(seed=35, start_on="now"))
    play(session, clock, PHRASE)
    first = session.trigger(2.0)
    assert first.notes(), "the tiny model answered with silence"
    other = RWKV7(tiny_model.cfg).eval()
    session.set_model(other, "other")
    assert session.runner.model is other
    session.set_grid(InternalGrid(BPM, Meter(3, 4), origin=3.0))     # and a new timeline
    play(session, clock, [(3.5, "on", 64), (3.8, "off", 64)])
    second = session.trigger(4.0)
    assert (first.number, second.number) == (1, 2) and second.model == "other"
    session.discard(second)
    third = session.trigger(4.5)
    assert third.number == 3
    # The first take (old model, old timeline) still auditions: its notes go to the Player.
    assert session.audition(0, now=5.0, take=first) is first
    assert player.pending == 2 * len(first.notes(0))
    player.pump(100.0)
    assert balance(port.messages) == {}


def test_answers_need_a_model_and_come_once_one_is_set(tiny_model):
    from copilot_app.engine.session import NoModelError

    clock, port = FakeClock(), RecordingPort()
    session = LiveSession(None, Player(port, clock), InternalGrid(BPM, origin=0.0), clock,
                          SessionSettings(seed=36))
    play(session, clock, PHRASE)
    with pytest.raises(NoModelError, match="no model loaded"):
        session.trigger(2.0)
    session.set_model(tiny_model, "tiny")
    # The phrase played before the model came is in the new model's context.
    take = session.trigger(2.0)
    assert {n.pitch for n in take.context} == {60, 64, 67, 72}


def test_playing_after_an_opened_file_goes_on_from_the_file(tiny_model, tmp_path):
    from copilot_app.engine.phrase_file import read_phrase

    path = tmp_path / "scale.mid"
    write_phrase_file(path, 120.0, [(0, 4, 4)], [(i * 24, 24, p, 80) for i, p in enumerate([60, 62, 64, 65])])
    session, *_rest, clock = make_session(tiny_model, SessionSettings(seed=37, trigger_beats=0))
    clock.set(1.0)
    session.open_phrase(read_phrase(path), now=1.0)     # ends at quarter 4, bar 2 starts now
    play(session, clock, [(1.5, "on", 67), (1.9, "off", 67)])
    take = session.trigger(2.0)
    assert [n.pitch for n in take.context] == [60, 62, 64, 65, 67]
    assert take.context[-1].start == 5 * 24            # played one quarter after the file's end
