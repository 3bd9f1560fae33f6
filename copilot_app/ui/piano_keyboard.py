"""The on-screen piano: clickable keys that light up with what sounds.

Keys you hold (any input) light in one colour, keys the app plays back in
another; the computer-keyboard letters of musical typing
(copilot_app/ui/musical_typing.py) are drawn on their keys.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from copilot_app.ui.musical_typing import TYPING_LABELS

WHITE_STEPS = [0, 2, 4, 5, 7, 9, 11]
BLACK = {1, 3, 6, 8, 10}


class PianoKeyboard(QWidget):
    """Clickable keys; lights the keys sounding now (yours, from any source)."""

    noteOn = Signal(int)
    noteOff = Signal(int)

    def __init__(self, low: int = 36, high: int = 96, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.low, self.high = low, high
        self.lit: set[int] = set()       # keys you hold (any input)
        self.playing: set[int] = set()   # keys the app plays back
        self.typing_base: int | None = 60
        self._mouse_pitch: int | None = None
        self.setToolTip("Click or drag to play; blue: keys you hold, orange: what the copilot plays")
        self.setMinimumHeight(70)
        self.setMaximumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setObjectName("pianoKeyboard")

    def set_lit(self, pitch: int, on: bool) -> None:
        (self.lit.add if on else self.lit.discard)(pitch)
        self.update()

    def set_playing(self, pitch: int, on: bool) -> None:
        """A note the app is sending out (the continuation), lit in the take colour."""
        (self.playing.add if on else self.playing.discard)(pitch)
        self.update()

    def clear_lit(self) -> None:
        self.lit.clear()
        self.playing.clear()
        self.update()

    # -- geometry ---------------------------------------------------------------
    def _whites(self) -> list[int]:
        return [p for p in range(self.low, self.high + 1) if p % 12 not in BLACK]

    def key_rect(self, pitch: int) -> QRectF:
        whites = self._whites()
        ww = self.width() / len(whites)
        h = self.height()
        if pitch % 12 not in BLACK:
            return QRectF(whites.index(pitch) * ww, 0, ww, h - 1)
        left_white = whites.index(pitch - 1)
        return QRectF((left_white + 1) * ww - ww * 0.3, 0, ww * 0.6, h * 0.6)

    def pitch_at(self, x: float, y: float) -> int | None:
        for pitch in range(self.low, self.high + 1):  # black keys sit on top
            if pitch % 12 in BLACK and self.key_rect(pitch).contains(x, y):
                return pitch
        for pitch in self._whites():
            if self.key_rect(pitch).contains(x, y):
                return pitch
        return None

    # -- mouse ------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        pitch = self.pitch_at(event.position().x(), event.position().y())
        if pitch is not None:
            self._mouse_pitch = pitch
            self.noteOn.emit(pitch)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._mouse_pitch is None:
            return
        pitch = self.pitch_at(event.position().x(), event.position().y())
        if pitch is not None and pitch != self._mouse_pitch:  # glissando
            self.noteOff.emit(self._mouse_pitch)
            self._mouse_pitch = pitch
            self.noteOn.emit(pitch)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._mouse_pitch is not None:
            self.noteOff.emit(self._mouse_pitch)
            self._mouse_pitch = None

    # -- painting ---------------------------------------------------------------
    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        lit, playing = QColor("#4aa3f0"), QColor("#f0a030")
        for pitch in self._whites():
            r = self.key_rect(pitch)
            p.fillRect(r, lit if pitch in self.lit else playing if pitch in self.playing else QColor("#f4f4f0"))
            p.setPen(QPen(QColor("#555"), 1))
            p.drawRect(r)
            label = self._label(pitch)
            if label:
                p.setPen(QColor("#777"))
                p.drawText(r.adjusted(0, 0, 0, -4), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                           label)
        for pitch in range(self.low, self.high + 1):
            if pitch % 12 in BLACK:
                r = self.key_rect(pitch)
                p.fillRect(r, lit.darker(130) if pitch in self.lit
                           else playing.darker(130) if pitch in self.playing else QColor("#222"))
                label = self._label(pitch)
                if label:
                    p.setPen(QColor("#ccc"))
                    p.drawText(r.adjusted(0, 0, 0, -3), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                               label)
        p.end()

    def _label(self, pitch: int) -> str:
        if self.typing_base is not None:
            name = TYPING_LABELS.get(pitch - self.typing_base)
            if name:
                return name
        if pitch % 12 == 0:
            return f"C{pitch // 12 - 1}"
        return ""
