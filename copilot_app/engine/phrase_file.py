"""File > Open phrase… and `listen`'s files: a .mid file read as a phrase to continue.

``read_phrase`` does the file I/O and tokenizing (callers run it off the
engine thread); ``LiveSession.open_phrase`` then makes the phrase the live
context on a timeline in the file's tempo and meter, so the answer, and every
Continue after it, continues the file as if it had just been played.

The meter is the one that lasts longest in the bars the model hears, so a
stray short bar at a file's end (a 1/4 pickup remainder) does not set the
meter of the answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from copilot_app.engine.clock import MAX_BPM, MIN_BPM, Meter
from model.generation import context_window
from model.tokens.midi_io import encode_piece, load_piano_piece
from model.tokens.performance import GridNote

CONTEXT_BARS = 4  # bars of the file the model hears (as `continue --context-bars` defaults)


@dataclass(frozen=True)
class FilePhrase:
    """The last bars of a file: notes in ticks from their first bar line."""

    name: str
    notes: tuple[GridNote, ...]
    tempo_bpm: float                  # quarters per minute
    meter: Meter
    warnings: tuple[str, ...] = ()    # what reading it fixed (e.g. a 0 us tempo), one line each

    @property
    def end_tick(self) -> int:
        return max(n.start + n.duration for n in self.notes)


def read_phrase(path: str | Path, context_bars: int = CONTEXT_BARS) -> FilePhrase:
    """Read a .mid file; one-line errors (``MidiError``) for a bad one."""
    source = load_piano_piece(path)
    piece = source.piece
    _context, offset = context_window(encode_piece(piece), context_bars)
    notes = tuple(GridNote(n.start - offset, n.duration, n.pitch, n.velocity)
                  for n in piece.notes if n.start >= offset)
    end = max(n.start + n.duration for n in piece.notes)
    meter = longest_meter(piece.meters, offset, end)
    tempo = min(MAX_BPM, max(MIN_BPM, float(source.tempo_qpm)))
    return FilePhrase(Path(path).name, notes, tempo, meter, tuple(source.warnings))


def longest_meter(meters: list[tuple[int, int, int]], start: int, end: int) -> Meter:
    """The meter covering most ticks of [start, end); meters are (tick, num, den) changes."""
    covered: dict[tuple[int, int], int] = {}
    for i, (tick, num, den) in enumerate(meters):
        until = meters[i + 1][0] if i + 1 < len(meters) else end
        span = min(until, end) - max(tick, start)
        if span > 0:
            covered[(num, den)] = covered.get((num, den), 0) + span
    if not covered:
        _tick, num, den = meters[-1] if meters else (0, 4, 4)
        return Meter(num, den)
    num, den = max(covered, key=lambda k: covered[k])
    return Meter(num, den)
