"""Tempo, meter, clock source (internal or the DAW's MIDI clock) and the metronome.

What the user changes goes out as commands (``tempoChanged`` ...); what the
engine reports (a file opened in its own tempo and meter) comes back through
``show_timeline``, which sets the controls without sending the change back.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QLabel, QWidget

from copilot_app.engine.clock import Meter
from copilot_app.engine.session_model import DEFAULT_BPM, TimelineView
from copilot_app.engine.phrase_file import MAX_BPM, MIN_BPM

METERS = ["4/4", "3/4", "2/4", "2/2", "6/8", "5/4", "7/8", "9/8", "12/8"]
CLOCK_SOURCES = [("internal", "Internal clock"), ("midi", "MIDI clock (from input)")]


class TimeControls(QWidget):
    """Tempo / meter / sync / metronome (see module docstring)."""

    tempoChanged = Signal(float)
    meterChanged = Signal(object)        # Meter
    clockSourceChanged = Signal(str)     # "internal" or "midi"
    metronomeToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(MIN_BPM, MAX_BPM)
        self.tempo.setDecimals(1)
        self.tempo.setValue(DEFAULT_BPM)
        self.tempo.setSuffix(" BPM")
        self.meter_combo = QComboBox()
        self.meter_combo.addItems(METERS)
        self.clock_combo = QComboBox()
        for key, text in CLOCK_SOURCES:
            self.clock_combo.addItem(text, key)
        self.metronome_check = QCheckBox("Metronome")
        self.tempo.setToolTip("Tempo in quarter notes a minute, as DAWs count (internal clock only)")
        self.meter_combo.setToolTip("Time signature: the bars answers are counted in")
        self.clock_combo.setToolTip("Internal clock, or follow the MIDI clock (Start/Stop/Song Position) "
                                    "a DAW sends on the input")
        self.metronome_check.setToolTip("Click on every beat (GM drum channel on the output)")
        grid.addWidget(QLabel("Tempo"), 0, 0)
        grid.addWidget(self.tempo, 0, 1)
        grid.addWidget(QLabel("Meter"), 0, 2)
        grid.addWidget(self.meter_combo, 0, 3, 1, 2)
        grid.addWidget(QLabel("Sync"), 1, 0)
        grid.addWidget(self.clock_combo, 1, 1, 1, 2)
        grid.addWidget(self.metronome_check, 1, 3, 1, 2)
        self.tempo.valueChanged.connect(self.tempoChanged.emit)
        self.meter_combo.currentTextChanged.connect(lambda text: self.meterChanged.emit(Meter.parse(text)))
        self.clock_combo.currentIndexChanged.connect(lambda _i: self._clock_changed())
        self.metronome_check.toggled.connect(self.metronomeToggled.emit)

    def meter(self) -> Meter:
        return Meter.parse(self.meter_combo.currentText())

    def clock_source(self) -> str:
        return self.clock_combo.currentData()

    def set_values(self, bpm: float, meter: str, source: str, metronome: bool) -> None:
        """Restore saved values (signals go out as for a user's change)."""
        self.tempo.setValue(bpm)
        if meter in METERS:
            self.meter_combo.setCurrentText(meter)
        self.clock_combo.setCurrentIndex(max(0, self.clock_combo.findData(source)))
        self.metronome_check.setChecked(metronome)

    def show_timeline(self, timeline: TimelineView) -> None:
        """The engine's tempo and meter (e.g. an opened file's), shown without echoing a command."""
        text = f"{timeline.meter.numerator}/{timeline.meter.denominator}"
        for widget in (self.tempo, self.meter_combo):
            widget.blockSignals(True)
        try:
            if timeline.source == "internal" and abs(self.tempo.value() - timeline.bpm) > 0.05:
                self.tempo.setValue(timeline.bpm)
            if self.meter_combo.findText(text) < 0:
                self.meter_combo.addItem(text)
            self.meter_combo.setCurrentText(text)
        finally:
            for widget in (self.tempo, self.meter_combo):
                widget.blockSignals(False)

    def _clock_changed(self) -> None:
        source = self.clock_source()
        self.tempo.setEnabled(source == "internal")
        self.clockSourceChanged.emit(source)
