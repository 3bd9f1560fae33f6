"""Steering in the live session: key/scale lock, register, regenerate from bar N, more like this.

A tiny random RWKV-7 (as in test_engine_session): the masks must hold for any
model, and the forks must reproduce exactly what sampling from the state
by hand gives.
"""
from __future__ import annotations

import pytest
import torch

from copilot_app.engine.session import SessionSettings
from copilot_app.engine.session_model import SessionEvent
from copilot_app.engine.take_forks import FORK_TAKES, NoForkError
from model.generation import generate
from model.scales import scale_pitch_classes
from tests.test_engine_session import PHRASE, make_session, play, tiny_model  # noqa: F401 -- fixture

BAR_TICKS = 4 * 24  # 4/4 at 24 ticks a quarter


def answered(model, **settings):
    session, player, port, clock = make_session(model, SessionSettings(seed=3, variations=3, bars=4, **settings))
    play(session, clock, PHRASE)
    take = session.trigger(2.0)
    return session, take, clock


def test_a_locked_key_and_register_hold_for_every_note_of_every_variation(tiny_model):
    session, take, _ = answered(tiny_model, key="F# blues", register_low=50, register_high=70)
    notes = [n for v in take.variations for n in v]
    assert len(notes) > 10
    scale = scale_pitch_classes(6, "blues")
    assert all(n.pitch % 12 in scale and 50 <= n.pitch <= 70 for n in notes)
    # Without the lock the same seed leaves the scale: the mask did the work.
    _, free, _ = answered(tiny_model)
    assert any(n.pitch % 12 not in scale for v in free.variations for n in v)


def test_the_auto_register_is_the_phrase_widened_and_the_auto_key_is_shown(tiny_model):
    session, take, _ = answered(tiny_model, key="auto")
    snap = session.snapshot(SessionEvent("take"))
    assert snap.register == (60 - 5, 72 + 5)  # PHRASE spans 60-72; REGISTER_MARGIN 5
    assert snap.heard_key == "C major"
    assert all(55 <= n.pitch <= 77 for v in take.variations for n in v)
    assert all(n.pitch % 12 in scale_pitch_classes(0, "major") for v in take.variations for n in v)


def test_single_line_texture_gives_one_note_per_onset(tiny_model):
    _, take, _ = answered(tiny_model, texture=-1.0)
    for v in take.variations:
        onsets = [n.start for n in v]
        assert v and len(onsets) == len(set(onsets))


def test_bad_steering_settings_are_refused_in_one_line():
    for bad in ({"key": "H major"}, {"key": "C bebop"}, {"density": 2.0}, {"texture": -1.5}):
        with pytest.raises(ValueError) as err:
            SessionSettings(**bad).steering()
        assert "\n" not in str(err.value)


def test_regenerate_from_bar_3_keeps_bars_1_2_and_samples_from_the_forked_state(tiny_model):
    session, take, clock = answered(tiny_model)
    forks = session.forks.get(take.number, session.runner.model)
    start = take.start_quarters * 24
    new = session.regenerate(take, variation=1, bar=3, now=clock.now())
    assert new.number == take.number + 1 and new.derived_from == f"take {take.number} variation 2 from bar 3"
    cut = start + 2 * BAR_TICKS
    kept = [n for n in take.notes(1) if n.start < cut]
    assert len(new.variations) == 3
    for v in new.variations:
        assert [n for n in v if n.start < cut] == kept
        assert all(cut <= n.start < start + 4 * BAR_TICKS for n in v[len(kept):])
    # The new bars are what sampling from the take's own state at bar 3 gives.
    tick, _count, fork = forks.fork_at(1, 3)
    rows = generate(session.runner.model, fork.state, fork.logits, fork.track, tick, forks.end, 3,
                    session.settings.sampling(), seed=session.settings.seed, steer=session._steer())
    assert [[(n.start + forks.origin_ticks, n.pitch) for n in r] for r in rows] == \
        [[(n.start, n.pitch) for n in v[len(kept):]] for v in new.variations]
    # The new take can itself be regenerated (its forks are kept), and auditions.
    assert session.library.playing == new.number
    again = session.regenerate(new, variation=0, bar=4, now=clock.now())
    assert [n for n in again.notes(0) if n.start < start + 3 * BAR_TICKS] == \
        [n for n in new.notes(0) if n.start < start + 3 * BAR_TICKS]


def test_regenerate_from_bar_1_is_a_fresh_take_from_the_same_context(tiny_model):
    session, take, clock = answered(tiny_model)
    new = session.regenerate(take, variation=0, bar=1, now=clock.now())
    assert all(take.start_quarters * 24 <= n.start for v in new.variations for n in v)
    with pytest.raises(ValueError, match="no bar 9"):
        session.regenerate(take, variation=0, bar=9, now=clock.now())


def test_more_like_this_samples_after_the_accepted_variation_and_plays_in_its_place(tiny_model):
    session, take, clock = answered(tiny_model)
    session.accept(take, 2, now=clock.now())
    new = session.more_like_this(take, now=clock.now())
    assert new.derived_from == f"more like take {take.number}"
    start, end = take.start_quarters * 24, take.start_quarters * 24 + 4 * BAR_TICKS
    assert any(new.variations)
    assert all(start <= n.start < end for v in new.variations for n in v)
    # ... from the state after the accepted variation: replayed by hand, the same notes.
    forks = session.forks.get(take.number, session.runner.model)
    after = forks.after(2)
    rows = generate(session.runner.model, after.state, after.logits, after.track, forks.end,
                    2 * forks.end - forks.start, 3, session.settings.sampling(), seed=session.settings.seed,
                    steer=session.settings.steering().resolve(take.context))
    span = forks.end - forks.start
    assert [[n.start + forks.origin_ticks - span for n in r] for r in rows] == \
        [[n.start for n in v] for v in new.variations]


def test_old_takes_and_other_models_cannot_be_sampled_again_with_one_line(tiny_model):
    session, take, clock = answered(tiny_model)
    for _ in range(FORK_TAKES):
        session.trigger(clock.now())
    with pytest.raises(NoForkError) as err:
        session.regenerate(take, bar=2, now=clock.now())
    assert "\n" not in str(err.value) and f"take {take.number}" in str(err.value)
    last = session.library.takes()[-1]
    session.set_model(tiny_model, "again")  # same weights, new runner: the states still belong to them
    session.regenerate(last, bar=2, now=clock.now())
    other = torch.nn.Module()
    session.forks.put(99, session.forks.get(last.number, tiny_model))
    with pytest.raises(NoForkError):
        session.forks.get(99, other)


def test_steering_settings_are_saved_with_the_session_and_a_bad_key_falls_back(tiny_model, tmp_path):
    from copilot_app.engine.session_store import decode, encode

    session, take, clock = answered(tiny_model, key="D dorian", register_low=48, density=0.5, texture=-1.0)
    saved = decode(encode(session.saved()))
    assert {k: saved.settings[k] for k in ("key", "register_low", "register_high", "density", "texture")} == \
        {"key": "D dorian", "register_low": 48, "register_high": None, "density": 0.5, "texture": -1.0}
    other, *_ = make_session(tiny_model)
    other.load_saved(saved)
    assert other.settings.steering() == session.settings.steering()
    tampered = session.saved()
    tampered.settings["key"] = "H major"
    back = decode(encode(tampered))
    assert "key" not in back.settings and back.settings["bars"] == 4  # the rest of the settings kept


def test_more_like_this_follows_the_variation_asked_for(tiny_model):
    session, take, clock = answered(tiny_model)
    forks = session.forks.get(take.number, session.runner.model)
    new = session.more_like_this(take, variation=1, now=clock.now())
    after = forks.after(1)
    rows = generate(session.runner.model, after.state, after.logits, after.track, forks.end,
                    2 * forks.end - forks.start, 3, session.settings.sampling(), seed=session.settings.seed,
                    steer=session.settings.steering().resolve(take.context))
    span = forks.end - forks.start
    assert [[(n.start + forks.origin_ticks - span, n.pitch) for n in r] for r in rows] == \
        [[(n.start, n.pitch) for n in v] for v in new.variations]
    with pytest.raises(ValueError, match="no variation 4"):
        session.more_like_this(take, variation=3, now=clock.now())


def test_a_bar_lines_copied_state_and_its_replay_from_the_ids_agree(tiny_model):
    session, take, clock = answered(tiny_model)
    forks = session.forks.get(take.number, session.runner.model)
    checked = 0
    for v, copies in enumerate(forks.states):
        for tick, copied in copies.items():
            replayed = forks.replay(v, forks.bars[v][tick])
            for a, b in ((copied.state.wkv, replayed.state.wkv), (copied.state.att_x, replayed.state.att_x),
                         (copied.logits, replayed.logits)):
                torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-3)
            assert replayed.track.bar_start_tick == copied.track.bar_start_tick == tick
            checked += 1
    assert checked >= 3  # every row of a 4-bar take crosses bar lines after its first note


def test_the_end_of_a_variation_is_replayed_from_its_last_copied_bar_line(tiny_model):
    session, take, clock = answered(tiny_model)
    forks = session.forks.get(take.number, session.runner.model)
    v = 0
    last = max(forks.states[v], key=lambda t: forks.bars[v][t])
    calls = []
    real = forks.model.prefill
    forks.model.prefill = lambda ids, state: calls.append(ids.shape[1]) or real(ids, state)
    try:
        after = forks.after(v)
    finally:
        del forks.model.prefill
    assert calls == [len(forks.tokens[v]) - forks.bars[v][last]]  # only the ids after the last copy
    full = forks.model.prefill(torch.tensor([forks.tokens[v]]), forks.initial.state)
    torch.testing.assert_close(after.logits, full[0][0], atol=2e-4, rtol=1e-3)


def test_the_heard_key_follows_the_player_into_a_new_key(tiny_model):
    from copilot_app.engine.clock import FakeClock, InternalGrid
    from copilot_app.engine.player import Player
    from copilot_app.engine.session import LiveSession
    from tests.test_engine_player import RecordingPort

    clock = FakeClock()
    session = LiveSession(tiny_model, Player(RecordingPort(), clock), InternalGrid(120.0, origin=0.0), clock,
                          SessionSettings(seed=1, key="auto", trigger_beats=0))
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    f_sharp_major = [p + 6 for p in c_major]

    def play_bars(scale, first_bar, bars):
        events = []
        for b in range(first_bar, first_bar + bars):
            for i, pitch in enumerate(scale):
                t = b * 2.0 + i * 0.25  # eighth notes at 120 BPM: a scale a bar
                events += [(t, "on", pitch), (t + 0.2, "off", pitch)]
        play(session, clock, events)
        session.poll(clock.now() + 0.5)

    play_bars(c_major, 0, 4)
    assert session.snapshot(SessionEvent("settings")).heard_key == "C major"
    assert session._steer().key == (0, "major")
    play_bars(f_sharp_major, 4, 4)  # four bars later only the new key is heard
    assert session.snapshot(SessionEvent("settings")).heard_key == "F# major"
    assert session._steer().key == (6, "major")
