"""LiveEngine with its threads: odd MIDI never breaks a session; commands work."""
from __future__ import annotations

import time

import mido

from copilot_app.engine.clock import InternalGrid, MonotonicClock
from copilot_app.engine.live import LiveEngine, wait_until
from copilot_app.engine.session import SessionSettings
from tests.test_engine_player import RecordingPort, balance
from tests.test_engine_session import tiny_model  # noqa: F401  (fixture)

ODD = [
    mido.Message("sysex", data=[0x7E, 0x7F, 0x06, 0x01]),
    mido.Message("note_on", channel=9, note=36, velocity=120),   # drums on channel 10
    mido.Message("note_on", note=5, velocity=90),                 # below the piano
    mido.Message("note_on", note=127, velocity=90),               # above it
    mido.Message("note_off", note=70),                            # off without on
    mido.Message("clock"), mido.Message("clock"),                 # clock without Start
    mido.Message("songpos", pos=12),
    mido.Message("aftertouch", value=40),
    mido.Message("pitchwheel", pitch=3000),
    mido.Message("control_change", control=64, value=127),
    mido.Message("control_change", control=64, value=0),
    mido.Message("program_change", program=12),
]


def test_odd_midi_then_a_phrase_still_gets_an_answer(tiny_model):  # noqa: F811
    port, errors, takes = RecordingPort(), [], []
    clock = MonotonicClock()
    engine = LiveEngine(tiny_model, port, InternalGrid(400.0, origin=clock.now()),
                        SessionSettings(seed=1, trigger_beats=2, bars=1, start_on="beat"),
                        clock, on_take=takes.append, on_error=errors.append)
    with engine:
        for msg in ODD:
            engine.midi_callback(msg)
        for pitch in (60, 62, 64):
            engine.midi_callback(mido.Message("note_on", note=pitch, velocity=80))
            time.sleep(0.06)
            engine.midi_callback(mido.Message("note_on", note=pitch, velocity=0))  # velocity-0 off
        assert wait_until(lambda: takes, timeout=20)
        assert wait_until(lambda: any(m.type == "note_on" for m in port.messages), timeout=20)
    assert errors == []
    assert engine.session.stats.notes_in == 3
    assert engine.session.stats.ignored  # the odd ones were counted, not played
    assert balance(port.messages) == {}


def test_commands_run_on_the_engine_thread(tiny_model):  # noqa: F811
    port, takes = RecordingPort(), []
    engine = LiveEngine(tiny_model, port, settings=SessionSettings(seed=2, trigger_beats=0, variations=2),
                        on_take=takes.append)
    with engine:
        engine.update_settings(temperature=0.6, top_p=0.8, variations=3)
        engine.midi_callback(mido.Message("note_on", note=67, velocity=70))
        engine.midi_callback(mido.Message("note_off", note=67))
        engine.trigger()
        assert wait_until(lambda: takes, timeout=20)
        assert engine.session.settings.temperature == 0.6 and len(takes[0].variations) == 3
        engine.next_variation()
        engine.accept()
        library = engine.session.library
        assert wait_until(lambda: library.view(takes[0]).accepted == 1, timeout=5)
        engine.set_metronome(True)
        assert wait_until(lambda: any(m.channel == 9 for m in port.messages if m.type == "note_on"), timeout=5)
        engine.panic()
    assert balance(port.messages) == {}


def test_panic_during_generation_stops_the_take(tiny_model):  # noqa: F811
    port, takes = RecordingPort(), []
    engine = LiveEngine(tiny_model, port, settings=SessionSettings(seed=3, trigger_beats=0, bars=64,
                                                                   variations=4, start_on="now"),
                        on_take=takes.append)
    with engine:
        engine.midi_callback(mido.Message("note_on", note=60, velocity=70))
        engine.midi_callback(mido.Message("note_off", note=60))
        engine.trigger()
        time.sleep(0.3)  # 64 bars x 4 rows: still sampling
        engine.panic()
        # Sampling all 64 bars would take many seconds; a cancelled take ends at once.
        assert wait_until(lambda: takes, timeout=2)
        time.sleep(0.2)
        assert engine.player.pending == 0 and engine.player.open_notes == set()
    # A 64-bar answer was cut short: far fewer notes than 64 bars would hold.
    assert sum(1 for m in port.messages if m.type == "note_on") < 200
    assert balance(port.messages) == {}


def test_take_commands_tempo_and_grid_run_on_the_engine_thread(tiny_model):  # noqa: F811
    import threading

    from copilot_app.engine.clock import Meter

    port, takes, changed, threads = RecordingPort(), [], [], set()

    def on_snapshot(snapshot):
        threads.add(threading.current_thread().name)
        if snapshot.event.take is not None and snapshot.view(snapshot.event.take) is not None:
            view = snapshot.view(snapshot.event.take)
            changed.append((view.take, view.auditioned, view.accepted))

    engine = LiveEngine(tiny_model, port, settings=SessionSettings(seed=4, trigger_beats=0, variations=2),
                        on_take=takes.append, on_snapshot=on_snapshot)
    with engine:
        for pitch in (60, 64):
            engine.midi_callback(mido.Message("note_on", note=pitch, velocity=70))
            engine.midi_callback(mido.Message("note_off", note=pitch))
        engine.trigger()
        engine.trigger()
        assert wait_until(lambda: len(takes) == 2, timeout=20)
        first, second = takes
        engine.audition(first, 1)                        # an older take, not only the last
        assert wait_until(lambda: (first, 1, None) in changed, timeout=5)
        assert engine.session.playing is first
        engine.accept(first, 1)
        assert wait_until(lambda: (first, 1, 1) in changed, timeout=5)
        engine.discard(first)
        assert wait_until(lambda: first not in engine.session.takes, timeout=5)
        assert engine.session.playing is None and engine.player.pending == 0
        engine.set_tempo(90.0)
        assert wait_until(lambda: engine.session.grid.bpm == 90.0, timeout=5)
        engine.set_metronome(True)
        engine.set_grid(Meter(3, 4))
        assert wait_until(lambda: engine.session.grid.meter == Meter(3, 4), timeout=5)
        assert engine.session.grid.bpm == 90.0          # the tempo carries over
        assert engine.metronome.grid is engine.session.grid and engine.metronome.enabled
        assert wait_until(lambda: any(m.channel == 9 for m in port.messages if m.type == "note_on"), timeout=5)
        assert engine.session.takes == [second]
        engine.set_grid(Meter(4, 4), clock_source="midi")
        assert wait_until(lambda: type(engine.session.grid).__name__ == "MidiClockGrid", timeout=5)
    assert threads == {"copilot-engine"}
    assert balance(port.messages) == {}


def test_snapshots_are_immutable_and_the_engine_runs_before_a_model(tiny_model):  # noqa: F811
    """The GUI's view of the engine: values sent from the engine thread, never its objects."""
    import dataclasses

    import pytest

    port, snapshots, errors, played = RecordingPort(), [], [], []
    engine = LiveEngine(None, port, settings=SessionSettings(seed=5, trigger_beats=0),
                        on_snapshot=snapshots.append, on_error=errors.append, on_input=played.append)
    with engine:
        assert wait_until(lambda: snapshots, timeout=5) and snapshots[0].model is None
        engine.midi_callback(mido.Message("note_on", note=60, velocity=70))
        engine.midi_callback(mido.Message("note_off", note=60))
        engine.trigger()
        assert wait_until(lambda: errors, timeout=5) and "no model loaded" in errors[0]
        engine.set_model(tiny_model, "tiny")
        assert wait_until(lambda: snapshots[-1].model == "tiny", timeout=5)
        engine.trigger()
        assert wait_until(lambda: snapshots[-1].takes, timeout=20)
        assert [p.pitch for p in played] == [60, 60] and played[0].on and not played[1].on
    snap = snapshots[-1]
    assert snap.event.kind == "take" and snap.takes[0].take.number == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.takes[0].take.number = 2
    assert isinstance(snap.takes[0].take.variations, tuple)
    assert snap.settings is not engine.session.settings  # a copy


def test_the_timeline_the_gui_gets_follows_a_daws_midi_clock(tiny_model):  # noqa: F811
    from copilot_app.engine.clock import FakeClock, MidiClockGrid

    clock, snapshots = FakeClock(100.0), []
    engine = LiveEngine(tiny_model, RecordingPort(), MidiClockGrid(), SessionSettings(trigger_beats=0),
                        clock, on_snapshot=snapshots.append)
    with engine:
        engine.midi_callback(mido.Message("start"))
        for _ in range(48):                      # two quarters at 120 BPM
            clock.advance(60 / (120 * 24))
            engine.midi_callback(mido.Message("clock"))
        assert wait_until(lambda: snapshots and snapshots[-1].timeline.running
                          and snapshots[-1].timeline.source == "midi", timeout=5)
        clock.advance(0.6)                       # still running: re-sent within half a second
        engine.midi_callback(mido.Message("clock"))
        assert wait_until(lambda: abs(snapshots[-1].timeline.quarters_at(clock.now())
                                      - engine.session.quarters_at(clock.now())) < 0.01, timeout=5)
        engine.midi_callback(mido.Message("stop"))
        assert wait_until(lambda: not snapshots[-1].timeline.running, timeout=5)
