"""Styles kept primed beside the live context, so switching is a copy.

A style is the state every context starts from (model/style.py). Switching to
another one by re-priming the recent bars from its state costs the engine
thread a forward pass over them (27 ms for a 4-bar phrase, 0.3 s for 2048
tokens) and drops the older context. Instead, the styles the Style menu
offers (and "no style") are kept as extra rows of one batched state that
hears the same tokens as the live one: the live path appends the tokens to a
backlog (nothing else, so the time to the first note does not change), and
the rows catch up a few tokens per poll of the engine thread, whenever the
player pauses and while they play on. A switch to a ready style then catches up what is left (usually
nothing) and copies that row into the live state: the whole context, heard
from the new style's start.

A style is recognised by the SHA-256 of its values (``Style.digest``), so the
same file loaded twice is the same row.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from model.state import RWKVState
from model.style import Style

MAX_READY_STYLES = 8  # styles kept ready (+ no style); each row costs a share of every catch-up
# Token x row steps per catch-up: the engine thread pays it per poll (every
# 20 ms). One batched step costs ~0.3 ms at 2 rows and ~1.1 ms at 9 on one
# thread (parallel prefill costs 8-20 ms a call at these sizes, so the rows
# step), so a catch-up is ~4 ms, and 2 rows keep up with 800 tokens/s, 9 rows
# with 200: far above playing.
CATCH_UP_TOKEN_ROWS = 32
# A switch catches up at most this many tokens itself; further behind (a long
# context just made ready), it re-primes the recent bars instead.
SWITCH_CATCH_UP_MAX = 32
NO_STYLE_KEY = ""


def style_key(style: Style | None) -> str:
    """What identifies ``style``'s starting state ("" for none)."""
    return NO_STYLE_KEY if style is None else style.digest


class ReadyStyles:
    """Rows of one batched state, one per kept style, fed the live context's tokens.

    ``history`` is every token of the context since its start, so a set of
    styles chosen mid-context catches up from the beginning.
    """

    def __init__(self, model: torch.nn.Module, styles: Sequence[Style | None], history: Sequence[int] = ()) -> None:
        self.model = model
        device = next(model.parameters()).device
        self.keys: list[str] = []
        rows: list[RWKVState] = []
        for style in styles:
            key = style_key(style)
            if key in self.keys:
                continue
            if len(self.keys) == MAX_READY_STYLES + 1:  # the styles + no style
                break
            self.keys.append(key)
            rows.append(model.init_state(1, device=device) if style is None
                        else style.initial_state(1, device, model.dtype))
        self._initial = RWKVState(*(torch.cat([getattr(r, f) for r in rows], dim=1)
                                    for f in ("att_x", "wkv", "ffn_x"))) if rows else None
        self.state = self._initial.clone() if self._initial is not None else None
        self.logits: Tensor | None = None  # [rows, V] after the last token caught up
        self.backlog: list[int] = list(history)

    def __len__(self) -> int:
        return len(self.keys)

    def reset(self) -> None:
        """A new context: every row back to its style's start."""
        if self._initial is not None:
            self.state = self._initial.clone()
        self.logits = None
        self.backlog.clear()

    def hear(self, ids: Sequence[int]) -> None:
        """Tokens the live state took in; the rows take them at the next catch-up."""
        if self.keys:
            self.backlog.extend(ids)

    @property
    def chunk(self) -> int:
        """Tokens per catch-up at this many rows."""
        return max(1, CATCH_UP_TOKEN_ROWS // max(1, len(self.keys)))

    def catch_up(self, limit: int | None = None) -> int:
        """Feed up to ``limit`` backlog tokens (all when None) to every row; returns how many."""
        if not self.backlog or self.state is None:
            return 0
        n = len(self.backlog) if limit is None else min(limit, len(self.backlog))
        chunk, self.backlog = self.backlog[:n], self.backlog[n:]
        rows = len(self.keys)
        for token in chunk:
            x = torch.full((rows,), token, dtype=torch.long, device=self.state.device)
            self.logits, self.state = self.model.step(x, self.state, inplace=True)
        return n

    def index(self, style: Style | None) -> int | None:
        key = style_key(style)
        return self.keys.index(key) if key in self.keys else None

    def row(self, i: int) -> tuple[RWKVState, Tensor] | None:
        """A copy of row ``i`` (state, logits [1, V]) with the whole context heard;
        None while it has heard nothing (a context always starts with BOS) or is
        too far behind to catch up at once."""
        if len(self.backlog) > SWITCH_CATCH_UP_MAX:
            return None
        self.catch_up()
        if self.state is None or self.logits is None:
            return None
        return self.state.select([i]), self.logits[i:i + 1].clone()
