"""The transport row: Continue, variations, Stop, Panic, and "thinking…" while a take is sampled.

The buttons only emit; the window connects them to the same commands as the
Play menu, whose shortcuts (``SHORTCUTS``) work wherever the focus is.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

SHORTCUTS = {
    "continue": "Space",
    "accept": "Return",
    "next": "Right",
    "previous": "Left",
    "stop": "Shift+Space",
    "panic": "Escape",
}


class TransportBar(QWidget):
    """The row of play buttons under the settings (see module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.continue_button = QPushButton(f"Continue ({SHORTCUTS['continue']})")
        self.continue_button.setObjectName("continueButton")
        self.continue_button.setStyleSheet("#continueButton { font-weight: bold; padding: 4px 14px; }")
        self.prev_button = QPushButton("◀ Variation")
        self.next_button = QPushButton("Variation ▶")
        self.stop_button = QPushButton("Stop")
        self.panic_button = QPushButton("Panic (Esc)")
        self.continue_button.setToolTip(f"Answer your phrase now ({SHORTCUTS['continue']})")
        self.prev_button.setToolTip("Hear the previous variation of the selected take (←)")
        self.next_button.setToolTip("Hear the next variation of the selected take (→)")
        self.stop_button.setToolTip("Stop the answer that is playing")
        self.panic_button.setToolTip("All notes off on the output, at once (Esc)")
        for b in (self.continue_button, self.prev_button, self.next_button, self.stop_button, self.panic_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays the Continue shortcut
            row.addWidget(b)
        row.addStretch(1)
        self.busy_label = QLabel("")
        row.addWidget(self.busy_label)

    def set_busy(self, busy: bool) -> None:
        self.busy_label.setText("thinking…" if busy else "")
