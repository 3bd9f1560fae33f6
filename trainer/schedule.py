"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

A pure function of the step, so resuming needs nothing but the step.
"""
from __future__ import annotations

import math


def lr_at(step: int, peak: float, warmup: int, total: int, floor_ratio: float = 0.1) -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``total``."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = peak * floor_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
