"""A native build (C++ step, CUDA kernel) tried at most once per process.

Both native paths build lazily on first use, never at import, from any
thread. A failure is kept as one line and logged once; every later call gets
None at once and the caller runs its pure-PyTorch fallback.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Disabled(RuntimeError):
    """Raised by a build the user switched off: the reason is kept, but not warned about."""


class BuildOnce(Generic[T]):
    """``get()`` builds on the first call and returns the same result (or None) after."""

    def __init__(self, build: Callable[[], T], log: logging.Logger, unavailable: str) -> None:
        self._build, self._log, self._unavailable = build, log, unavailable
        self._lock = threading.Lock()
        self.value: T | None = None
        self.failure: str | None = None  # one line: why there is no value

    @property
    def tried(self) -> bool:
        return self.value is not None or self.failure is not None

    def get(self) -> T | None:
        if self.tried:
            return self.value
        with self._lock:
            if not self.tried:
                try:
                    self.value = self._build()
                except Exception as e:  # any failure: one line, then the fallback
                    self.failure = " ".join(str(e).split())[:300] or type(e).__name__
                    level = logging.INFO if isinstance(e, Disabled) else logging.WARNING
                    self._log.log(level, "%s: %s", self._unavailable, self.failure)
        return self.value

    def fresh(self) -> "BuildOnce[T]":
        """An untried copy (tests swap it in to build again)."""
        return BuildOnce(self._build, self._log, self._unavailable)
