"""Progress: a tqdm bar on a terminal, JSON lines on stdout for the app, or nothing.

JSON lines (one object each, flushed): ``{"event": "step", "step", "steps",
"loss", "val_loss", "lr", "tokens_per_s", "eta_s", "epoch"}`` every step, plus
``{"event": "eval" | "checkpoint" | "info" | "done", ...}``.
"""
from __future__ import annotations

import json
import math
import sys
from typing import Any


def _clean(v: Any) -> Any:
    # JSON has no NaN/inf: the app's parser would choke on them.
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 6)
    return v


class Progress:
    def __init__(self, mode: str = "none", enabled: bool = True) -> None:
        if mode not in ("tqdm", "json", "none"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode if enabled else "none"
        self.steps = 0
        self._bar = None

    def start(self, steps: int, at: int) -> None:
        self.steps = steps
        if self.mode == "tqdm":
            from tqdm import tqdm

            self._bar = tqdm(total=steps, initial=at, file=sys.stderr, unit="step", dynamic_ncols=True)

    def step(self, rec: dict[str, Any], val_loss: float | None) -> None:
        if self.mode == "json":
            # val_loss only on steps that evaluated: the app plots each one as a point
            self.event("step", **{**rec, "steps": self.steps, "val_loss": rec.get("val_loss")})
        elif self._bar is not None:
            post = {"loss": f"{rec['loss']:.3f}", "tok/s": f"{rec['tokens_per_s']:.0f}"}
            if val_loss is not None:
                post["val"] = f"{val_loss:.3f}"
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)

    def event(self, kind: str, **fields: Any) -> None:
        if self.mode == "json":
            obj = {"event": kind, **{k: _clean(v) for k, v in fields.items()}}
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
