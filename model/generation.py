"""Sampling K continuations at once from a forked model state.

The model state, the REMI grammar and the streaming decoder all follow the
context; a take forks the three, samples all K rows in one batch per step
(one ``model.step`` for the batch), and stops each row when its timeline
reaches the end of the requested bars. Two masks keep every row playable:
the REMI grammar (valid, canonical token order) and a time floor (no note
may start before the take's start, so an answer never lands in the past).
The meter is the context's: a new bar repeats the last TimeSig. A ``Steer``
(model/steering.py) adds the composer's controls: the scale and register as
a third mask, density and texture as a bias on the logits.
Row 0's notes are handed to ``on_note`` the moment each is complete, so
playback starts while the other rows are still being sampled.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from model.sampling import SamplingParams, make_generator, sample
from model.steering import Steer
from model.tokens.grammar import RemiGrammar
from model.tokens.performance import grid_step, ticks_per_beat
from model.tokens.streaming import DecodedNote, StreamingDecoder

MAX_TOKENS_PER_BAR = 160  # a safety net; dense piano bars use ~60


@dataclass
class ContextTrack:
    """What has been said so far: grammar and timeline of the context tokens."""

    grammar: RemiGrammar
    decoder: StreamingDecoder
    bar_start_tick: int = 0
    meter: tuple[int, int] = (4, 4)
    timesig_id: int | None = None  # the last TimeSig token: answers keep this meter

    @classmethod
    def fresh(cls) -> "ContextTrack":
        return cls(RemiGrammar(), StreamingDecoder())

    def update(self, token: int) -> DecodedNote | None:
        """Advance by one token id (the grammar raises on an invalid one)."""
        self.grammar.update(token)
        note = self.decoder.feed(token)
        if token == self.grammar.v.bar:
            self.bar_start_tick = self.decoder.position_tick
        elif token in self.grammar.v.timesig:
            self.meter = self.grammar.v.timesig[token]
            self.timesig_id = token
        return note

    def fork(self) -> "ContextTrack":
        decoder = copy.copy(self.decoder)
        decoder.notes = []
        return ContextTrack(self.grammar.fork(), decoder, self.bar_start_tick, self.meter, self.timesig_id)


def context_window(tokens: list[str], bars: int) -> tuple[list[str], int]:
    """The last ``bars`` bars of a REMI sequence, and the tick where they start.

    A REMI bar is self-contained (Bar, TimeSig, then positions inside it), so
    cutting at a Bar token leaves a valid sequence.
    """
    decoder = StreamingDecoder()
    bar_index, bar_ticks = [], []
    for i, tok in enumerate(tokens):
        decoder.feed(tok)
        if tok == "Bar_None":
            bar_index.append(i)
            bar_ticks.append(decoder.position_tick)
    if not bar_index:
        raise ValueError("the file has no notes to continue")
    first = max(0, len(bar_index) - bars)
    return tokens[bar_index[first]:], bar_ticks[first]


def track_of(ids: list[int]) -> ContextTrack:
    """The grammar/timeline after ``ids``. Tokens before the first Bar (the
    tail of a bar cut off by a context window) are skipped: they say nothing
    about the bars that follow, and the grammar could not place them."""
    track = ContextTrack.fresh()
    v = track.grammar.v
    first = next((i for i, t in enumerate(ids) if int(t) in (v.bar, v.bos)), len(ids))
    for token in ids[first:]:
        track.update(int(token))
    return track


@torch.no_grad()
def prime(model: torch.nn.Module, ids: list[int], state: object | None = None
          ) -> tuple[ContextTrack, torch.Tensor, object]:
    """Context ids through the model in parallel mode (one prefill) and the track.

    ``state``: the batch-1 state to start from (a style's, model/style.py);
    default the zero state. It is not modified.
    Returns (track, logits [V] after the last id, state batch 1): what
    ``generate`` continues from.
    """
    device = next(model.parameters()).device
    tokens = torch.tensor([list(map(int, ids))], device=device)
    # Only a style's state is passed on: the baselines' prefill takes tokens alone.
    logits, state = model.prefill(tokens) if state is None else model.prefill(tokens, state)
    return track_of(ids), logits[0], state


def answer_span(track: ContextTrack, last_end_tick: int, bars: int) -> tuple[int, int]:
    """(start, end) ticks of a ``bars``-bar answer in the context's meter,
    starting on the first beat at or after ``last_end_tick``."""
    num, den = track.meter
    beat = ticks_per_beat(den)
    start = -(-last_end_tick // beat) * beat
    return start, start + max(1, bars) * num * beat


def _time_floor_mask(track: ContextTrack, start_tick: int) -> np.ndarray | None:
    """Tokens allowed by the time floor: nothing may start before ``start_tick``.

    None where there is nothing to forbid (mid-note the grammar decides alone).
    """
    g, d = track.grammar, track.decoder
    if not g.allowed()[g.v.bar]:
        return None
    m = np.ones(g.v.size, dtype=bool)
    if d.position_tick < start_tick:
        m[g.v.pitch_ids] = False  # no more notes at a position in the past
    num, den = track.meter
    bar_tick = track.bar_start_tick
    if bar_tick + num * ticks_per_beat(den) <= start_tick:
        m[g.v.pos_ids] = False  # the whole bar is past: only a new Bar
    else:
        first = -(-(start_tick - bar_tick) // grid_step(den))  # ceil
        m[g.v.pos_ids[: max(first, 0)]] = False
    return m


@dataclass
class Fork:
    """Where sampling can start again: a model state (batch 1), the logits
    after it and the track, e.g. a take's row at one of its bar lines."""

    state: object
    logits: torch.Tensor
    track: ContextTrack


def row_finished(track: ContextTrack, end_tick: int) -> bool:
    return track.decoder.position_tick >= end_tick


def generate(
    model: torch.nn.Module,
    state,
    logits: torch.Tensor,
    context: ContextTrack,
    start_tick: int,
    end_tick: int,
    k: int,
    params: SamplingParams,
    seed: int | None = None,
    on_note: Callable[[DecodedNote], None] | None = None,
    max_tokens: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    tokens_out: list[list[int]] | None = None,
    steer: Steer | None = None,
    bars_out: list[dict[int, int]] | None = None,
    forks_out: list[dict[int, Fork]] | None = None,
) -> list[list[DecodedNote]]:
    """Sample ``k`` continuations; returns each row's notes with start < end_tick.

    ``state``/``logits`` are the model's after the last context token (batch 1);
    they are not modified. ``should_stop`` is polled every step (panic from
    another thread): when it turns true the rows end where they are.
    ``tokens_out``, when given, receives each row's sampled token ids (eval
    reads bar lengths and the grammar off them). ``steer``: the composer's
    controls for this take. ``bars_out``, when given, receives for each row
    its bar lines strictly inside the take: tick -> how many of the row's
    tokens lead there (the Bar included), where it can be sampled again;
    ``forks_out`` a copy of the row's state at those bar lines, taken only
    once row 0's first note is out (a copy is ~50 us: never in the time to
    the first note). A bar line without one is rebuilt from the ids.
    """
    rows = [context.fork() for _ in range(k)]
    if tokens_out is not None:
        tokens_out[:] = [[] for _ in range(k)]
    if bars_out is not None:
        bars_out[:] = [{} for _ in range(k)]
    if forks_out is not None:
        forks_out[:] = [{} for _ in range(k)]
    notes: list[list[DecodedNote]] = [[] for _ in range(k)]
    counts = [0] * k  # tokens each row has taken
    done = [row_finished(r, end_tick) for r in rows]
    state_k = state.repeat(k)
    logits_k = logits.reshape(1, -1).expand(k, -1).contiguous()
    generator = make_generator(seed, logits.device)
    bars = max(1, -(-(end_tick - start_tick) // (4 * ticks_per_beat(4))) + 1)
    budget = max_tokens or MAX_TOKENS_PER_BAR * bars
    eos = context.grammar.v.eos
    bar_id = context.grammar.v.bar
    for _ in range(budget):
        if all(done) or (should_stop is not None and should_stop()):
            break
        mask = np.ones((k, logits_k.shape[-1]), dtype=bool)
        bias = np.zeros(mask.shape, dtype=np.float32) if steer is not None and steer.soft else None
        raw = logits_k.float().cpu().numpy() if bias is not None and steer.pace is not None else None
        biased = False
        for i, row in enumerate(rows):
            if done[i]:
                continue
            allowed = row.grammar.allowed_keeping_meter(context.timesig_id)
            allowed[eos] = False  # the take ends by time, not by the model giving up
            floor = _time_floor_mask(row, start_tick)
            if floor is not None:
                allowed &= floor
            if steer is not None:
                biased |= steer.apply(allowed, row, None if bias is None else bias[i, : allowed.shape[0]],
                                      None if raw is None else raw[i, : allowed.shape[0]], params.temperature,
                                      start_tick)
            mask[i, : allowed.shape[0]] = allowed
        forced = [int(np.flatnonzero(mask[i])[0]) if not done[i] and mask[i].sum() == 1 else -1
                  for i in range(k)]
        if all(f >= 0 or done[i] for i, f in enumerate(forced)):
            # Every live row has one legal token (a Bar the time floor demands,
            # the TimeSig after it): no need to sample. This is most of the
            # tokens before the first note of an answer to a long pause.
            tokens = torch.tensor([max(f, 0) for f in forced])
        else:
            if biased:
                assert bias is not None
                logits_k = logits_k + torch.from_numpy(bias).to(logits_k.device)
            tokens = sample(logits_k, params, generator=generator, mask=torch.from_numpy(mask))
        crossed = []  # rows that just took a Bar inside the take
        for i, row in enumerate(rows):
            if done[i]:
                continue
            note = row.update(int(tokens[i]))
            counts[i] += 1
            if int(tokens[i]) == bar_id and start_tick < row.bar_start_tick < end_tick:
                if bars_out is not None:
                    bars_out[i][row.bar_start_tick] = counts[i]
                crossed.append(i)
            if tokens_out is not None:
                tokens_out[i].append(int(tokens[i]))
            if row_finished(row, end_tick):
                done[i] = True
            elif note is not None and note.start >= start_tick:
                notes[i].append(note)
                if i == 0 and on_note is not None:
                    on_note(note)
        if all(done):
            break
        logits_k, state_k = model.step(tokens, state_k, inplace=True)
        if forks_out is not None and crossed and (notes[0] or on_note is None):
            for i in crossed:
                forks_out[i][rows[i].bar_start_tick] = Fork(state_k.select([i]), logits_k[i].clone(),
                                                            rows[i].fork())
    return notes
