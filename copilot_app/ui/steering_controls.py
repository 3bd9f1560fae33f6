"""The "Steer" box: key/scale lock, register, density and texture (issue 19).

Each change goes out as ``changed({field: value})`` with the engine's
``SessionSettings`` field names (``key``, ``register_low``,
``register_high``, ``density``, ``texture``); the engine enforces them while
it samples (model/steering.py). What the engine reports comes back through
``show_heard`` (the key the last bars suggest, the register in force) and
``show_settings`` (a session's own values), which set the controls without
sending anything back.

The engine publishes no snapshot for a played note, so while notes are
played the box asks for one now and then (``snapshotWanted``, at most every
``HEARD_REFRESH_MS``) to keep the heard key current as the player modulates.
"""
from __future__ import annotations

from typing import Mapping

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QSpinBox, QToolButton, QWidget

from copilot_app.engine.session import SessionSettings
from copilot_app.ui.settings_store import Keys, SettingsStore
from model.scales import SCALES, TONICS, parse_key
from model.steering import KEY_MODES, check_key, parse_pitch
from model.tokens.config import PITCH_RANGE

HUNDREDTHS = 100  # the density and texture sliders count in hundredths of -1 ... +1
AUTO = PITCH_RANGE[0] - 1  # the register spin boxes' "auto" (below the lowest key)
HEARD_REFRESH_MS = 400
STEER_FIELDS = ("key", "register_low", "register_high", "density", "texture")
_DEFAULTS = SessionSettings()


def note_name(pitch: int) -> str:
    """MIDI pitch -> name with octave, C4 = 60 (the spelling model/scales.py uses)."""
    return f"{TONICS[pitch % 12]}{pitch // 12 - 1}"


def saved_steering(store: SettingsStore) -> dict:
    """The steering settings kept in QSettings, as SessionSettings fields; a value
    the engine would refuse (a hand-edited or older file) falls back to its default."""
    try:
        key = check_key(store.get(Keys.KEY))
    except ValueError:
        key = _DEFAULTS.key

    def pitch(raw: int, default: int | None) -> int | None:
        return raw if PITCH_RANGE[0] <= raw <= PITCH_RANGE[1] else default

    def unit(raw: float, default: float) -> float:
        return raw if -1.0 <= raw <= 1.0 else default

    return {"key": key, "register_low": pitch(store.get(Keys.REGISTER_LOW), _DEFAULTS.register_low),
            "register_high": pitch(store.get(Keys.REGISTER_HIGH), _DEFAULTS.register_high),
            "density": unit(store.get(Keys.DENSITY), _DEFAULTS.density),
            "texture": unit(store.get(Keys.TEXTURE), _DEFAULTS.texture)}


class PitchSpinBox(QSpinBox):
    """A register bound as a note name (C4 = 60; typing 60 or C4 both work); its
    lowest value is "auto", shown with the pitch the engine uses for it now."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(AUTO, PITCH_RANGE[1])
        self.setSpecialValueText("auto")
        self.setValue(AUTO)
        self.auto_pitch: int | None = None  # what "auto" resolves to now (the engine's report)
        self.setMinimumWidth(100)

    def register_value(self) -> int | None:
        return None if self.value() == AUTO else self.value()

    def set_register_value(self, pitch: int | None) -> None:
        self.setValue(AUTO if pitch is None else pitch)

    def show_auto(self, pitch: int | None) -> None:
        self.auto_pitch = pitch
        self.setSpecialValueText("auto" if pitch is None else f"auto ({note_name(pitch)})")

    def textFromValue(self, value: int) -> str:  # noqa: N802 (Qt name)
        return "auto" if value == AUTO else note_name(value)

    def valueFromText(self, text: str) -> int:  # noqa: N802
        text = text.strip()
        if not text or text.lower().startswith("auto"):
            return AUTO
        try:
            return parse_pitch(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        t = text.strip()
        if t.lower().startswith("auto") or t == self.specialValueText():
            return QValidator.State.Acceptable, text, pos
        try:
            parse_pitch(t)
        except (ValueError, IndexError):
            return QValidator.State.Intermediate, text, pos  # e.g. "C" on the way to "C4"
        return QValidator.State.Acceptable, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        # Up from "auto" starts at the pitch auto stands for, not at A0
        # (which would take dozens of clicks to leave).
        if self.value() == AUTO and steps > 0 and self.auto_pitch is not None:
            self.setValue(self.auto_pitch)
            return
        super().stepBy(steps)


class CentredSlider(QSlider):
    """-1 ... +1 in hundredths; a double-click puts it back to 0 (as played)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setRange(-HUNDREDTHS, HUNDREDTHS)
        self.setPageStep(HUNDREDTHS // 4)
        self.setMinimumWidth(90)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.setValue(0)
        event.accept()


class SteeringControls(QWidget):
    """The steering box (see module docstring)."""

    changed = Signal(dict)       # SessionSettings fields -> new values
    snapshotWanted = Signal()    # notes were played: the heard key may have moved

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)

        self.key_combo = QComboBox()
        self.key_combo.addItem("Off", "off")
        self.key_combo.addItem("Auto", "auto")
        for tonic in TONICS:
            self.key_combo.addItem(tonic, tonic)
        self.key_combo.setToolTip("Keep every answer note in a key: Off, Auto (the key your last bars suggest, "
                                  "following you as you modulate), or a key you choose with its scale")
        self.scale_combo = QComboBox()
        self.scale_combo.addItems(list(SCALES))
        self.scale_combo.setToolTip("The scale of the chosen key (major, minor, the modes, pentatonic, blues, "
                                    "chromatic); Auto picks major or minor itself")
        self.heard = QLabel("heard: –")
        self.heard.setToolTip("The key your last bars suggest: what Auto locks to")
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_combo)
        key_row.addWidget(self.scale_combo, 1)
        key_row.addWidget(self.heard)
        self._label(grid, 0, "Key", self.key_combo.toolTip())
        grid.addLayout(key_row, 0, 1, 1, 4)

        self.low = PitchSpinBox()
        self.high = PitchSpinBox()
        self.low.setToolTip("The answer's lowest note (C4 = middle C = 60; type a name or a number). "
                            "auto: your phrase's lowest note, a fourth lower")
        self.high.setToolTip("The answer's highest note (C4 = middle C = 60; type a name or a number). "
                             "auto: your phrase's highest note, a fourth higher")
        register_row = QHBoxLayout()
        register_row.addWidget(self.low, 1)
        to = QLabel("to")
        to.setToolTip("From the lowest to the highest note an answer may play")
        register_row.addWidget(to)
        register_row.addWidget(self.high, 1)
        self._label(grid, 1, "Register", "The lowest and highest notes an answer may play")
        grid.addLayout(register_row, 1, 1, 1, 4)

        self.density, self.density_value = self._slider_row(
            grid, 2, "Density", ("sparser", "busier"),
            "How busy answers are against your phrase's pace: left end half as many notes, right end twice "
            "as many (centre: as played); double-click to reset")
        self.texture, self.texture_value = self._slider_row(
            grid, 3, "Texture", ("single line", "chords"),
            "Notes struck together: a single line at the left end, more chords to the right "
            "(centre: as played); double-click to reset")

        self._heard_timer = QTimer(self)
        self._heard_timer.setSingleShot(True)
        self._heard_timer.setInterval(HEARD_REFRESH_MS)
        self._heard_timer.timeout.connect(self.snapshotWanted.emit)

        self.show_settings({name: getattr(_DEFAULTS, name) for name in STEER_FIELDS})
        self.key_combo.currentIndexChanged.connect(lambda _i: self._key_changed())
        self.scale_combo.currentIndexChanged.connect(lambda _i: self._key_changed())
        self.low.valueChanged.connect(lambda _v: self._register_changed(self.low))
        self.high.valueChanged.connect(lambda _v: self._register_changed(self.high))
        for name, slider, button in (("density", self.density, self.density_value),
                                     ("texture", self.texture, self.texture_value)):
            slider.valueChanged.connect(lambda v, n=name, b=button: self._unit_changed(n, v, b))
            button.clicked.connect(lambda _c=False, s=slider: s.setValue(0))

    # -- building ------------------------------------------------------------------
    @staticmethod
    def _label(grid: QGridLayout, row: int, text: str, tip: str) -> QLabel:
        label = QLabel(text)
        label.setToolTip(tip)
        grid.addWidget(label, row, 0)
        return label

    def _slider_row(self, grid: QGridLayout, row: int, name: str, ends: tuple[str, str],
                    tip: str) -> tuple[CentredSlider, QToolButton]:
        slider = CentredSlider()
        slider.setToolTip(tip)
        value = QToolButton()
        value.setAutoRaise(True)
        value.setMinimumWidth(64)
        value.setToolTip(f"{name} now (click: back to as played)")
        self._label(grid, row, name, tip)
        for col, text in ((1, ends[0]), (3, ends[1])):
            end = QLabel(text)
            end.setToolTip(tip)
            end.setAlignment(Qt.AlignmentFlag.AlignRight if col == 1 else Qt.AlignmentFlag.AlignLeft)
            grid.addWidget(end, row, col)
        grid.addWidget(slider, row, 2)
        grid.addWidget(value, row, 4)
        return slider, value

    # -- values --------------------------------------------------------------------
    def key_text(self) -> str:
        """"off", "auto" or "<tonic> <scale>", as SessionSettings.key."""
        mode = self.key_combo.currentData()
        return mode if mode in KEY_MODES else f"{mode} {self.scale_combo.currentText()}"

    def values(self) -> dict:
        """Every setting this box controls, as SessionSettings fields."""
        return {"key": self.key_text(), "register_low": self.low.register_value(),
                "register_high": self.high.register_value(), "density": self.density.value() / HUNDREDTHS,
                "texture": self.texture.value() / HUNDREDTHS}

    def show_settings(self, settings: Mapping[str, object]) -> None:
        """Set the controls to these SessionSettings fields (those present), sending nothing."""
        widgets = (self.key_combo, self.scale_combo, self.low, self.high, self.density, self.texture)
        for w in widgets:
            w.blockSignals(True)
        try:
            if "key" in settings:
                key = str(settings["key"])
                if key.strip().lower() in KEY_MODES:
                    self.key_combo.setCurrentIndex(self.key_combo.findData(key.strip().lower()))
                else:
                    tonic, scale = parse_key(key)
                    self.key_combo.setCurrentIndex(self.key_combo.findData(TONICS[tonic]))
                    self.scale_combo.setCurrentText(scale)
            if "register_low" in settings:
                self.low.set_register_value(settings["register_low"])  # type: ignore[arg-type]
            if "register_high" in settings:
                self.high.set_register_value(settings["register_high"])  # type: ignore[arg-type]
            for name, slider in (("density", self.density), ("texture", self.texture)):
                if name in settings:
                    slider.setValue(round(float(settings[name]) * HUNDREDTHS))  # type: ignore[arg-type]
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.scale_combo.setEnabled(self.key_combo.currentData() not in KEY_MODES)
        self._show_unit(self.density, self.density_value)
        self._show_unit(self.texture, self.texture_value)

    def show_heard(self, heard_key: str | None, register: tuple[int, int] | None) -> None:
        """What the engine reports: the key the last bars suggest and the register in force."""
        self.heard.setText(f"heard: {heard_key or '–'}")
        low, high = register if register is not None else (None, None)
        self.low.show_auto(low)
        self.high.show_auto(high)

    def note_played(self) -> None:
        """A note was played: ask for a fresh snapshot soon (at most every HEARD_REFRESH_MS)."""
        if not self._heard_timer.isActive():
            self._heard_timer.start()

    # -- changes -------------------------------------------------------------------
    def _key_changed(self) -> None:
        self.scale_combo.setEnabled(self.key_combo.currentData() not in KEY_MODES)
        self.changed.emit({"key": self.key_text()})

    def _register_changed(self, which: PitchSpinBox) -> None:
        low, high = self.low.register_value(), self.high.register_value()
        if low is not None and high is not None and low > high:
            # Keep the range the right way round: the other bound follows (its
            # own change goes out as it moves).
            (self.high if which is self.low else self.low).setValue(which.value())
            low, high = self.low.register_value(), self.high.register_value()
        self.changed.emit({"register_low": low, "register_high": high})

    def _unit_changed(self, name: str, value: int, button: QToolButton) -> None:
        self._show_unit(self.density if name == "density" else self.texture, button)
        self.changed.emit({name: value / HUNDREDTHS})

    @staticmethod
    def _show_unit(slider: QSlider, button: QToolButton) -> None:
        v = slider.value()
        button.setText("as played" if v == 0 else f"{v / HUNDREDTHS:+.2f}")


__all__ = ["SteeringControls", "PitchSpinBox", "note_name", "saved_steering", "STEER_FIELDS", "HUNDREDTHS"]
