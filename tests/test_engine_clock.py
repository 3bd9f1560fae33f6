"""Musical time on a fake clock: internal tempo grid and MIDI clock following."""
from __future__ import annotations

import pytest

from copilot_app.engine.clock import PPQN, FakeClock, InternalGrid, Meter, MidiClockGrid


def test_internal_grid_beats_and_bars():
    grid = InternalGrid(bpm=120, meter=Meter(3, 4), origin=10.0)
    assert grid.seconds_per_beat == pytest.approx(0.5)
    assert grid.beat_at(11.25) == pytest.approx(2.5)
    assert grid.time_at(3) == pytest.approx(11.5)
    assert grid.next_boundary(11.26, "beat") == pytest.approx(11.5)
    assert grid.next_boundary(11.26, "bar") == pytest.approx(11.5)  # bar 1 starts at beat 3
    assert grid.next_boundary(11.5, "bar") == pytest.approx(11.5)   # on the line counts
    assert grid.next_boundary(11.51, "bar") == pytest.approx(13.0)


def test_compound_meter_beat_is_the_denominator_unit():
    grid = InternalGrid(bpm=120, meter=Meter(6, 8))
    assert grid.seconds_per_beat == pytest.approx(0.25)  # an eighth at 120 quarters/min
    assert grid.beats_per_bar == 6


@pytest.mark.parametrize("text", ["4", "3/5", "x/4", "0/4"])
def test_bad_meter_is_one_clear_error(text):
    with pytest.raises(ValueError, match="meter"):
        Meter.parse(text)


def test_bad_tempo_rejected():
    with pytest.raises(ValueError, match="BPM"):
        InternalGrid(bpm=5)


def _pulse(grid: MidiClockGrid, clock: FakeClock, n: int, bpm: float) -> None:
    for _ in range(n):
        clock.advance(60.0 / (bpm * PPQN))
        grid.handle("clock", clock.now())


def test_midi_clock_tempo_estimate_and_position():
    clock, grid = FakeClock(), MidiClockGrid()
    grid.handle("start", clock.now())
    _pulse(grid, clock, PPQN * 4, bpm=100)
    assert grid.bpm == pytest.approx(100, rel=1e-6)
    assert grid.beat_at(clock.now()) == pytest.approx(4.0)
    assert grid.next_boundary(clock.now() + 0.01, "bar") == pytest.approx(clock.now() + 4 * 0.6)


def test_midi_clock_stop_continue_and_song_position():
    clock, grid = FakeClock(), MidiClockGrid()
    grid.handle("start", 0.0)
    _pulse(grid, clock, 48, bpm=120)
    grid.handle("stop", clock.now())
    _pulse(grid, clock, 24, bpm=120)           # clock keeps running while stopped
    assert grid.pulses == 48
    grid.handle("songpos", clock.now(), song_position=16)  # bar 2 in sixteenths
    grid.handle("continue", clock.now())
    _pulse(grid, clock, 24, bpm=120)
    assert grid.beat_at(clock.now()) == pytest.approx(16 / 4 + 1)


def test_clock_without_start_estimates_tempo_but_does_not_move():
    clock, grid = FakeClock(), MidiClockGrid()
    _pulse(grid, clock, 30, bpm=90)
    assert grid.pulses == 0 and grid.bpm == pytest.approx(90, rel=1e-6)


def test_one_late_pulse_does_not_swing_the_tempo():
    clock, grid = FakeClock(), MidiClockGrid()
    grid.handle("start", 0.0)
    _pulse(grid, clock, 30, bpm=120)
    clock.advance(0.05)  # a hiccup in the DAW
    _pulse(grid, clock, 30, bpm=120)
    assert grid.bpm == pytest.approx(120, rel=1e-6)
