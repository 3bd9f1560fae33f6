"""Short messages for the status bar, shared by every part of the window."""
from __future__ import annotations

from PySide6.QtCore import SignalInstance


def one_line(exc: BaseException) -> str:
    """An exception as one line: its first line of text, else its type's name."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def safe_emit(signal: SignalInstance, *args: object) -> None:
    """Emit from a worker thread; a receiver deleted meanwhile (window closed) is not an error."""
    try:
        signal.emit(*args)
    except RuntimeError:
        pass
