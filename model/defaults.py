"""Sampling defaults of the app, defined once: the sliders' start, `continue`,
`listen` and `eval` all read them here (no torch import, so command-line help
and the GUI can show them cheaply).

Balanced (0.8-0.9 is the guidance's middle), and top-p cuts the off-key tail.
"""
from __future__ import annotations

DEFAULT_TEMPERATURE = 0.85
DEFAULT_TOP_P = 0.92
