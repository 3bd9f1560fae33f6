"""How every benchmark here times a call: the median of repeats, after a warm-up."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], repeats: int, inner: int = 1, warmup: int = 1) -> float:
    """Median seconds per call of fn over `repeats` groups of `inner` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)
