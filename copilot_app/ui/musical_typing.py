"""Musical typing: the computer keyboard as a piano (the row of the window that turns it on).

The usual DAW layout: the home row is the white keys (A = C, S = D, … ;
= E an octave up), the row above the black keys (W E  T Y U  O P), Z and X
move an octave down and up. ``MusicalTyping`` is the mapping (no widgets);
``TypingRow`` is the check box and octave label under the piano roll, and
an application-wide event filter that plays the keys while the window has
the focus (not while a text or number field has it).

A held key repeats: the system sends press (and on X11 release) events over
and over while it is down. Events flagged as auto-repeat are ignored; and
because some platforms send the repeats as plain release/press pairs (X11
without detectable auto-repeat, some remote desktops), a release only ends
its note after ``RELEASE_GRACE_MS``: a press of the same key before then is
the key still being held, not a new note.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QCheckBox, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QWidget)

from model.tokens.config import PITCH_RANGE

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
# A release followed this soon by a press of the same key is auto-repeat (a
# repeat's pair arrives within a millisecond or two; fingers need 50+ ms to
# strike a key again).
RELEASE_GRACE_MS = 30


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
        if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
            return None
        self.down[key] = pitch
        return pitch

    def release(self, key: int) -> int | None:
        return self.down.pop(key, None)

    def handles(self, key: int) -> bool:
        return key in TYPING_KEYS or key in (OCTAVE_DOWN, OCTAVE_UP)


class TypingRow(QWidget):
    """The "Musical typing" check box, the typing octave, and the key filter.

    ``send_note(pitch, on)`` plays a note (the bridge's keyboard path);
    ``octaveChanged`` tells the on-screen piano where to draw the letters
    (None: typing is off).
    """

    octaveChanged = Signal(object)   # the typing octave's C, or None when typing is off
    toggled = Signal(bool)

    def __init__(self, window: QWidget, send_note: Callable[[int, bool], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._window = window
        self._send_note = send_note
        self.typing = MusicalTyping()
        self._pending: dict[int, QTimer] = {}  # key -> the timer that will end its note
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox("Musical typing (A–; keys, Z/X octave)")
        self.check.setChecked(True)
        self.check.setToolTip("Play with the computer keyboard: A W S E D F T G Y H U J K O L P ; are the keys "
                              "of one octave, Z / X move it down / up")
        self.octave_label = QLabel("")
        row.addWidget(self.check)
        row.addWidget(self.octave_label)
        row.addStretch(1)
        self.check.toggled.connect(self._toggled)
        self._update_label()

    def install(self) -> None:
        QApplication.instance().installEventFilter(self)

    def uninstall(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def release_all(self) -> None:
        """End every typed note (focus lost, panic)."""
        for timer in self._pending.values():
            timer.stop()
        self._pending.clear()
        for key in list(self.typing.down):
            pitch = self.typing.release(key)
            if pitch is not None:
                self._send_note(pitch, False)

    def _toggled(self, on: bool) -> None:
        self._update_label()
        self.octaveChanged.emit(self.typing.base if on else None)
        self.toggled.emit(on)

    def _update_label(self) -> None:
        on = self.check.isChecked()
        self.octave_label.setText(f"typing octave: C{self.typing.base // 12 - 1}" if on else "")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if not self.check.isChecked() or not isinstance(obj, QWidget) or obj.window() is not self._window:
            return False
        if event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                                | Qt.KeyboardModifier.MetaModifier):
            return False
        if isinstance(QApplication.focusWidget(), (QLineEdit, QAbstractSpinBox, QPlainTextEdit)):
            return False
        key = event.key()
        if not self.typing.handles(key):
            return False
        if event.isAutoRepeat():
            return True
        if event.type() == QEvent.Type.KeyPress:
            pending = self._pending.pop(key, None)
            if pending is not None:  # released a moment ago: a repeat, the note goes on
                pending.stop()
                return True
            before = self.typing.base
            pitch = self.typing.press(key)
            if pitch is not None:
                self._send_note(pitch, True)
            elif self.typing.base != before:
                self._update_label()
                self.octaveChanged.emit(self.typing.base)
        elif key in self.typing.down and key not in self._pending:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda k=key: self._release(k))
            self._pending[key] = timer
            timer.start(RELEASE_GRACE_MS)
        return True

    def _release(self, key: int) -> None:
        """The grace after a key's release passed with no press: its note ends."""
        timer = self._pending.pop(key, None)
        if timer is not None:
            timer.deleteLater()
        pitch = self.typing.release(key)
        if pitch is not None:
            self._send_note(pitch, False)
