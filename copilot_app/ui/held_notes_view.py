"""The status bar's live-input corner: the keys the engine holds as down, and the MIDI server.

``HeldNotesView`` renders the engine's ``HeldNotes`` report: "Held: C4 E4?"
(a "?" marks a key held past the bound with no other input, most likely a
lost note-off) with a Clear button that asks the engine to release them.
``MidiServerView`` shows whether the MIDI server (JACK) is there; while it is
gone it says so in red. Both only render what they are given and emit
requests: no engine state is read here.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from copilot_app.engine.held_notes import HeldNotes


class HeldNotesView(QWidget):
    """'Held: C4 E4? [Clear]' (see module docstring)."""

    clearRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("Release every key the app holds as down (a stuck note) and the pedal")
        self.clear_button.clicked.connect(self.clearRequested.emit)
        row.addWidget(self.label)
        row.addWidget(self.clear_button)
        self.held = HeldNotes()
        self.show_held(self.held)

    def show_held(self, held: HeldNotes) -> None:
        self.held = held
        text = held.describe()
        self.label.setText(f"Held: {text}" if text else "Held: —")
        self.label.setStyleSheet("color: #c0392b;" if held.stuck else "")
        self.label.setToolTip(
            "Keys held for a long time with no other input (a lost note-off?): the answer no longer "
            "waits for them; Clear releases them" if held.stuck else "Keys (and the sustain pedal) held now")
        self.clear_button.setEnabled(bool(held))


class MidiServerView(QLabel):
    """'MIDI: ok' or, in red, 'MIDI: server lost' (see module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ok = True
        self.show_server(True, "")

    def show_server(self, ok: bool, message: str) -> None:
        self.ok = ok
        self.setText("MIDI: ok" if ok else "MIDI: server lost")
        self.setStyleSheet("" if ok else "color: #c0392b; font-weight: bold;")
        self.setToolTip(message or "The MIDI server and ports are there")
