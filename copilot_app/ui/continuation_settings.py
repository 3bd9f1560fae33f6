"""The "Continuation" box: when to answer, how long, and how adventurous.

Trigger (after silence, soft pedal, lowest key, or the button only), length
in bars, temperature and top-p sliders, the number of variations and the
answer's velocity (follow the player's dynamics, or one fixed velocity), and
under "Advanced" top-k and where an answer starts. Every control has a tooltip. Each change goes out as
``changed({field: value})`` with the engine's ``SessionSettings`` field
names; the sliders start at the engine's defaults. ``show_settings`` sets
the controls to a session's settings without sending them back.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QSpinBox,
                               QToolButton, QWidget)

from copilot_app.engine.session import START_MODES, SessionSettings
from copilot_app.ui.settings_store import Keys
from model.tokens.config import PITCH_RANGE

TRIGGERS = [("silence", "After silence"), ("pedal", "Soft pedal (CC 67)"),
            ("key", "Lowest key A0"), ("button", "Continue button only")]
SOFT_PEDAL_CC = 67
LOWEST_KEY = PITCH_RANGE[0]  # A0, the piano's lowest key
HUNDREDTHS = 100  # the sliders count in hundredths
_DEFAULTS = SessionSettings()


class ContinuationSettings(QWidget):
    """The settings box (see module docstring)."""

    changed = Signal(dict)          # SessionSettings fields -> new values
    triggerModeChanged = Signal(str, float)  # mode, silence beats (for saving)
    advancedToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.trigger_combo = QComboBox()
        for key, text in TRIGGERS:
            self.trigger_combo.addItem(text, key)
        self.trigger_beats = QDoubleSpinBox()
        self.trigger_beats.setRange(0.5, 16.0)
        self.trigger_beats.setSingleStep(0.5)
        self.trigger_beats.setValue(_DEFAULTS.trigger_beats)
        self.trigger_beats.setSuffix(" beats")
        self.bars = QSpinBox()
        self.bars.setRange(1, 16)
        self.bars.setValue(_DEFAULTS.bars)
        self.bars.setSuffix(" bars")
        self.trigger_combo.setToolTip("When the copilot answers: after you pause, when you press the soft pedal, "
                                      "when you play the lowest key (A0), or only on Continue")
        self.trigger_beats.setToolTip("How long a pause (in beats) counts as the end of your phrase")
        self.bars.setToolTip("How many bars each answer lasts")
        grid.addWidget(QLabel("Answer"), 0, 0)
        grid.addWidget(self.trigger_combo, 0, 1)
        grid.addWidget(self.trigger_beats, 0, 2)
        grid.addWidget(QLabel("Length"), 0, 3)
        grid.addWidget(self.bars, 0, 4)

        self.temperature = QSlider(Qt.Orientation.Horizontal)
        self.temperature.setRange(10, 200)
        self.temperature.setValue(round(_DEFAULTS.temperature * HUNDREDTHS))
        self.temperature_value = QLabel(f"{_DEFAULTS.temperature:.2f}")
        self.top_p = QSlider(Qt.Orientation.Horizontal)
        self.top_p.setRange(50, 100)
        self.top_p.setValue(round(_DEFAULTS.top_p * HUNDREDTHS))
        self.top_p_value = QLabel(f"{_DEFAULTS.top_p:.2f}")
        for label in (self.temperature_value, self.top_p_value):
            label.setMinimumWidth(34)
        self.temperature.setToolTip("0.5–0.7 conservative · 0.8–0.9 balanced · 1.0–1.5 adventurous")
        self.top_p.setToolTip("Nucleus sampling: only the most likely notes that together make up this share "
                              "are considered (lower: safer, higher: more surprising)")
        self.temperature_value.setToolTip(self.temperature.toolTip())
        self.top_p_value.setToolTip(self.top_p.toolTip())
        grid.addWidget(QLabel("Temperature"), 1, 0)
        grid.addWidget(self.temperature, 1, 1, 1, 3)
        grid.addWidget(self.temperature_value, 1, 4)
        grid.addWidget(QLabel("Top-p"), 2, 0)
        grid.addWidget(self.top_p, 2, 1, 1, 3)
        grid.addWidget(self.top_p_value, 2, 4)

        self.variations = QSpinBox()
        self.variations.setRange(1, 8)
        self.variations.setValue(Keys.VARIATIONS.default)
        self.variations.setToolTip("How many different answers each take holds: step through them with "
                                   "◀ / ▶ Variation and accept the one you like")
        self.velocity = QSpinBox()
        self.velocity.setRange(0, 127)
        self.velocity.setSpecialValueText("Follow you")
        self.velocity.setValue(Keys.FIXED_VELOCITY.default)
        self.velocity.setToolTip("How loud answers play: \"Follow you\" takes the level, swells and accents "
                                 "of your last bars; 1–127 plays every answer note at that velocity")
        row = QHBoxLayout()
        row.addWidget(self.variations)
        velocity_label = QLabel("Velocity")
        velocity_label.setToolTip(self.velocity.toolTip())
        row.addWidget(velocity_label)
        self.velocity.setMinimumWidth(110)
        row.addWidget(self.velocity)
        row.addStretch(1)
        variations_label = QLabel("Variations")
        variations_label.setToolTip(self.variations.toolTip())
        grid.addWidget(variations_label, 3, 0)
        grid.addLayout(row, 3, 1, 1, 4)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setToolTip("Show or hide top-k and where an answer starts")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        grid.addWidget(self.advanced_toggle, 4, 0)
        self.advanced = QWidget()
        adv = QHBoxLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 500)
        self.top_k.setValue(_DEFAULTS.top_k)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip("Consider only the k most likely notes at each step (off: no limit)")
        self.start_on = QComboBox()
        self.start_on.addItems(list(START_MODES))
        self.start_on.setCurrentText(_DEFAULTS.start_on)
        self.start_on.setToolTip("Where an answer starts: on the next bar line, the next beat, or right away")
        for text, w in (("Top-k", self.top_k), ("Start on", self.start_on)):
            label = QLabel(text)
            label.setToolTip(w.toolTip())
            adv.addWidget(label)
            adv.addWidget(w)
        adv.addStretch(1)
        self.advanced.setVisible(False)
        grid.addWidget(self.advanced, 4, 1, 1, 4)

        self.trigger_combo.currentIndexChanged.connect(lambda _i: self._trigger_changed())
        self.trigger_beats.valueChanged.connect(lambda _v: self._trigger_changed())
        self.bars.valueChanged.connect(lambda v: self.changed.emit({"bars": v}))
        self.temperature.valueChanged.connect(self._temperature_changed)
        self.top_p.valueChanged.connect(self._top_p_changed)
        self.top_k.valueChanged.connect(lambda v: self.changed.emit({"top_k": v}))
        self.variations.valueChanged.connect(lambda v: self.changed.emit({"variations": v}))
        self.velocity.valueChanged.connect(lambda v: self.changed.emit({"fixed_velocity": v or None}))
        self.start_on.currentTextChanged.connect(lambda v: self.changed.emit({"start_on": v}))
        self.advanced_toggle.toggled.connect(self._advanced_toggled)

    def trigger_mode(self) -> str:
        return self.trigger_combo.currentData()

    def values(self) -> dict:
        """Every setting this box controls, as SessionSettings fields."""
        return {"bars": self.bars.value(), "temperature": self.temperature.value() / HUNDREDTHS,
                "top_p": self.top_p.value() / HUNDREDTHS, "top_k": self.top_k.value(),
                "variations": self.variations.value(), "start_on": self.start_on.currentText(),
                "fixed_velocity": self.velocity.value() or None,
                **self._trigger_settings()}

    def show_settings(self, settings: SessionSettings) -> None:
        """Show these settings (an opened session's), sending nothing: the engine has them."""
        widgets = (self.trigger_combo, self.trigger_beats, self.bars, self.temperature, self.top_p, self.top_k,
                   self.variations, self.velocity, self.start_on)
        for w in widgets:
            w.blockSignals(True)
        try:
            # Any trigger CC or key the session has is shown as the one the box offers.
            mode = ("pedal" if settings.trigger_cc is not None else "key" if settings.trigger_key is not None
                    else "silence" if settings.trigger_beats > 0 else "button")
            self.trigger_combo.setCurrentIndex(self.trigger_combo.findData(mode))
            if settings.trigger_beats > 0:
                self.trigger_beats.setValue(settings.trigger_beats)
            self.bars.setValue(settings.bars)
            self.temperature.setValue(round(settings.temperature * HUNDREDTHS))
            self.top_p.setValue(round(settings.top_p * HUNDREDTHS))
            self.top_k.setValue(settings.top_k)
            self.variations.setValue(settings.variations)
            self.velocity.setValue(settings.fixed_velocity or 0)
            if self.start_on.findText(settings.start_on) >= 0:
                self.start_on.setCurrentText(settings.start_on)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.trigger_beats.setEnabled(self.trigger_mode() == "silence")
        self.temperature_value.setText(f"{self.temperature.value() / HUNDREDTHS:.2f}")
        self.top_p_value.setText(f"{self.top_p.value() / HUNDREDTHS:.2f}")

    def _trigger_settings(self) -> dict:
        mode = self.trigger_mode()
        return {"trigger_beats": self.trigger_beats.value() if mode == "silence" else 0.0,
                "trigger_cc": SOFT_PEDAL_CC if mode == "pedal" else None,
                "trigger_key": LOWEST_KEY if mode == "key" else None}

    def _trigger_changed(self) -> None:
        self.trigger_beats.setEnabled(self.trigger_mode() == "silence")
        self.changed.emit(self._trigger_settings())
        self.triggerModeChanged.emit(self.trigger_mode(), self.trigger_beats.value())

    def _temperature_changed(self, v: int) -> None:
        self.temperature_value.setText(f"{v / HUNDREDTHS:.2f}")
        self.changed.emit({"temperature": v / HUNDREDTHS})

    def _top_p_changed(self, v: int) -> None:
        self.top_p_value.setText(f"{v / HUNDREDTHS:.2f}")
        self.changed.emit({"top_p": v / HUNDREDTHS})

    def _advanced_toggled(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.advancedToggled.emit(on)
