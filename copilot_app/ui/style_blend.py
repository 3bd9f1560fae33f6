"""Style > Blend two styles…: a slider between the starting states of two styles.

The blend is ``(1 - t) x A + t x B`` of the two learned states
(``model.style.Style.blend``). Measured on held-out pieces of both styles
(bench/style_blend.py), the NLL of the answers moves smoothly from one
style's to the other's, with no blend worse than both ends. The dialog only asks the bridge for a blend
when the slider is let go (each one re-primes the engine's context), and the
engine's snapshot names the blend in use.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDialog, QFormLayout, QLabel, QSlider, QVBoxLayout, QWidget

from copilot_app.ui.styles import StyleEntry

STEPS = 100  # slider positions from all A (0) to all B (STEPS)


class StyleBlendDialog(QDialog):
    """Two styles of the loaded model and the amount of the second."""

    blendRequested = Signal(str, str, float)  # path A, path B, amount of B in 0..1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Blend two styles")
        self.setModal(False)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.first, self.second = QComboBox(), QComboBox()
        form.addRow("Style A:", self.first)
        form.addRow("Style B:", self.second)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setValue(STEPS // 2)
        form.addRow("A ↔ B:", self.slider)
        layout.addLayout(form)
        self.mix = QLabel("")
        layout.addWidget(self.mix)
        self.first.setToolTip("The style at the left end of the slider")
        self.second.setToolTip("The style at the right end of the slider")
        self.slider.setToolTip("How much of style B: the next answer starts from the blend of both states")
        self.slider.valueChanged.connect(lambda _v: self._show_mix())
        self.slider.sliderReleased.connect(self.apply)
        self.first.activated.connect(lambda _i: self.apply())
        self.second.activated.connect(lambda _i: self.apply())

    def set_styles(self, entries: list[StyleEntry]) -> None:
        """The styles to choose from (those of the loaded model), keeping the current choice."""
        for combo, default in ((self.first, 0), (self.second, 1)):
            chosen = combo.currentData()
            combo.clear()
            for entry in entries:
                combo.addItem(entry.name, str(entry.path))
            i = combo.findData(chosen)
            combo.setCurrentIndex(i if i >= 0 else min(default, combo.count() - 1))
        self._show_mix()

    def amount(self) -> float:
        return self.slider.value() / STEPS

    def _show_mix(self) -> None:
        if self.first.count() < 2:
            self.mix.setText("Learn two styles for this model first (Style > Learn a style from my pieces…).")
            return
        t = self.amount()
        self.mix.setText(f"{self.first.currentText()} {1 - t:.0%} + {self.second.currentText()} {t:.0%}")

    def apply(self) -> bool:
        """Ask for the blend now (the slider's release does); False without two styles."""
        if self.first.count() < 2 or self.first.currentData() is None or self.second.currentData() is None:
            return False
        self.blendRequested.emit(self.first.currentData(), self.second.currentData(), self.amount())
        return True
