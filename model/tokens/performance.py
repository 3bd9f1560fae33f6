"""From a performance (timed key/pedal/meter events) to notes on the REMI grid.

Shared by the file codec (``midi_io``) and the live streaming encoder
(``streaming``) so that a file and its replay give the same notes.

Time unit of events: **quarter notes** (float) since the start of the
piece/session, as the app's clock reports them after applying the tempo (a
"beat" is the meter's, as in the engine: a quarter in 4/4, an eighth in 6/8).
Tempo itself is not tokenized; it belongs to the clock and to playback.

Rules (the same offline and live):

* keyboard semantics: one sounding instance per pitch; a note-on for a pitch
  that still sounds ends the old note there; a note-off with nothing sounding
  is ignored;
* sustain pedal (CC64 >= 64 is down): a note-off while the pedal is down keeps
  the note sounding until the pedal goes up or the key is struck again, i.e.
  the pedal is folded into durations;
* at equal times events are taken in the order given (files: note-offs, then
  pedal, then meter, then note-ons);
* a meter change takes effect at the first bar line at or after its time (as
  miditok and the MIDI spec delay time signatures), later changes to the same
  bar line win;
* onsets round half-up to the grid of their meter section (12 steps a beat,
  the beat being the meter's denominator); a note's end rounds the same way
  on its onset's grid (at least one step after the onset) and its duration
  snaps down to a Duration token, longer than the longest token are clipped
  to it;

The canonical note form every path shares (files, corpus, eval, fine-tuning,
``continue`` and the live encoder), which the REMI grammar accepts in full:

* a pitch struck twice on the same grid onset is one note, the longer one;
* overlapping repeats are cut: keyboard semantics end a sounding note when
  its key is struck again, and because ends round like onsets and durations
  only snap down, no quantized note reaches past a later onset of its pitch;
* notes may last past their bar line or a meter change: the Duration token
  is read in the meter of the note's onset;
* notes are ordered by (onset, duration, pitch), which is also the order
  symusic gives and miditok keeps.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from .config import BEAT_RES, PITCH_RANGE, TICKS_PER_QUARTER, TIME_SIGNATURE_RANGE

NOTE_ON, NOTE_OFF, PEDAL, METER = "note_on", "note_off", "pedal", "meter"
_POS_PER_BEAT = max(BEAT_RES.values())


class PerfEvent(NamedTuple):
    """One performance event; ``time`` in quarter notes.

    note_on: a=pitch, b=velocity (0 means note-off); note_off: a=pitch;
    pedal: a=CC64 value; meter: a=numerator, b=denominator.
    """

    time: float
    kind: str
    a: int = 0
    b: int = 0


class RawNote(NamedTuple):
    """A note off the grid: onset and end in quarter notes."""

    start: float
    end: float
    pitch: int
    velocity: int


class GridNote(NamedTuple):
    """A note on the grid, in ticks at ``TICKS_PER_QUARTER``."""

    start: int
    duration: int
    pitch: int
    velocity: int


class UnsupportedMeterError(ValueError):
    """A time signature this tokenizer has no TimeSig token for."""


def is_supported_meter(num: int, den: int) -> bool:
    return num in TIME_SIGNATURE_RANGE.get(den, ())


def ticks_per_beat(den: int) -> int:
    return TICKS_PER_QUARTER * 4 // den


def grid_step(den: int) -> int:
    """Ticks between two Positions under a meter with denominator ``den``."""
    return ticks_per_beat(den) // _POS_PER_BEAT


def _duration_names(den: int) -> dict[int, str]:
    """Duration token values for meters over ``den``: ticks -> "beat.pos.res".

    The same bins as miditok: ``res`` steps a beat in each range of beats,
    plus the upper end of the last range (the longest note token).
    """
    tpb = ticks_per_beat(den)
    names: dict[int, str] = {}
    for (lo, hi), res in sorted(BEAT_RES.items()):
        for beat in range(lo, hi):
            for pos in range(res):
                ticks = (beat * res + pos) * tpb // res
                if ticks > 0:
                    names.setdefault(ticks, f"{beat}.{pos}.{res}")
    top = max(BEAT_RES)
    names.setdefault(top[1] * tpb, f"{top[1]}.0.{BEAT_RES[top]}")
    return names


DURATION_NAMES = {den: _duration_names(den) for den in TIME_SIGNATURE_RANGE}
DURATION_TICKS = {
    den: {name: ticks for ticks, name in names.items()} for den, names in DURATION_NAMES.items()
}
_DURATIONS = {den: sorted(names) for den, names in DURATION_NAMES.items()}


def max_duration_ticks(den: int) -> int:
    return _DURATIONS[den][-1]


def snap_duration(ticks: int, den: int) -> int:
    """The longest Duration token value not longer than ``ticks`` (at least the
    shortest token). Below 4 beats every grid step has a token, so this only
    shortens long notes to the quarter-beat steps of their tokens; never
    lengthening is what keeps a note from overlapping its own repeat."""
    table = _DURATIONS[den]
    i = bisect.bisect_right(table, ticks)
    return table[max(i - 1, 0)]


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@dataclass
class _Section:
    start: int  # tick of its first bar line
    num: int
    den: int
    first_bar: int  # index of the bar starting at ``start``

    @property
    def bar_ticks(self) -> int:
        return self.num * ticks_per_beat(self.den)


@dataclass
class MeterMap:
    """Meter sections on the tick grid; starts at 4/4 unless told otherwise."""

    sections: list[_Section] = field(default_factory=lambda: [_Section(0, 4, 4, 0)])

    def __post_init__(self) -> None:
        # Section starts and first bars, kept beside the sections so a lookup
        # is a bisection: a long session with many meter changes must not
        # make every note cost more than the last (was O(sections) a lookup).
        self._reindex()

    def _reindex(self) -> None:
        self._starts = [s.start for s in self.sections]
        self._first_bars = [s.first_bar for s in self.sections]

    def section_at(self, tick: float) -> _Section:
        return self.sections[max(0, bisect.bisect_right(self._starts, tick) - 1)]

    def change(self, quarters: float, num: int, den: int) -> int:
        """Apply a meter change at the first bar line >= ``quarters``; returns its tick."""
        if not is_supported_meter(num, den):
            raise UnsupportedMeterError(f"time signature {num}/{den} is not supported")
        x = quarters * TICKS_PER_QUARTER
        sec = self.section_at(x)
        bars = max(0, math.ceil((x - sec.start) / sec.bar_ticks))
        tick = sec.start + bars * sec.bar_ticks
        # Everything from that bar line on is replaced (later change wins).
        while len(self.sections) > 1 and self.sections[-1].start >= tick:
            self.sections.pop()
            self._starts.pop()
            self._first_bars.pop()
        if self.sections[-1].start >= tick:  # only the first section, at tick 0
            self.sections[-1] = _Section(tick, num, den, 0)
            self._reindex()
            return tick
        prev = self.sections[-1]
        if (prev.num, prev.den) != (num, den):
            bar = prev.first_bar + (tick - prev.start) // prev.bar_ticks
            self.sections.append(_Section(tick, num, den, bar))
            self._starts.append(tick)
            self._first_bars.append(bar)
        return tick

    def quantize_onset(self, quarters: float) -> int:
        x = quarters * TICKS_PER_QUARTER
        sec = self.section_at(x)
        step = grid_step(sec.den)
        return sec.start + _round_half_up((x - sec.start) / step) * step

    def quantize_duration(self, onset_tick: int, end: float) -> int:
        """Ticks from the quantized onset to the note's end (in quarter notes) rounded
        onto the onset's grid: the end rounds like an onset would, so a note
        never reaches past the quantized onset of anything struck after it
        ended (a repeat of its own pitch above all)."""
        den = self.section_at(onset_tick).den
        step = grid_step(den)
        steps = max(1, _round_half_up((end * TICKS_PER_QUARTER - onset_tick) / step))
        return snap_duration(steps * step, den)

    def bar_of(self, tick: int) -> tuple[int, _Section]:
        """Index of the bar holding ``tick`` and its section."""
        sec = self.section_at(tick)
        return sec.first_bar + (tick - sec.start) // sec.bar_ticks, sec

    def bar_start(self, bar: int) -> tuple[int, _Section]:
        sec = self.sections[max(0, bisect.bisect_right(self._first_bars, bar) - 1)]
        return sec.start + (bar - sec.first_bar) * sec.bar_ticks, sec

    def truncated(self, last_tick: int) -> list[tuple[int, int, int]]:
        """(tick, num, den) of the sections that start at or before ``last_tick``."""
        return [(s.start, s.num, s.den) for s in self.sections if s.start <= last_tick]


class Keyboard:
    """Keyboard + sustain pedal state: turns key events into finished notes.

    ``on``/``off``/``pedal`` return the notes they finish, as ``RawNote``.
    """

    def __init__(self) -> None:
        self.pedal_down = False
        self.held: dict[int, tuple[float, int]] = {}  # key down: pitch -> (start, vel)
        self.sustained: dict[int, tuple[float, int]] = {}  # key up, pedal holds it

    def sounding(self) -> dict[int, tuple[float, int]]:
        return {**self.sustained, **self.held}

    def _end(self, pitch: int, time: float) -> list[RawNote]:
        out = []
        for store in (self.held, self.sustained):
            if pitch in store:
                start, vel = store.pop(pitch)
                out.append(RawNote(start, time, pitch, vel))
        return out

    def on(self, time: float, pitch: int, velocity: int) -> list[RawNote]:
        if velocity == 0:
            return self.off(time, pitch)
        done = self._end(pitch, time)
        self.held[pitch] = (time, velocity)
        return done

    def off(self, time: float, pitch: int) -> list[RawNote]:
        if pitch not in self.held:
            return []
        if self.pedal_down:
            self.sustained[pitch] = self.held.pop(pitch)
            return []
        return self._end(pitch, time)

    def pedal(self, time: float, value: int) -> list[RawNote]:
        self.pedal_down = value >= 64
        if self.pedal_down:
            return []
        done = [RawNote(s, time, p, v) for p, (s, v) in self.sustained.items()]
        self.sustained.clear()
        return done

    def release_all(self, time: float) -> list[RawNote]:
        done = [RawNote(s, time, p, v) for p, (s, v) in self.sounding().items()]
        self.held.clear()
        self.sustained.clear()
        return done


def fold_stray_final_meter(meters: list[tuple[float, int, int]], last_onset: float
                           ) -> list[tuple[float, int, int]]:
    """Meter changes ``(time in quarters, num, den)`` without a stray last bar.

    A file that ends with one short bar in a meter of its own (a 1/4 bar to
    hold the last chord, an export's leftover) would make that meter the one a
    continuation keeps: "2 bars" of 1/4. Such a final change, shorter than the
    meter before it and holding at most one bar of notes, is dropped: the last
    notes belong to the previous meter's bar.
    """
    if len(meters) < 2:
        return meters
    (t, num, den), (_, pnum, pden) = meters[-1], meters[-2]
    bar = num * 4 / den
    if bar < pnum * 4 / pden and last_onset - t < bar:
        return meters[:-1]
    return meters


def in_pitch_range(pitch: int) -> bool:
    return PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]


def quantize_note(note: RawNote, meters: MeterMap) -> GridNote:
    onset = meters.quantize_onset(note.start)
    dur = meters.quantize_duration(onset, note.end)
    return GridNote(onset, dur, note.pitch, note.velocity)


def dedupe_and_sort(notes: Iterable[GridNote]) -> list[GridNote]:
    """Keep the longest note per (onset, pitch), order by (onset, duration, pitch)."""
    best: dict[tuple[int, int], GridNote] = {}
    for n in notes:
        key = (n.start, n.pitch)
        if key not in best or n.duration > best[key].duration:
            best[key] = n
    return sorted(best.values(), key=lambda n: (n.start, n.duration, n.pitch))


@dataclass
class QuantizedPiece:
    """Notes on the grid plus the meter sections up to the last onset."""

    notes: list[GridNote]
    meters: list[tuple[int, int, int]]  # (tick, numerator, denominator), first at 0


def quantize_performance(
    events: Iterable[PerfEvent], release_at: float | None = None
) -> QuantizedPiece:
    """The offline reference: all events in order, then every note released.

    ``release_at`` ends notes still sounding at that time (a flush); by default
    they end at the last event's time.  Notes outside the piano range are
    dropped; meter changes after the last onset are dropped.
    """
    keys, meters = Keyboard(), MeterMap()
    raw: list[RawNote] = []
    last = 0.0
    for ev in events:
        last = ev.time
        if ev.kind == NOTE_ON:
            raw += keys.on(ev.time, ev.a, ev.b)
        elif ev.kind == NOTE_OFF:
            raw += keys.off(ev.time, ev.a)
        elif ev.kind == PEDAL:
            raw += keys.pedal(ev.time, ev.a)
        elif ev.kind == METER:
            meters.change(ev.time, ev.a, ev.b)
        else:
            raise ValueError(f"unknown performance event kind {ev.kind!r}")
    raw += keys.release_all(last if release_at is None else release_at)
    notes = dedupe_and_sort(quantize_note(n, meters) for n in raw if in_pitch_range(n.pitch))
    last_onset = notes[-1].start if notes else 0
    return QuantizedPiece(notes, meters.truncated(last_onset))

