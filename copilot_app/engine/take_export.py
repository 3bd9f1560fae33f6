"""File > Export all accepted takes: one .mid, one track per accepted take.

The takes follow each other in take order, each starting on a bar line of
its own meter: take 1 from bar 1, the next from the bar after the last one
take 1 sounds in, and so on. A tempo and a time signature event sit where
each take starts, so every take plays in the tempo and meter it was made in
(a DAW shows them as a tempo/meter map). Each track is named after its take
and variation. The file is written atomically (``model.atomic_io``).

Takes come as the immutable ``TakeView`` values of a session snapshot, so the
GUI can hand them to a worker thread without touching the engine.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

from symusic import Note, Score, Tempo, TimeSignature, Track

from copilot_app.engine.session_model import TakeView
from model.atomic_io import atomic_write_bytes
from model.tokens.config import TICKS_PER_QUARTER
from model.tokens.midi_io import midi_bytes
from model.tokens.performance import GridNote

N = TypeVar("N", bound=GridNote)  # GridNote or DecodedNote

TRACK_PREFIX = "Composer Copilot"


class NothingToExport(ValueError):
    """No take has an accepted variation."""


def accepted_views(views: Iterable[TakeView]) -> list[TakeView]:
    """The takes with an accepted variation, by take number."""
    return sorted((v for v in views if v.accepted is not None), key=lambda v: v.take.number)


def _bar_ticks(view: TakeView) -> int:
    meter = view.take.meter
    return max(1, int(round(meter.numerator * meter.quarters_per_beat() * TICKS_PER_QUARTER)))


def restrikes_end_notes(notes: Sequence[N]) -> list[N]:
    """A note struck again while it sounds ends there, as the Player plays it.

    Overlapping notes of one pitch are ambiguous in a MIDI file (readers pair
    note-ons and note-offs first-in-first-out or last-in-first-out), so a DAW
    would not get what was heard. Notes trimmed to nothing are dropped.
    """
    out: list[N] = []
    last: dict[int, int] = {}  # pitch -> index in out of its latest note
    for note in sorted(notes):
        i = last.get(note.pitch)
        if i is not None and out[i].start + out[i].duration > note.start:
            out[i] = out[i]._replace(duration=note.start - out[i].start)
        last[note.pitch] = len(out)
        out.append(note)
    return [n for n in out if n.duration > 0]


def accepted_score(views: Iterable[TakeView]) -> Score:
    """The accepted takes as one multi-track ``Score`` (see module docstring)."""
    chosen = accepted_views(views)
    if not chosen:
        raise NothingToExport("no accepted takes to export yet (accept a take first)")
    score = Score(TICKS_PER_QUARTER)
    cursor = 0
    last_tempo = last_meter = None
    for view in chosen:
        take, index = view.take, view.accepted
        assert index is not None
        bar = _bar_ticks(view)
        start_tick = int(round(take.start_quarters * TICKS_PER_QUARTER))
        origin = (start_tick // bar) * bar
        notes = restrikes_end_notes([n._replace(start=n.start - origin + cursor)
                          for n in take.variations[index] if n.start >= origin])
        tempo = float(take.tempo_bpm)
        meter = (take.meter.numerator, take.meter.denominator)
        if tempo != last_tempo:
            score.tempos.append(Tempo(cursor, tempo))
            last_tempo = tempo
        if meter != last_meter:
            score.time_signatures.append(TimeSignature(cursor, *meter))
            last_meter = meter
        track = Track(f"{TRACK_PREFIX} take {take.number} variation {index + 1}", 0, False)
        for n in notes:
            track.notes.append(Note(int(n.start), int(n.duration), int(n.pitch), int(n.velocity)))
        score.tracks.append(track)
        end = max([n.start + n.duration for n in notes], default=cursor)
        cursor += max(1, math.ceil((end - cursor) / bar)) * bar
    return score


def write_accepted(path: str | os.PathLike, views: Iterable[TakeView]) -> int:
    """Write every accepted take to ``path`` (atomically); returns how many tracks.

    ``NothingToExport`` when none is accepted; ``WriteError`` (one line naming
    the file) when it cannot be written.
    """
    score = accepted_score(views)
    atomic_write_bytes(Path(path), midi_bytes(score))
    return len(score.tracks)


__all__ = ["NothingToExport", "accepted_score", "accepted_views", "write_accepted"]
