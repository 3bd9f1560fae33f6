"""Streaming REMI codec for live use.

``StreamingEncoder``: performance events in (times in quarter notes
from the app's clock, see ``performance``), REMI tokens out as soon as they
are final.  The concatenated output equals miditok's encoding of
``performance.quantize_performance`` of the same events (property-tested).

A note's tokens need its duration and REMI orders the notes of one onset by
(duration, pitch), so tokens wait until

* no later note-on can still round onto that onset (the clock passed it by
  half a grid step), and
* every note before it in that order is known: finished, or held long enough
  that it can only come later; a held note is committed with the longest
  Duration token once it reaches it.

``flush(time)`` releases everything still sounding at ``time`` and emits it:
the result is exactly the encoding of the performance cut there.  Keys still
down at a flush do not sound on in later tokens, and a note struck after a
flush onto an onset already emitted is moved to the next grid step, so the
stream stays valid REMI.

``StreamingDecoder``: tokens in (strings or ids), each note out as soon as
its Duration token arrives; the notes equal miditok's decoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config import DEFAULT_TIME_SIGNATURE, DEFAULT_VELOCITY, TICKS_PER_QUARTER, build_tokenizer
from .performance import (
    DURATION_NAMES,
    DURATION_TICKS,
    METER,
    NOTE_OFF,
    NOTE_ON,
    PEDAL,
    GridNote,
    Keyboard,
    MeterMap,
    PerfEvent,
    RawNote,
    grid_step,
    in_pitch_range,
    max_duration_ticks,
    ticks_per_beat,
)


@dataclass
class _Pending:
    onset: int  # grid tick
    pitch: int
    velocity: int
    start: float  # quarter notes, as played
    end: float | None = None  # quarter notes; None while sounding


class StreamingEncoder:
    """Live events in, final REMI token strings out (see module docstring).

    Every method returns the tokens that became final with that call.  Times
    must not go backwards; a slightly late timestamp is clamped to the latest
    time seen, as the live clock is the authority.
    """

    def __init__(self) -> None:
        self._keys = Keyboard()
        self._meters = MeterMap()
        self._pending: list[_Pending] = []
        self._sounding: dict[int, _Pending] = {}  # pitch -> its pending note
        self._now = 0.0
        self._bar = -1  # last Bar emitted
        self._last_onset = -1  # onset tick of the last emitted note
        self._floor = 0  # earliest allowed onset tick (moves after a flush)

    # -- events --------------------------------------------------------------
    def feed(self, event: PerfEvent) -> list[str]:
        if event.kind == NOTE_ON:
            return self.note_on(event.time, event.a, event.b)
        if event.kind == NOTE_OFF:
            return self.note_off(event.time, event.a)
        if event.kind == PEDAL:
            return self.pedal(event.time, event.a)
        if event.kind == METER:
            return self.meter(event.time, event.a, event.b)
        raise ValueError(f"unknown performance event kind {event.kind!r}")

    def note_on(self, time: float, pitch: int, velocity: int) -> list[str]:
        time = self._tick(time)
        if velocity == 0:
            return self.note_off(time, pitch)
        self._finish(self._keys.on(time, pitch, velocity))
        if in_pitch_range(pitch):
            onset = max(self._meters.quantize_onset(time), self._floor)
            note = _Pending(onset, pitch, velocity, time)
            self._pending.append(note)
            self._sounding[pitch] = note
        return self._emit()

    def note_off(self, time: float, pitch: int) -> list[str]:
        time = self._tick(time)
        self._finish(self._keys.off(time, pitch))
        return self._emit()

    def pedal(self, time: float, value: int) -> list[str]:
        """Sustain pedal, CC64 value (>= 64 is down)."""
        time = self._tick(time)
        self._finish(self._keys.pedal(time, value))
        return self._emit()

    def meter(self, time: float, numerator: int, denominator: int) -> list[str]:
        """Meter from the clock; effective from the first bar line at or after ``time``.

        Raises ``performance.UnsupportedMeterError`` for a meter without a
        TimeSig token (see ``config.TIME_SIGNATURE_RANGE``).
        """
        time = self._tick(time)
        self._meters.change(time, numerator, denominator)
        return self._emit()

    def advance(self, time: float, open_bars: bool = False) -> list[str]:
        """Time passed without events: held notes may commit, onsets may close.

        With ``open_bars`` (live use) a bar line that passes while nothing is
        pending or sounding also emits that bar's Bar/TimeSig: they are final
        (any later note of that bar comes after them), so a live model state
        is already in the current bar when an answer is asked for. Offline
        encodings leave it off: they end at the last note, as miditok does.
        """
        self._tick(time)
        out = self._emit()
        if open_bars and not self._pending and not self._sounding:
            onset = max(self._meters.quantize_onset(self._now), self._floor)
            out += self._bars_through(self._meters.bar_of(onset)[0])
        return out

    def flush(self, time: float) -> list[str]:
        """Release everything sounding at ``time`` and emit all pending tokens."""
        time = self._tick(time)
        self._finish(self._keys.release_all(time))
        out = self._emit(final=True)
        if self._last_onset >= 0:
            step = grid_step(self._meters.section_at(self._last_onset).den)
            self._floor = self._last_onset + step
        return out

    @property
    def now(self) -> float:
        return self._now

    # -- internals -----------------------------------------------------------
    def _tick(self, time: float) -> float:
        self._now = max(self._now, float(time))
        return self._now

    def _finish(self, notes: Iterable[RawNote]) -> None:
        for raw in notes:
            note = self._sounding.get(raw.pitch)
            if note is not None and note.start == raw.start:
                note.end = raw.end
                del self._sounding[raw.pitch]

    def _duration(self, note: _Pending) -> tuple[int, bool]:
        """(duration ticks, final?) -- a lower bound while the note sounds."""
        end = self._now if note.end is None else note.end
        dur = self._meters.quantize_duration(note.onset, end)
        if note.end is not None:
            return dur, True
        den = self._meters.section_at(note.onset).den
        return dur, dur >= max_duration_ticks(den)

    def _emit(self, final: bool = False) -> list[str]:
        out: list[str] = []
        next_onset = max(self._meters.quantize_onset(self._now), self._floor)
        while self._pending:
            onset = min(n.onset for n in self._pending)
            if not final and onset >= next_onset:
                break  # a note played now could still land on this onset
            group = [n for n in self._pending if n.onset == onset]
            keyed = [(self._duration(n), n) for n in group]
            finals = [(d, n) for (d, ok), n in keyed if ok]
            if not finals:
                break
            dur, cand = min(finals, key=lambda dn: (dn[0], dn[1].pitch))
            blocked = dropped = False
            for (d, ok), other in keyed:
                if other is cand:
                    continue
                if other.pitch == cand.pitch and d >= dur:
                    dropped = True  # same pitch, same onset: the longer one stays
                elif ok:
                    continue  # final and (by the min) after cand
                elif d < dur or (d == dur and other.pitch <= cand.pitch):
                    blocked = True  # may still end up before cand
            if blocked and not dropped:
                break
            self._pending.remove(cand)
            if cand.end is None:  # committed at the longest duration
                self._sounding.pop(cand.pitch, None)
            if not dropped:
                out += self._note_tokens(cand.onset, dur, cand.pitch)
        return out

    def _bars_through(self, bar: int) -> list[str]:
        """Bar/TimeSig for every bar after the last one emitted, up to ``bar``."""
        out = []
        while self._bar < bar:
            self._bar += 1
            _, sec = self._meters.bar_start(self._bar)
            out += ["Bar_None", f"TimeSig_{sec.num}/{sec.den}"]
        return out

    def _note_tokens(self, onset: int, duration: int, pitch: int) -> list[str]:
        out = []
        bar, _ = self._meters.bar_of(onset)
        out += self._bars_through(bar)
        if onset != self._last_onset:
            start, sec = self._meters.bar_start(bar)
            out.append(f"Position_{(onset - start) // grid_step(sec.den)}")
            self._last_onset = onset
        den = self._meters.section_at(onset).den
        out += [f"Pitch_{pitch}", f"Duration_{DURATION_NAMES[den][duration]}"]
        return out


class DecodedNote(GridNote):
    """A decoded note on the grid (ticks at ``TICKS_PER_QUARTER``), with its
    start and duration in quarter notes for playback."""

    __slots__ = ()

    @property
    def start_quarters(self) -> float:
        return self.start / TICKS_PER_QUARTER

    @property
    def duration_quarters(self) -> float:
        return self.duration / TICKS_PER_QUARTER


class StreamingDecoder:
    """REMI tokens in, notes out as soon as each is complete.

    Mirrors miditok's REMI decoding (same ticks, same tolerance of stray
    tokens: a Pitch not directly followed by a Duration is dropped).
    ``velocity`` is given to every note: there are no Velocity tokens, so
    playback uses the player's own dynamics.

    While generating, feed it the prompt first (its notes are the player's,
    ignore them) so that bar, meter and position are known, then each
    sampled token; ``position_tick`` says where the stream stands.
    """

    def __init__(self, velocity: int = DEFAULT_VELOCITY) -> None:
        self.velocity = velocity
        self._id_to_token = {i: t for t, i in build_tokenizer().vocab.items()}
        self._num, self._den = DEFAULT_TIME_SIGNATURE
        self._bar = -1
        self._bar_tick = 0
        self._tick = 0
        self._pitch: int | None = None
        self.notes: list[DecodedNote] = []

    @property
    def bars(self) -> int:
        return self._bar + 1

    @property
    def position_tick(self) -> int:
        """Tick of the current position (where the next note would start)."""
        return self._tick

    def feed(self, token: str | int) -> DecodedNote | None:
        """Take one token; return the note it completes, if any."""
        if not isinstance(token, str):
            token = self._id_to_token[int(token)]
        kind, _, value = token.partition("_")
        pitch, self._pitch = self._pitch, None
        tpb = ticks_per_beat(self._den)
        if kind == "Bar":
            self._bar += 1
            if self._bar > 0:
                self._tick = self._bar_tick + self._num * tpb
            self._bar_tick = self._tick
        elif kind == "TimeSig":
            num, den = (int(x) for x in value.split("/"))
            self._num, self._den = num, den
        elif kind == "Position":
            self._bar = max(self._bar, 0)
            self._tick = self._bar_tick + int(value) * grid_step(self._den)
        elif kind == "Pitch":
            self._pitch = int(value)
        elif kind == "Duration" and pitch is not None:
            note = DecodedNote(
                self._tick, DURATION_TICKS[self._den][value], pitch, self.velocity
            )
            self.notes.append(note)
            return note
        return None

    def feed_many(self, tokens: Iterable[str | int]) -> list[DecodedNote]:
        return [n for n in (self.feed(t) for t in tokens) if n is not None]


def encode_events(events: Iterable[PerfEvent], end: float | None = None) -> list[str]:
    """Replay ``events`` through a fresh encoder and flush at the end."""
    enc = StreamingEncoder()
    out: list[str] = []
    for ev in events:
        out += enc.feed(ev)
    out += enc.flush(enc.now if end is None else end)
    return out
