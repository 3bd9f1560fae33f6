"""Musical time: an injectable wall clock and the tempo grids laid over it.

Everything in the engine asks a ``Clock`` for the time, so tests run on a
``FakeClock`` and are deterministic. A grid turns seconds into beats and bars:
``InternalGrid`` from a tempo and meter the user sets, ``MidiClockGrid`` from a
DAW's MIDI clock (24 pulses per quarter note, Start/Stop/Continue, Song
Position Pointer), so continuations land on the DAW's bar lines.

Words for time, the same in the whole engine: a "beat" is one unit of the
meter's denominator (a quarter in 4/4, an eighth in 6/8), as in the REMI
tokens; a "quarter" is a quarter note, whatever the meter
(``Meter.quarters_per_beat`` converts). Tempo (``bpm``) counts quarters per
minute, as MIDI and DAWs do, so 6/8 at 120 has beats of 0.25 s.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

PPQN = 24  # MIDI clock pulses per quarter note
SPP_PULSES = 6  # one Song Position Pointer unit is a sixteenth = 6 pulses


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""


class MonotonicClock:
    """The real clock: ``time.monotonic``."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; thread-safe for tests."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += seconds
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = t


@dataclass(frozen=True)
class Meter:
    numerator: int = 4
    denominator: int = 4

    def __post_init__(self) -> None:
        if self.numerator < 1 or self.denominator not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"unsupported meter {self.numerator}/{self.denominator}")

    @classmethod
    def parse(cls, text: str) -> "Meter":
        """'3/4' -> Meter(3, 4); one clear error for anything else."""
        try:
            num, den = (int(x) for x in text.split("/"))
        except ValueError:
            raise ValueError(f"meter must look like 4/4 or 6/8, not {text!r}") from None
        return cls(num, den)

    def quarters_per_beat(self) -> float:
        return 4.0 / self.denominator


class _GridMath:
    """What every grid derives from its tempo (``bpm``) and ``meter``."""

    bpm: float
    meter: Meter

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm * self.meter.quarters_per_beat()

    @property
    def beats_per_bar(self) -> int:
        return self.meter.numerator

    def beat_at(self, t: float) -> float:
        raise NotImplementedError

    def time_at(self, beat: float) -> float:
        raise NotImplementedError

    def next_boundary(self, t: float, unit: str = "beat") -> float:
        """Time of the next beat or bar line at or after ``t``."""
        step = {"beat": 1, "bar": self.beats_per_bar}.get(unit)
        if step is None:
            raise ValueError(f"unit must be 'beat' or 'bar', not {unit!r}")
        # A tiny tolerance so "now is exactly on the beat" counts as on it.
        target = math.ceil(self.beat_at(t) / step - 1e-9) * step
        return self.time_at(target)


DEFAULT_BPM = 120.0  # quarters per minute of a new session's internal clock
MIN_BPM, MAX_BPM = 20.0, 400.0  # what the internal clock accepts


class InternalGrid(_GridMath):
    """Tempo and meter set by the user, anchored at ``origin`` (bar 0, beat 0)."""

    def __init__(self, bpm: float = DEFAULT_BPM, meter: Meter = Meter(), origin: float = 0.0) -> None:
        if not MIN_BPM <= bpm <= MAX_BPM:
            raise ValueError(f"tempo {bpm} BPM is outside {MIN_BPM:g}-{MAX_BPM:g}")
        self.bpm = bpm
        self.meter = meter
        self.origin = origin

    def beat_at(self, t: float) -> float:
        return (t - self.origin) / self.seconds_per_beat

    def time_at(self, beat: float) -> float:
        return self.origin + beat * self.seconds_per_beat


@dataclass
class MidiClockGrid(_GridMath):
    """Follows a DAW's MIDI clock.

    Position advances one pulse per clock message while running; the tempo is
    estimated from the pulse intervals of the last ``window`` pulses (a
    median, so one late pulse from a busy DAW does not swing it).
    """

    meter: Meter = field(default_factory=Meter)
    window: int = 48
    fallback_bpm: float = DEFAULT_BPM
    running: bool = False
    pulses: int = 0
    _last_pulse_time: float | None = None
    _intervals: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._intervals = deque(maxlen=self.window)

    def handle(self, msg_type: str, t: float, song_position: int | None = None) -> None:
        """Feed one real-time message: clock, start, stop, continue, songpos."""
        if msg_type == "clock":
            if self._last_pulse_time is not None:
                dt = t - self._last_pulse_time
                if 0 < dt < 1.0:  # a pause longer than a second is a stop, not a tempo
                    self._intervals.append(dt)
            self._last_pulse_time = t
            if self.running:
                self.pulses += 1
        elif msg_type == "start":
            self.running, self.pulses = True, 0
            self._last_pulse_time = None
        elif msg_type == "continue":
            self.running = True
        elif msg_type == "stop":
            self.running = False
        elif msg_type == "songpos" and song_position is not None:
            self.pulses = song_position * SPP_PULSES

    @property
    def bpm(self) -> float:
        if len(self._intervals) < 2:
            return self.fallback_bpm
        ordered = sorted(self._intervals)
        return 60.0 / (ordered[len(ordered) // 2] * PPQN)

    def _pulses_per_beat(self) -> float:
        return PPQN * self.meter.quarters_per_beat()

    def beat_at(self, t: float) -> float:
        beat = self.pulses / self._pulses_per_beat()
        if self._last_pulse_time is None or not self.running:
            return beat
        return beat + (t - self._last_pulse_time) / self.seconds_per_beat

    def time_at(self, beat: float) -> float:
        anchor = self._last_pulse_time if self._last_pulse_time is not None else 0.0
        return anchor + (beat - self.pulses / self._pulses_per_beat()) * self.seconds_per_beat
