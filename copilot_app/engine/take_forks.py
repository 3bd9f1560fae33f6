"""Where a take can be sampled again: its start state, its rows' ids, its bar lines.

"Regenerate from bar N" keeps a variation's first N-1 bars and samples the
rest again; "more like this" samples new variations from the state after a
whole variation. Both need the recurrent state a row had at a point inside
the take. ``TakeForks`` keeps the context's state before the take
(``initial``), every row's sampled ids, where each row's bar lines fall
among them (``generate(bars_out=...)``) and a copy of the state at those bar
lines (``generate(forks_out=...)``): starting from a copy costs nothing. A
bar line crossed before the answer's first note was out has no copy (it
would have delayed that note); its state, and the state after a whole
variation, are the row's ids replayed in one parallel pass from the nearest
copy before them, else from ``initial`` (~0.3 ms a token on one CPU thread). The last ``FORK_TAKES`` takes keep theirs;
older takes, takes of another model and takes restored from a session file
have none (one line says so).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

import torch

from model.generation import Fork
from model.tokens.streaming import DecodedNote

FORK_TAKES = 8  # each keeps a state per row and bar line (~0.3 MB each for the default model)


class NoForkError(ValueError):
    """The take's states are gone (an old take, another model, a restored session)."""


@dataclass
class TakeForks:
    """A take's start state, ids and bar lines (ticks on the encoder timeline it was made on)."""

    model: torch.nn.Module            # the states belong to these weights only
    start: int                        # the take's window
    end: int
    origin_ticks: int                 # encoder tick 0 in session ticks
    initial: Fork                     # the context before the take
    bars: list[dict[int, int]]        # per variation: bar-line tick -> its ids up to there
    states: list[dict[int, Fork]]     # per variation: bar-line tick -> the state there (where copied)
    tokens: list[list[int]]           # per variation: its sampled ids
    loud: Callable[[DecodedNote], int]  # the take's dynamics (velocity of a new note)
    # Where its notes are heard relative to where they were sampled: "more
    # like this" samples the bars after a variation and plays them in its place.
    shift: int = 0

    def fork_at(self, variation: int, bar: int) -> tuple[int, int, Fork]:
        """(tick, ids kept, state) where bar ``bar`` (1 = the take's first) of a variation begins."""
        if not 0 <= variation < len(self.bars):
            raise ValueError(f"no variation {variation + 1} (the take has {len(self.bars)})")
        ticks = sorted(self.bars[variation])
        if not 1 <= bar <= len(ticks) + 1:
            raise ValueError(f"no bar {bar} in this take (bars 1-{len(ticks) + 1})")
        if bar == 1:
            return self.start, 0, self.replay(variation, 0)
        tick = ticks[bar - 2]
        count = self.bars[variation][tick]
        copied = self.states[variation].get(tick) if variation < len(self.states) else None
        return tick, count, copied if copied is not None else self.replay(variation, count)

    def after(self, variation: int) -> Fork:
        """The state after the whole variation."""
        return self.replay(variation, len(self.tokens[variation]))

    @torch.no_grad()
    def replay(self, variation: int, count: int) -> Fork:
        """The state after the first ``count`` ids of a variation: from the
        nearest copied bar-line state before them (else the take's start), the
        ids after it in one parallel pass."""
        copied = self.states[variation] if variation < len(self.states) else {}
        done, base = 0, self.initial
        for tick, fork in copied.items():
            at = self.bars[variation][tick]
            if done < at <= count:
                done, base = at, fork
        ids = self.tokens[variation][done:count]
        track = base.track.fork()
        for t in ids:
            track.update(t)
        if not ids:
            return Fork(base.state.clone(), base.logits.clone(), track)
        device = base.logits.device
        logits, state = self.model.prefill(torch.tensor([ids], device=device), base.state)
        return Fork(state, logits[0], track)

    def regenerated(self, variation: int, tick: int, kept: int, new_bars: list[dict[int, int]],
                    new_states: list[dict[int, Fork]], new_tokens: list[list[int]]) -> "TakeForks":
        """The record of a take made by sampling again after the first ``kept``
        ids of a variation (from ``tick``): those ids, bar lines and states,
        then each new row's own."""
        prefix = self.tokens[variation][:kept]
        old = {t: c for t, c in self.bars[variation].items() if t <= tick}
        copied = self.states[variation] if variation < len(self.states) else {}
        old_states = {t: f for t, f in copied.items() if t <= tick}
        return replace(self, bars=[{**old, **{t: c + kept for t, c in new.items()}} for new in new_bars],
                       states=[{**old_states, **new} for new in new_states],
                       tokens=[prefix + t for t in new_tokens])

    def following(self, variation: int) -> "TakeForks":
        """The frame of "more like this": the same number of bars, sampled after
        the variation (from its end state), heard in the take's place."""
        span = self.end - self.start
        return replace(self, start=self.end, end=self.end + span, initial=self.after(variation),
                       bars=[], states=[], tokens=[], shift=self.shift - span)

    def heard_tick(self, tick: int) -> int:
        """A tick of this frame on the session's timeline (where it is heard)."""
        return tick + self.origin_ticks + self.shift


class ForkCache:
    """The forks of the last ``FORK_TAKES`` takes, by take number."""

    def __init__(self, size: int = FORK_TAKES) -> None:
        self.size = size
        self._forks: OrderedDict[int, TakeForks] = OrderedDict()

    def put(self, number: int, forks: TakeForks) -> None:
        self._forks[number] = forks
        self._forks.move_to_end(number)
        while len(self._forks) > self.size:
            self._forks.popitem(last=False)

    def get(self, number: int, model: torch.nn.Module | None) -> TakeForks:
        forks = self._forks.get(number)
        if forks is None or model is None or forks.model is not model:
            raise NoForkError(f"take {number} cannot be sampled again: its model states are gone (kept for the "
                              f"last {self.size} takes of the loaded model, not across restarts)")
        return forks

    def clear(self) -> None:
        self._forks.clear()
