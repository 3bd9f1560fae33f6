"""The model and its recurrent state for the live context (and the styles kept ready beside it)."""
from __future__ import annotations

from typing import Sequence

import torch

from copilot_app.engine.player import freeze_gc_heap
from copilot_app.engine.ready_styles import ReadyStyles
from model.style import Style


class ModelRunner:
    """The model and its recurrent state for one stream of tokens.

    Every context starts from the initial state: the zero state, or a style's
    learned one (model/style.py), kept ready on the model's device so that a
    reset is one copy. Styles kept ready (ready_styles.py) hear the same
    tokens in rows of their own, so ``switch`` to one of them is a copy.
    """

    def __init__(self, model: torch.nn.Module, style: Style | None = None) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.style: Style | None = None
        self._initial = model.init_state(1, device=self.device)
        self.set_style(style)
        self.state = self._initial.clone()
        freeze_gc_heap()  # a newly loaded model: keep full collections short (see player.py)
        self.logits: torch.Tensor | None = None
        self.history: list[int] = []  # the context's tokens since its start (to prime styles made ready later)
        self.ready = ReadyStyles(model, ())

    def set_style(self, style: Style | None) -> None:
        """The initial state of the next context (None: the zero state). The
        caller checked that the style belongs to this model (``Style.check_model``)."""
        self.style = style
        self._initial = (self.model.init_state(1, device=self.device) if style is None
                         else style.initial_state(1, self.device, self.model.dtype))

    def keep_ready(self, styles: Sequence[Style | None]) -> None:
        """Keep these styles primed with the context (the current one's tokens too)."""
        self.ready = ReadyStyles(self.model, styles, self.history)

    def switch(self, style: Style | None) -> bool:
        """Continue the context as if it had started from ``style``: True when
        the style was kept ready (a copy of its row), False when it was not
        (the caller re-primes)."""
        i = self.ready.index(style)
        row = self.ready.row(i) if i is not None else None
        if row is None:
            return False
        self.set_style(style)
        self.state, self.logits = row
        return True

    def reset(self) -> None:
        """A fresh recurrent state (a new context on the same weights)."""
        self.state = self._initial.clone()
        self.logits = None
        self.history.clear()
        self.ready.reset()

    def feed(self, ids: list[int]) -> None:
        for token in ids:
            x = torch.tensor([token], device=self.device)
            self.logits, self.state = self.model.step(x, self.state, inplace=True)
        self._heard(ids)

    def prefill(self, ids: list[int]) -> None:
        """Many tokens at once in parallel mode (a rebuilt context): same state, one pass."""
        if ids:
            x = torch.tensor([ids], device=self.device)
            self.logits, self.state = self.model.prefill(x, self.state)
            self._heard(ids)

    def _heard(self, ids: list[int]) -> None:
        self.history.extend(ids)
        self.ready.hear(ids)
