"""Defaults of the trainer that other parts show or reuse (the fine-tune dialog,
the help text), defined once here; no heavy imports so the GUI can read them."""
from __future__ import annotations

#: Minutes a fine-tune may run by default: small data, and with start-up and the
#: last eval it stays under 5 minutes in all.
FINE_TUNE_BUDGET_MIN = 4.0

#: Minutes `train --style` (learning a style: the initial state only) runs by
#: default: the style issue's "your style in a minute".
STYLE_BUDGET_MIN = 1.0
