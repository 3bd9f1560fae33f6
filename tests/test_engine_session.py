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
    clock.set(4.0 + notes[0].start_beats * 0.5 - 8 * 0.5 + 1e-9)  # float slack: the session sums differently
    player.pump()
    assert any(m.type == "note_on" and m.note == notes[0].pitch for m in port.messages)
    player.pump(100.0)
    assert balance(port.messages) == {}
    # The answer follows the player's dynamics (median velocity of the phrase).
    assert {m.velocity for m in port.messages if m.type == "note_on"} == {85}


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
    assert take.interrupted and player.pending == 0 and player.open_notes == set()
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
    assert take.chosen == 1
    session.previous_variation(now=2.1)
    session.previous_variation(now=2.1)
    assert take.chosen == 2
    assert session.accept() is take and take.accepted
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
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=13, bars=8))
    arrivals = iter(range(1000))
    session.input_counter = lambda: next(arrivals)               # "input keeps arriving"
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
    assert first.chosen == 1 and second.chosen == 0 and session.playing is first
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
    assert session.accept(first, 2) is first and first.accepted and first.chosen == 2
    assert not second.accepted
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
