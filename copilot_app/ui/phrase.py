"""File > Open phrase…: continue a .mid file as if it had just been played.

``read_phrase`` (file I/O and tokenizing) runs on a worker thread;
``continue_phrase`` runs on the engine thread, which owns the model. The
model hears the file's last bars (prefilled in parallel mode, as the
``continue`` command does), samples the session's K variations, and the
result becomes an ordinary take of the live session: it starts on the next
bar line, is played at once, and can be auditioned, accepted and dragged out
like any other. No Qt in this module.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from model.generation import answer_span, context_window, generate, prime
from copilot_app.engine.session import SessionSettings, Take
from model.tokens.config import TICKS_PER_QUARTER
from model.tokens.midi_io import encode_piece, load_piano_piece
from model.tokens.performance import GridNote, ticks_per_beat
from model.tokens.streaming import DecodedNote

CONTEXT_BARS = 4


@dataclass
class Phrase:
    name: str
    notes: list[GridNote]      # the whole file on the REMI grid
    context: list[str]         # REMI tokens of its last bars
    offset: int                # tick where the context starts
    tempo_qpm: float
    velocity: int


def read_phrase(path: str | Path, context_bars: int = CONTEXT_BARS) -> Phrase:
    """Read and tokenize a .mid file; one-line errors (MidiError) for bad files."""
    source = load_piano_piece(path)
    tokens = encode_piece(source.piece)
    context, offset = context_window(tokens, context_bars)
    velocity = int(statistics.median(n.velocity for n in source.piece.notes))
    return Phrase(Path(path).name, list(source.piece.notes), context, offset, source.tempo_qpm, velocity)


def continue_phrase(session, phrase: Phrase, settings: SessionSettings
                    ) -> tuple[list[tuple[float, float, int]], Take]:
    """On the engine thread: sample a take after ``phrase`` and play it from the next bar.

    Returns the phrase's notes as (start, end, pitch) in session quarters (placed
    so the file ends where the take begins) and the take, already appended to
    the session's takes.
    """
    ids = [session.vocab["BOS_None"]] + [session.vocab[t] for t in phrase.context]
    track, logits, state = prime(session.runner.model, ids)
    last_end = max(n.start + n.duration for n in phrase.notes) - phrase.offset
    start, end = answer_span(track, last_end, settings.bars)
    rows = generate(session.runner.model, state, logits, track, start, end, max(1, settings.variations),
                    settings.sampling(), seed=settings.seed)

    now = session.clock.now()
    take_tick = -(-int(round(session.quarters_at(session.grid.next_boundary(now, "bar"))
                             * TICKS_PER_QUARTER * 1000)) // 1000)
    shift = take_tick - start  # context ticks -> session ticks
    variations = [[DecodedNote(n.start + shift, n.duration, n.pitch, phrase.velocity) for n in row]
                  for row in rows]
    take = session.record_take(take_tick / TICKS_PER_QUARTER, variations, phrase.velocity)
    session.audition(0, now, take)
    file_shift = shift - phrase.offset  # file ticks -> session ticks
    notes = [((n.start + file_shift) / TICKS_PER_QUARTER,
              (n.start + n.duration + file_shift) / TICKS_PER_QUARTER, n.pitch) for n in phrase.notes]
    return notes, take
