"""Where a take can be sampled again: its state at its start and at each bar line.

"Regenerate from bar N" keeps a variation's first N-1 bars and samples the
rest again; "more like this" samples new variations from the state after a
whole variation. Both start from a recurrent state the take already passed
through, so they cost only the new tokens: ``TakeForks`` keeps, per take,
the context's state before it (``initial``), every row's state at every bar
line inside it (captured by ``generate(forks_out=...)``, one copy per bar
line), and every row's sampled ids. The last ``FORK_TAKES`` takes keep
theirs; older takes, takes of another model and takes restored from a
session file have none (one line says so).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

import torch

from model.generation import Fork
from model.tokens.streaming import DecodedNote

FORK_TAKES = 8  # ~0.3 MB of state per bar line and row for the default model


class NoForkError(ValueError):
    """The take's states are gone (an old take, another model, a restored session)."""


@dataclass
class TakeForks:
    """A take's states (ticks on the encoder timeline the take was made on)."""

    model: torch.nn.Module            # the states belong to these weights only
    start: int                        # the take's window
    end: int
    origin_ticks: int                 # encoder tick 0 in session ticks
    initial: Fork                     # the context before the take
    rows: list[dict[int, Fork]]       # per variation: bar-line tick -> state there
    tokens: list[list[int]]           # per variation: its sampled ids
    loud: Callable[[DecodedNote], int]  # the take's dynamics (velocity of a new note)
    # Where its notes are heard relative to where they were sampled: "more
    # like this" samples the bars after a variation and plays them in its place.
    shift: int = 0

    def bars(self, variation: int) -> int:
        return len(self.rows[variation]) + 1

    def fork_at(self, variation: int, bar: int) -> tuple[int, Fork]:
        """(tick, state) where bar ``bar`` (1 = the take's first) of a variation begins."""
        if not 0 <= variation < len(self.rows):
            raise ValueError(f"no variation {variation + 1} (the take has {len(self.rows)})")
        ticks = sorted(self.rows[variation])
        if not 1 <= bar <= len(ticks) + 1:
            raise ValueError(f"no bar {bar} in this take (bars 1-{len(ticks) + 1})")
        if bar == 1:
            return self.start, self.initial
        return ticks[bar - 2], self.rows[variation][ticks[bar - 2]]

    @torch.no_grad()
    def after(self, variation: int) -> Fork:
        """The state after the whole variation: its ids replayed from the take's
        start in one parallel pass (a few ms; nothing waits on it live)."""
        ids = self.tokens[variation]
        track = self.initial.track.fork()
        for t in ids:
            track.update(t)
        if not ids:
            return Fork(self.initial.state.clone(), self.initial.logits.clone(), track)
        device = self.initial.logits.device
        logits, state = self.model.prefill(torch.tensor([ids], device=device), self.initial.state)
        return Fork(state, logits[0], track, len(ids))

    def regenerated(self, variation: int, tick: int, fork: Fork, new_forks: list[dict[int, Fork]],
                    new_tokens: list[list[int]]) -> "TakeForks":
        """The forks of a take made by sampling again from ``tick``: the kept
        bars' states and ids, then each new row's own."""
        kept = {t: f for t, f in self.rows[variation].items() if t <= tick}
        prefix = self.tokens[variation][: fork.tokens] if tick > self.start else []
        return replace(self, rows=[{**kept, **new} for new in new_forks], tokens=[prefix + t for t in new_tokens])

    def following(self, variation: int) -> "TakeForks":
        """The frame of "more like this": the same number of bars, sampled after
        the variation (from ``after``), heard in the take's place."""
        span = self.end - self.start
        return replace(self, start=self.end, end=self.end + span, initial=self.after(variation),
                       rows=[], tokens=[], shift=self.shift - span)

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
