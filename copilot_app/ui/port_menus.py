"""The MIDI input and output menus (and the button that looks for ports again).

Listing and opening ports happen on the port worker (port_worker.py); these
menus ask through the bridge and show the answers: a port that opened is
remembered, one that failed puts the menu back on (none). The saved ports
open once the first listing arrives.

The Output menu offers the built-in piano (the app's own synthesizer) before
the system's ports, the default on first start; "Thru" beside it passes what the input plays on
to the output (on by default for the built-in piano, a setting for the
other outputs: each remembers its own).
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QToolButton, QWidget

from copilot_app.engine.midi_ports import VIRTUAL_IN, VIRTUAL_OUT
from copilot_app.engine.synth_output import BUILTIN, BUILTIN_LABEL
from copilot_app.ui.port_worker import VIRTUAL
from copilot_app.ui.settings_store import Keys, SettingsStore

OWN_PORTS = "Composer Copilot"  # our own virtual ports are offered once, as "virtual"


class PortMenus(QWidget):
    """Input / Output menus (see module docstring)."""

    inputChosen = Signal(object)    # a port name, VIRTUAL, or None for none
    outputChosen = Signal(object)
    refreshRequested = Signal()
    thruToggled = Signal(bool, bool)  # the output is the built-in piano, thru on

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
        self.thru_check = QCheckBox("Thru")
        self.thru_check.setToolTip("MIDI thru: what you play on the input also sounds on this output "
                                   "(on by default for the built-in piano)")
        grid.addWidget(QLabel("Output"), 1, 0)
        grid.addWidget(self.output_combo, 1, 1, 1, 3)
        grid.addWidget(self.thru_check, 1, 4)
        self.input_combo.activated.connect(lambda _i: self.inputChosen.emit(self.input_combo.currentData() or None))
        self.output_combo.activated.connect(
            lambda _i: self.outputChosen.emit(self.output_combo.currentData() or None))
        self.refresh_button.clicked.connect(self.refreshRequested.emit)
        self.thru_check.toggled.connect(
            lambda on: self.thruToggled.emit(self.output_combo.currentData() == BUILTIN, on))
        self.fill([], [])

    def fill(self, inputs: list[str], outputs: list[str]) -> None:
        """(none), our virtual port, (output: the built-in piano), then the system's; an open port that vanished stays shown."""
        for combo, names, virtual in ((self.input_combo, inputs, VIRTUAL_IN),
                                      (self.output_combo, outputs, VIRTUAL_OUT)):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("(none)", "")
            combo.addItem(f"{virtual} (virtual)", VIRTUAL)
            if combo is self.output_combo:
                combo.addItem(BUILTIN_LABEL, BUILTIN)
            for name in names:
                if not name.startswith(OWN_PORTS):
                    combo.addItem(name, name)
            i = combo.findData(current)
            if i < 0 and current:
                combo.addItem(current, current)
                i = combo.count() - 1
            combo.setCurrentIndex(i if i >= 0 else 0)
            combo.blockSignals(False)
        self.refresh_thru()

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

    # -- MIDI thru ------------------------------------------------------------------
    def bind_thru(self, store: SettingsStore, set_thru: Callable[[bool, bool], None]) -> None:
        """Keep the Thru box, the saved settings and the port worker's thru (``set_thru(builtin, external)``) in step."""
        self._thru_store = store
        set_thru(store.get(Keys.THRU_BUILTIN), store.get(Keys.THRU_EXTERNAL))

        def toggled(builtin: bool, on: bool) -> None:
            store.put(Keys.THRU_BUILTIN if builtin else Keys.THRU_EXTERNAL, on)
            set_thru(on if builtin else None, None if builtin else on)
        self.thruToggled.connect(toggled)
        self.output_combo.currentIndexChanged.connect(lambda _i: self.refresh_thru())
        self.refresh_thru()

    def refresh_thru(self) -> None:
        """Show the thru setting of the output chosen now (without ``thruToggled``)."""
        store = getattr(self, "_thru_store", None)
        current = self.output_combo.currentData()
        builtin = current == BUILTIN
        on = (store.get(Keys.THRU_BUILTIN if builtin else Keys.THRU_EXTERNAL) if store is not None
              else builtin)
        self.thru_check.blockSignals(True)
        self.thru_check.setChecked(bool(current) and on)
        self.thru_check.setEnabled(bool(current))
        self.thru_check.blockSignals(False)
