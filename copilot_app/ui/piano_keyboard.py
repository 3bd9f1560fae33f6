"""Playing without a MIDI keyboard: an on-screen piano and computer-keyboard typing.

Musical typing uses the usual DAW layout: the home row is the white keys
(A = C, S = D, … ; = E an octave up), the row above the black keys
(W E  T Y U  O P), Z and X move an octave down and up.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

WHITE_STEPS = [0, 2, 4, 5, 7, 9, 11]
BLACK = {1, 3, 6, 8, 10}

# key code -> semitones above the typing octave's C
TYPING_KEYS: dict[int, int] = {
    Qt.Key.Key_A: 0, Qt.Key.Key_W: 1, Qt.Key.Key_S: 2, Qt.Key.Key_E: 3, Qt.Key.Key_D: 4,
    Qt.Key.Key_F: 5, Qt.Key.Key_T: 6, Qt.Key.Key_G: 7, Qt.Key.Key_Y: 8, Qt.Key.Key_H: 9,
    Qt.Key.Key_U: 10, Qt.Key.Key_J: 11, Qt.Key.Key_K: 12, Qt.Key.Key_O: 13, Qt.Key.Key_L: 14,
    Qt.Key.Key_P: 15, Qt.Key.Key_Semicolon: 16,
}
TYPING_LABELS = {v: QKeyName for QKeyName, v in {
    "A": 0, "W": 1, "S": 2, "E": 3, "D": 4, "F": 5, "T": 6, "G": 7, "Y": 8, "H": 9, "U": 10,
    "J": 11, "K": 12, "O": 13, "L": 14, "P": 15, ";": 16}.items()}
OCTAVE_DOWN, OCTAVE_UP = Qt.Key.Key_Z, Qt.Key.Key_X


class MusicalTyping:
    """Turns key presses into pitches; no Qt widgets, so it is easy to test."""

    def __init__(self, base: int = 60) -> None:
        self.base = base
        self.down: dict[int, int] = {}  # key -> pitch it started

    def press(self, key: int) -> int | None:
        """The pitch to start, or None (octave keys change ``base``)."""
        if key == OCTAVE_DOWN:
            self.base = max(24, self.base - 12)
            return None
        if key == OCTAVE_UP:
            self.base = min(96, self.base + 12)
            return None
        step = TYPING_KEYS.get(key)
        if step is None or key in self.down:
            return None
        pitch = self.base + step
        if not 21 <= pitch <= 108:
            return None
        self.down[key] = pitch
        return pitch

    def release(self, key: int) -> int | None:
        return self.down.pop(key, None)

    def handles(self, key: int) -> bool:
        return key in TYPING_KEYS or key in (OCTAVE_DOWN, OCTAVE_UP)


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
