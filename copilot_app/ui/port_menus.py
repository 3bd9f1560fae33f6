"""The MIDI input and output menus (and the button that looks for ports again).

Listing and opening ports happen on the port worker (port_worker.py); these
menus ask through the bridge and show the answers: a port that opened is
remembered, one that failed puts the menu back on (none). The saved ports
open once the first listing arrives.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QToolButton, QWidget

from copilot_app.engine.midi_ports import VIRTUAL_IN, VIRTUAL_OUT
from copilot_app.ui.port_worker import VIRTUAL

OWN_PORTS = "Composer Copilot"  # our own virtual ports are offered once, as "virtual"


class PortMenus(QWidget):
    """Input / Output menus (see module docstring)."""

    inputChosen = Signal(object)    # a port name, VIRTUAL, or None for none
    outputChosen = Signal(object)
    refreshRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.input_combo = QComboBox()
        self.output_combo = QComboBox()
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Look for MIDI ports again")
        self.input_combo.setMinimumWidth(200)
        self.output_combo.setMinimumWidth(200)
        grid.addWidget(QLabel("Input"), 0, 0)
        grid.addWidget(self.input_combo, 0, 1, 1, 3)
        grid.addWidget(self.refresh_button, 0, 4)
        grid.addWidget(QLabel("Output"), 1, 0)
        grid.addWidget(self.output_combo, 1, 1, 1, 4)
        self.input_combo.activated.connect(lambda _i: self.inputChosen.emit(self.input_combo.currentData() or None))
        self.output_combo.activated.connect(
            lambda _i: self.outputChosen.emit(self.output_combo.currentData() or None))
        self.refresh_button.clicked.connect(self.refreshRequested.emit)
        self.fill([], [])

    def fill(self, inputs: list[str], outputs: list[str]) -> None:
        """(none), our virtual port, then the system's; an open port that vanished stays shown."""
        for combo, names, virtual in ((self.input_combo, inputs, VIRTUAL_IN),
                                      (self.output_combo, outputs, VIRTUAL_OUT)):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("(none)", "")
            combo.addItem(f"{virtual} (virtual)", VIRTUAL)
            for name in names:
                if not name.startswith(OWN_PORTS):
                    combo.addItem(name, name)
            i = combo.findData(current)
            if i < 0 and current:
                combo.addItem(current, current)
                i = combo.count() - 1
            combo.setCurrentIndex(i if i >= 0 else 0)
            combo.blockSignals(False)

    def open_saved(self, saved_in: str, saved_out: str, open_input: Callable[[str], None],
                   open_output: Callable[[str], None], missing: Callable[[str], None]) -> None:
        """Select and open the saved ports that are there; ``missing(name)`` for those that are not."""
        for combo, name, opener in ((self.input_combo, saved_in, open_input),
                                    (self.output_combo, saved_out, open_output)):
            if not name:
                continue
            i = combo.findData(name)
            if i < 0:
                missing(name)
                continue
            combo.setCurrentIndex(i)
            opener(name)

    def opened(self, combo: QComboBox, name: str, ok: bool) -> str | None:
        """A port's answer: its label when open; on failure the menu goes back to (none)."""
        if ok:
            i = combo.findData(name)
            return combo.itemText(i) if i >= 0 else "(none)"
        if combo.currentData() == name:  # the user has not picked another one meanwhile
            combo.setCurrentIndex(0)
        return None
