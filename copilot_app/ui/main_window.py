"""The main window: ports and time, sampling sliders, live piano roll, takes, keyboard.

Every control talks to the engine through ``EngineBridge`` (copilot_app/ui/bridge.py);
the engine, the MIDI port worker and the take-file writer answer with queued
signals, so nothing here waits on inference, MIDI ports, file I/O or training. Settings persist in QSettings (the caller passes the
QSettings object, so tests use a temporary file and never touch the user's).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QCheckBox, QComboBox, QDoubleSpinBox,
                               QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QMainWindow, QMessageBox, QPlainTextEdit, QPushButton, QSlider,
                               QSpinBox, QSplitter, QToolButton, QVBoxLayout, QWidget)

from copilot_app import __version__
from copilot_app.engine.clock import Meter
from copilot_app.engine.session import START_MODES, Take
from copilot_app.ui.bridge import VIRTUAL, EngineBridge, safe_emit
from copilot_app.ui.finetune import FineTuneDialog
from copilot_app.ui.keyboard import MusicalTyping, PianoKeyboard
from copilot_app.ui.models import ModelEntry, all_models, default_models_dir
from copilot_app.ui.piano_roll import PianoRoll
from copilot_app.ui.take_files import take_file_name
from copilot_app.ui.takes import TakeRef, TakesPanel, file_mime_data

TITLE = "Composer Copilot"
METERS = ["4/4", "3/4", "2/4", "2/2", "6/8", "5/4", "7/8", "9/8", "12/8"]
TRIGGERS = [("silence", "After silence"), ("pedal", "Soft pedal (CC 67)"),
            ("key", "Lowest key A0"), ("button", "Continue button only")]
SOFT_PEDAL_CC, LOWEST_KEY = 67, 21
FRAME_MS = 33  # piano roll refresh (about 30 per second)

SHORTCUTS = {
    "continue": "Space",
    "accept": "Return",
    "next": "Right",
    "previous": "Left",
    "stop": "Shift+Space",
    "panic": "Escape",
}


class MainWindow(QMainWindow):
    """Top-level window (see module docstring)."""

    errorShown = Signal(str)
    notice = Signal(str)  # a status-bar message from a worker thread (queued)
    exported = Signal(str)  # path of a take written by File > Export take…

    def __init__(self, model_label: str = "none", device_label: str = "CPU", parent: QWidget | None = None,
                 *, settings: QSettings | None = None, bridge: EngineBridge | None = None,
                 models_dir: Path | None = None, model_path: str | None = None, device: str = "auto",
                 autoload: bool = True, open_ports: bool = True, persist: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.resize(1280, 800)
        self.settings = settings if settings is not None else QSettings()
        self.persist = persist
        self.bridge = bridge or EngineBridge(parent=self)
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self.device = device
        self.last_error: str | None = None
        self.loading = False  # a model is being loaded on a worker thread
        self.finetune_dialog: FineTuneDialog | None = None
        self._extra_model: Path | None = Path(model_path) if model_path else None
        self._restoring = True
        self._open_saved_after_listing = open_ports  # saved ports open once the ports are listed
        self.typing = MusicalTyping()

        self._build_actions()
        self._build_menus()
        self._build_central()
        self._build_status(model_label, device_label)
        self._connect_bridge()
        self.notice.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self._restore_settings()
        self._restoring = False
        self.rebuild_model_menu()

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(FRAME_MS)
        QApplication.instance().installEventFilter(self)

        self.refresh_ports(list_system=open_ports)
        if autoload:
            start = self._startup_model(model_path)
            if start is not None:
                self.switch_model(str(start))
            else:
                self.show_error("No model yet: choose one in the Model menu (Open model file…).", dialog=False)

    # -- building -----------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut: str | QKeySequence | None = None, tip: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            if tip:
                a.setStatusTip(tip)
            a.triggered.connect(slot)
            self.addAction(a)  # shortcuts work wherever the focus is in the window
            return a

        self.act_open_phrase = action("&Open phrase…", self.open_phrase, QKeySequence.StandardKey.Open,
                                      "Continue a .mid file as if you had just played it")
        self.act_export = action("&Export take…", self.export_take, "Ctrl+E", "Save the selected take as .mid")
        self.act_quit = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_continue = action("&Continue now", self.bridge_trigger, SHORTCUTS["continue"],
                                   "Answer the phrase now")
        self.act_accept = action("&Accept take", self.accept_current, SHORTCUTS["accept"])
        self.act_next = action("&Next variation", lambda: self.step_variation(+1), SHORTCUTS["next"])
        self.act_previous = action("&Previous variation", lambda: self.step_variation(-1),
                                   SHORTCUTS["previous"])
        self.act_stop = action("&Stop playback", lambda: self.bridge.stop_playback(), SHORTCUTS["stop"])
        self.act_panic = action("All notes off (&panic)", self.panic, SHORTCUTS["panic"])
        self.act_open_model = action("Open model &file…", self.open_model_file)
        self.act_finetune = action("&Fine-tune on my pieces…", self.open_finetune)
        self.act_models_folder = action("Show models &folder", self.show_models_folder)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.act_open_phrase)
        file_menu.addAction(self.act_export)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        play = self.menuBar().addMenu("&Play")
        for a in (self.act_continue, self.act_accept, self.act_next, self.act_previous, self.act_stop,
                  self.act_panic):
            play.addAction(a)
        self.model_menu = self.menuBar().addMenu("&Model")
        help_menu = self.menuBar().addMenu("&Help")
        shortcuts = QAction("&Keyboard shortcuts", self)
        shortcuts.triggered.connect(self._show_shortcuts)
        help_menu.addAction(shortcuts)
        about = QAction("&About Composer Copilot", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _build_central(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        top = QHBoxLayout()
        top.addWidget(self._build_io_box(), 3)
        top.addWidget(self._build_sampling_box(), 4)
        outer.addLayout(top)

        # transport row
        row = QHBoxLayout()
        self.continue_button = QPushButton(f"Continue ({SHORTCUTS['continue']})")
        self.continue_button.setObjectName("continueButton")
        self.continue_button.setStyleSheet("#continueButton { font-weight: bold; padding: 4px 14px; }")
        self.stop_button = QPushButton("Stop")
        self.panic_button = QPushButton("Panic (Esc)")
        self.prev_button = QPushButton("◀ Variation")
        self.next_button = QPushButton("Variation ▶")
        for b in (self.continue_button, self.prev_button, self.next_button, self.stop_button, self.panic_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays the Continue shortcut
            row.addWidget(b)
        row.addStretch(1)
        self.busy_label = QLabel("")
        row.addWidget(self.busy_label)
        outer.addLayout(row)

        self.roll = PianoRoll()
        self.takes = TakesPanel(self._mime_for_ref)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.roll)
        split.addWidget(self.takes)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([960, 300])
        outer.addWidget(split, 1)

        krow = QHBoxLayout()
        self.typing_check = QCheckBox("Musical typing (A–; keys, Z/X octave)")
        self.typing_check.setChecked(True)
        self.octave_label = QLabel("")
        krow.addWidget(self.typing_check)
        krow.addWidget(self.octave_label)
        krow.addStretch(1)
        outer.addLayout(krow)
        self.keyboard = PianoKeyboard(36, 96)
        outer.addWidget(self.keyboard)
        self.setCentralWidget(central)

        self.continue_button.clicked.connect(self.bridge_trigger)
        self.stop_button.clicked.connect(lambda: self.bridge.stop_playback())
        self.panic_button.clicked.connect(self.panic)
        self.next_button.clicked.connect(lambda: self.step_variation(+1))
        self.prev_button.clicked.connect(lambda: self.step_variation(-1))
        self.keyboard.noteOn.connect(lambda p: self.bridge.keyboard_note(p, True))
        self.keyboard.noteOff.connect(lambda p: self.bridge.keyboard_note(p, False))
        self.typing_check.toggled.connect(self._typing_toggled)
        self.takes.auditionRequested.connect(lambda ref: self.bridge.audition(ref.take, ref.index))
        self.takes.acceptRequested.connect(lambda ref: self.bridge.accept(ref.take, ref.index))
        self.takes.discardRequested.connect(self.discard)
        self.takes.exportRequested.connect(lambda ref: self.export_take(ref))
        self.takes.selectionChanged.connect(self._take_selected)
        self._update_octave_label()

    def _build_io_box(self) -> QGroupBox:
        box = QGroupBox("MIDI and time")
        grid = QGridLayout(box)
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
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(20.0, 400.0)
        self.tempo.setDecimals(1)
        self.tempo.setValue(120.0)
        self.tempo.setSuffix(" BPM")
        self.meter_combo = QComboBox()
        self.meter_combo.addItems(METERS)
        self.clock_combo = QComboBox()
        self.clock_combo.addItem("Internal clock", "internal")
        self.clock_combo.addItem("MIDI clock (from input)", "midi")
        self.metronome_check = QCheckBox("Metronome")
        grid.addWidget(QLabel("Tempo"), 2, 0)
        grid.addWidget(self.tempo, 2, 1)
        grid.addWidget(QLabel("Meter"), 2, 2)
        grid.addWidget(self.meter_combo, 2, 3, 1, 2)
        grid.addWidget(QLabel("Sync"), 3, 0)
        grid.addWidget(self.clock_combo, 3, 1, 1, 2)
        grid.addWidget(self.metronome_check, 3, 3, 1, 2)

        self.input_combo.activated.connect(lambda _i: self._input_chosen())
        self.output_combo.activated.connect(lambda _i: self._output_chosen())
        self.refresh_button.clicked.connect(lambda: self.refresh_ports())
        self.tempo.valueChanged.connect(self._tempo_changed)
        self.meter_combo.currentTextChanged.connect(self._meter_changed)
        self.clock_combo.currentIndexChanged.connect(lambda _i: self._clock_changed())
        self.metronome_check.toggled.connect(self._metronome_changed)
        return box

    def _build_sampling_box(self) -> QGroupBox:
        box = QGroupBox("Continuation")
        grid = QGridLayout(box)
        self.trigger_combo = QComboBox()
        for key, text in TRIGGERS:
            self.trigger_combo.addItem(text, key)
        self.trigger_beats = QDoubleSpinBox()
        self.trigger_beats.setRange(0.5, 16.0)
        self.trigger_beats.setSingleStep(0.5)
        self.trigger_beats.setValue(2.0)
        self.trigger_beats.setSuffix(" beats")
        self.bars = QSpinBox()
        self.bars.setRange(1, 16)
        self.bars.setValue(2)
        self.bars.setSuffix(" bars")
        grid.addWidget(QLabel("Answer"), 0, 0)
        grid.addWidget(self.trigger_combo, 0, 1)
        grid.addWidget(self.trigger_beats, 0, 2)
        grid.addWidget(QLabel("Length"), 0, 3)
        grid.addWidget(self.bars, 0, 4)

        self.temperature = QSlider(Qt.Orientation.Horizontal)
        self.temperature.setRange(10, 200)   # hundredths
        self.temperature.setValue(85)
        self.temperature_value = QLabel("0.85")
        self.top_p = QSlider(Qt.Orientation.Horizontal)
        self.top_p.setRange(50, 100)         # hundredths
        self.top_p.setValue(92)
        self.top_p_value = QLabel("0.92")
        for label in (self.temperature_value, self.top_p_value):
            label.setMinimumWidth(34)
        self.temperature.setToolTip("0.5–0.7 conservative · 0.8–0.9 balanced · 1.0–1.5 adventurous")
        grid.addWidget(QLabel("Temperature"), 1, 0)
        grid.addWidget(self.temperature, 1, 1, 1, 3)
        grid.addWidget(self.temperature_value, 1, 4)
        grid.addWidget(QLabel("Top-p"), 2, 0)
        grid.addWidget(self.top_p, 2, 1, 1, 3)
        grid.addWidget(self.top_p_value, 2, 4)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        grid.addWidget(self.advanced_toggle, 3, 0)
        self.advanced = QWidget()
        adv = QHBoxLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 500)
        self.top_k.setSpecialValueText("off")
        self.variations = QSpinBox()
        self.variations.setRange(1, 8)
        self.start_on = QComboBox()
        self.start_on.addItems(list(START_MODES))
        for text, w in (("Top-k", self.top_k), ("Variations", self.variations), ("Start on", self.start_on)):
            adv.addWidget(QLabel(text))
            adv.addWidget(w)
        adv.addStretch(1)
        self.advanced.setVisible(False)
        grid.addWidget(self.advanced, 3, 1, 1, 4)

        self.trigger_combo.currentIndexChanged.connect(lambda _i: self._trigger_changed())
        self.trigger_beats.valueChanged.connect(lambda _v: self._trigger_changed())
        self.bars.valueChanged.connect(lambda v: self._setting("bars", v))
        self.temperature.valueChanged.connect(self._temperature_changed)
        self.top_p.valueChanged.connect(self._top_p_changed)
        self.top_k.valueChanged.connect(lambda v: self._setting("top_k", v))
        self.variations.valueChanged.connect(lambda v: self._setting("variations", v))
        self.start_on.currentTextChanged.connect(lambda v: self._setting("start_on", v))
        self.advanced_toggle.toggled.connect(self._advanced_toggled)
        return box

    def _build_status(self, model_label: str, device_label: str) -> None:
        self.engine_status = QLabel("Engine: no model")
        self.model_status = QLabel(f"Model: {model_label}")
        self.device_status = QLabel(f"Device: {device_label}")
        for w in (self.engine_status, self.model_status, self.device_status):
            self.statusBar().addPermanentWidget(w)
        self.statusBar().showMessage("Ready")

    def _connect_bridge(self) -> None:
        b = self.bridge
        b.takeReady.connect(self._on_take)
        b.inputEvent.connect(self._on_input)
        b.errorOccurred.connect(lambda m: self.show_error(m, dialog=False))
        b.modelLoading.connect(self._on_model_loading)
        b.modelLoaded.connect(self._on_model_loaded)
        b.modelFailed.connect(self._on_model_failed)
        b.phraseReady.connect(self._on_phrase)
        b.busyChanged.connect(self._on_busy)
        b.timelineReset.connect(self._on_timeline_reset)
        b.portsListed.connect(self._on_ports_listed)
        b.inputOpened.connect(self._on_input_opened)
        b.outputOpened.connect(self._on_output_opened)

    # -- settings -------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.tempo.setValue(float(s.value("time/bpm", 120.0)))
        meter = str(s.value("time/meter", "4/4"))
        if meter in METERS:
            self.meter_combo.setCurrentText(meter)
        self.clock_combo.setCurrentIndex(max(0, self.clock_combo.findData(str(s.value("time/clock", "internal")))))
        self.metronome_check.setChecked(_bool(s.value("time/metronome", False)))
        self.trigger_combo.setCurrentIndex(max(0, self.trigger_combo.findData(str(s.value("trigger/mode", "silence")))))
        self.trigger_beats.setValue(float(s.value("trigger/beats", 2.0)))
        self.bars.setValue(int(s.value("sampling/bars", 2)))
        self.temperature.setValue(int(round(float(s.value("sampling/temperature", 0.85)) * 100)))
        self.top_p.setValue(int(round(float(s.value("sampling/top_p", 0.92)) * 100)))
        self.top_k.setValue(int(s.value("sampling/top_k", 0)))
        self.variations.setValue(int(s.value("sampling/variations", 1)))
        start_on = str(s.value("sampling/start_on", "bar"))
        if start_on in START_MODES:
            self.start_on.setCurrentText(start_on)
        self.advanced_toggle.setChecked(_bool(s.value("ui/advanced", False)))
        self.typing_check.setChecked(_bool(s.value("ui/typing", True)))
        # Push everything to the bridge once, whatever changed or not.
        self._temperature_changed(self.temperature.value())
        self._top_p_changed(self.top_p.value())
        self.bridge.update_settings(bars=self.bars.value(), top_k=self.top_k.value(),
                                    variations=self.variations.value(), start_on=self.start_on.currentText())
        self._trigger_changed()
        self.bridge.bpm = self.tempo.value()
        self.bridge.meter = Meter.parse(self.meter_combo.currentText())
        self.bridge.clock_source = self.clock_combo.currentData()
        self.bridge.metronome = self.metronome_check.isChecked()
        self.roll.set_meter(self.bridge.meter.numerator, self.bridge.meter.quarters_per_beat())

    def _save(self, key: str, value) -> None:
        if self.persist and not self._restoring:
            self.settings.setValue(key, value)

    # -- control handlers -----------------------------------------------------------
    def _setting(self, name: str, value) -> None:
        self.bridge.update_settings(**{name: value})
        self._save(f"sampling/{name}", value)

    def _temperature_changed(self, v: int) -> None:
        t = v / 100
        self.temperature_value.setText(f"{t:.2f}")
        self.bridge.update_settings(temperature=t)
        self._save("sampling/temperature", t)

    def _top_p_changed(self, v: int) -> None:
        p = v / 100
        self.top_p_value.setText(f"{p:.2f}")
        self.bridge.update_settings(top_p=p)
        self._save("sampling/top_p", p)

    def _trigger_changed(self) -> None:
        mode = self.trigger_combo.currentData()
        beats = self.trigger_beats.value()
        self.trigger_beats.setEnabled(mode == "silence")
        self.bridge.update_settings(trigger_beats=beats if mode == "silence" else 0.0,
                                    trigger_cc=SOFT_PEDAL_CC if mode == "pedal" else None,
                                    trigger_key=LOWEST_KEY if mode == "key" else None)
        self._save("trigger/mode", mode)
        self._save("trigger/beats", beats)

    def _tempo_changed(self, bpm: float) -> None:
        self.bridge.set_tempo(bpm)
        self._save("time/bpm", bpm)

    def _meter_changed(self, text: str) -> None:
        meter = Meter.parse(text)
        self.bridge.set_meter(meter)
        self.roll.set_meter(meter.numerator, meter.quarters_per_beat())
        self._save("time/meter", text)

    def _clock_changed(self) -> None:
        source = self.clock_combo.currentData()
        self.bridge.set_clock_source(source)
        self.tempo.setEnabled(source == "internal")
        self._save("time/clock", source)

    def _metronome_changed(self, on: bool) -> None:
        self.bridge.set_metronome(on)
        self._save("time/metronome", on)

    def _advanced_toggled(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self._save("ui/advanced", on)

    def _typing_toggled(self, on: bool) -> None:
        self.keyboard.typing_base = self.typing.base if on else None
        self.keyboard.update()
        self._update_octave_label()
        self._save("ui/typing", on)

    def _update_octave_label(self) -> None:
        on = self.typing_check.isChecked()
        self.octave_label.setText(f"typing octave: C{self.typing.base // 12 - 1}" if on else "")

    # -- ports --------------------------------------------------------------------------
    def refresh_ports(self, list_system: bool = True) -> None:
        """Offer (none) and our virtual ports now; the system's ports when the port worker has listed them."""
        self._fill_port_combos([], [])
        if list_system:
            self.bridge.list_ports()

    def _fill_port_combos(self, inputs: list[str], outputs: list[str]) -> None:
        from copilot_app.engine.midi_ports import VIRTUAL_IN, VIRTUAL_OUT

        for combo, names, virtual in ((self.input_combo, inputs, VIRTUAL_IN),
                                      (self.output_combo, outputs, VIRTUAL_OUT)):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("(none)", "")
            combo.addItem(f"{virtual} (virtual)", VIRTUAL)
            for name in names:
                if not name.startswith("Composer Copilot"):  # our own virtual ports
                    combo.addItem(name, name)
            i = combo.findData(current)
            if i < 0 and current:  # an open port that vanished from the list stays shown
                combo.addItem(current, current)
                i = combo.count() - 1
            combo.setCurrentIndex(i if i >= 0 else 0)
            combo.blockSignals(False)

    def _on_ports_listed(self, inputs: list[str], outputs: list[str]) -> None:
        self._fill_port_combos(inputs, outputs)
        if self._open_saved_after_listing:
            self._open_saved_after_listing = False
            self._open_saved_ports()

    def _open_saved_ports(self) -> None:
        for combo, key, opener in ((self.input_combo, "ports/in", self.bridge.open_input),
                                   (self.output_combo, "ports/out", self.bridge.open_output)):
            name = str(self.settings.value(key, "") or "")
            if not name:
                continue
            i = combo.findData(name)
            if i < 0:
                self.show_error(f"MIDI port {name!r} is not there now", dialog=False)
                continue
            combo.setCurrentIndex(i)
            opener(name)

    def _input_chosen(self) -> None:
        self.bridge.open_input(self.input_combo.currentData() or None)  # inputOpened answers

    def _output_chosen(self) -> None:
        self.bridge.open_output(self.output_combo.currentData() or None)  # outputOpened answers

    def _on_input_opened(self, name: str, ok: bool) -> None:
        self._port_opened(self.input_combo, "ports/in", "MIDI in", name, ok)

    def _on_output_opened(self, name: str, ok: bool) -> None:
        self._port_opened(self.output_combo, "ports/out", "MIDI out", name, ok)

    def _port_opened(self, combo: QComboBox, key: str, what: str, name: str, ok: bool) -> None:
        if ok:
            self._save(key, name)
            i = combo.findData(name)
            self.statusBar().showMessage(f"{what}: {combo.itemText(i) if i >= 0 else '(none)'}", 4000)
        elif combo.currentData() == name:  # the user has not picked another one meanwhile
            combo.setCurrentIndex(0)

    # -- models ---------------------------------------------------------------------
    def _startup_model(self, requested: str | None) -> Path | None:
        if requested:
            return Path(requested)
        saved = str(self.settings.value("model/path", "") or "")
        if saved and Path(saved).is_file():
            return Path(saved)
        entries = all_models(self.models_dir)
        return entries[0].path if entries else None

    def model_entries(self) -> list[ModelEntry]:
        current = Path(self.bridge.model_path) if self.bridge.model_path else None
        return all_models(self.models_dir, self._extra_model or current)

    def rebuild_model_menu(self) -> None:
        menu = self.model_menu
        menu.clear()
        self.model_group = QActionGroup(self)
        self.model_group.setExclusive(True)
        current = self.bridge.model_path
        entries = self.model_entries()
        if not entries:
            none = menu.addAction("(no models yet)")
            none.setEnabled(False)
        for entry in entries:
            a = QAction(entry.label, self.model_group)
            a.setCheckable(True)
            a.setData(str(entry.path))
            a.setChecked(current is not None and _same(entry.path, Path(current)))
            a.triggered.connect(lambda _c=False, p=str(entry.path): self.switch_model(p))
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.act_open_model)
        menu.addAction(self.act_finetune)
        menu.addAction(self.act_models_folder)

    def model_menu_paths(self) -> list[str]:
        return [a.data() for a in self.model_group.actions()]

    def switch_model(self, path: str) -> None:
        """Load another model on a worker thread; the old one plays on until it is ready."""
        self.loading = True
        self.bridge.load_model(path, self.device)

    def open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(self.models_dir),
                                              "Checkpoints (*.safetensors)")
        if path:
            self._extra_model = Path(path)
            self.switch_model(path)

    def show_models_folder(self) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.models_dir)))

    def open_finetune(self) -> FineTuneDialog:
        if self.finetune_dialog is None:
            current = Path(self.bridge.model_path) if self.bridge.model_path else None
            dialog = FineTuneDialog(self.models_dir, self.model_entries(), current, self)
            dialog.modelCreated.connect(self._model_created)
            dialog.switchRequested.connect(self.switch_model)
            dialog.runFailed.connect(lambda m: self.statusBar().showMessage(m, 10000))
            self.finetune_dialog = dialog
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        return self.finetune_dialog

    def _model_created(self, path: str) -> None:
        self.rebuild_model_menu()
        if self.finetune_dialog is not None:
            self.finetune_dialog.add_bases(self.model_entries())
        self.statusBar().showMessage(f"New model ready: {Path(path).parent.name} (Model menu)", 10000)

    def _on_model_loading(self, path: str) -> None:
        self.engine_status.setText("Engine: loading…")
        self.statusBar().showMessage(f"Loading model {Path(path).name}…")

    def _on_model_failed(self, message: str) -> None:
        self.loading = False
        self.engine_status.setText("Engine: ready" if self.bridge.engine is not None else "Engine: no model")
        self.show_error(f"Could not load the model: {message}", dialog=True)

    def _on_model_loaded(self, path: str, label: str) -> None:
        self.loading = False
        p = Path(path)
        name = p.parent.name if p.name == "best.safetensors" else p.stem
        self.model_status.setText(f"Model: {name}")
        self.device_status.setText(f"Device: {label}")
        self.engine_status.setText("Engine: ready")
        self.roll.clear()  # a new session: a new timeline
        self.keyboard.clear_lit()
        self.statusBar().showMessage(f"Model {name} ready on {label}", 5000)
        self._save("model/path", path)
        self.rebuild_model_menu()

    # -- engine events ----------------------------------------------------------------
    def _on_input(self, routed) -> None:
        if routed.kind == "note_on":
            self.roll.note_on(self.bridge.quarters_at(routed.time), routed.pitch)
            self.keyboard.set_lit(routed.pitch, True)
        elif routed.kind == "note_off":
            self.roll.note_off(self.bridge.quarters_at(routed.time), routed.pitch)
            self.keyboard.set_lit(routed.pitch, False)

    def _on_take(self, take: Take) -> None:
        self.takes.show_take(take)
        self.roll.show_take(take)
        if take.chosen >= 0:
            sel = self.takes.selected()
            if sel is None or sel.take is not take or sel.index != take.chosen:
                self.takes.select(take, take.chosen)
        latency = f", first note after {take.first_note_latency_s * 1000:.0f} ms" \
            if take.first_note_latency_s is not None else ""
        self.statusBar().showMessage(
            f"Take {take.number}: variation {take.chosen + 1}/{len(take.variations)}, "
            f"{len(take.notes())} notes{latency}" + (" · accepted" if take.accepted else ""), 6000)

    def _on_timeline_reset(self) -> None:
        self.roll.clear()  # a new grid: time starts over at bar 1
        self.keyboard.clear_lit()

    def _on_phrase(self, notes, take: Take) -> None:
        self.roll.add_phrase(notes)

    def _on_busy(self, busy: bool) -> None:
        self.roll.busy = busy
        self.busy_label.setText("thinking…" if busy else "")
        self.roll.update()

    def _take_selected(self, ref: TakeRef | None) -> None:
        self.roll.selected = ref.take if ref is not None else None
        self.roll.update()

    def _tick(self) -> None:
        if self.bridge.engine is not None:
            self.roll.set_playhead(self.bridge.quarters_now())
        for on, channel, pitch in self.bridge.sink.drain_monitor():
            if pitch < 0:
                self.keyboard.playing.clear()
                self.keyboard.update()
            elif channel != 9 and pitch not in self.bridge.keyboard_held:  # not the click, not your own keys
                self.keyboard.set_playing(pitch, on)

    # -- commands ---------------------------------------------------------------------
    def bridge_trigger(self) -> None:
        self.bridge.trigger()

    def step_variation(self, step: int) -> None:
        """Audition the next/previous variation of the selected take (default: the latest)."""
        ref = self.takes.selected()
        if ref is None:
            (self.bridge.next_variation if step > 0 else self.bridge.previous_variation)()
            return
        index = (ref.index + step) % len(ref.take.variations)
        self.takes.select(ref.take, index)
        self.bridge.audition(ref.take, index)

    def accept_current(self) -> None:
        ref = self.takes.selected()
        if ref is not None:
            self.bridge.accept(ref.take, ref.index)
        else:
            self.bridge.accept()

    def discard(self, ref: TakeRef) -> None:
        self.bridge.discard(ref.take)
        self.takes.remove_take(ref.take)
        self.roll.remove_take(ref.take)
        self.statusBar().showMessage(f"Take {ref.take.number} discarded", 4000)

    def panic(self) -> None:
        self.bridge.panic()
        self.roll.release_all(self.bridge.quarters_now())
        self.keyboard.clear_lit()
        for key in list(self.typing.down):
            self.typing.release(key)
        self.statusBar().showMessage("All notes off", 3000)

    def open_phrase(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a phrase to continue", "", "MIDI files (*.mid *.midi)")
        if path:
            self.continue_file(path)

    def continue_file(self, path: str) -> None:
        self.statusBar().showMessage(f"Continuing {Path(path).name}…")
        self.bridge.continue_file(path)

    def _mime_for_ref(self, ref: TakeRef):
        """The drag's mime data: the take's file, already written in the background."""
        try:
            path = self.bridge.files.path_or_write(ref.take, ref.index, self.bridge.meter, self.bridge.tempo_now)
        except Exception as exc:
            self.show_error(f"cannot write the take for dragging: {exc}", dialog=False)
            return None
        return file_mime_data(path)

    def export_take(self, ref: TakeRef | None = None, path: str | None = None) -> None:
        """File > Export take…: a dialog (unless ``path`` is given), then an atomic write off the GUI thread."""
        ref = ref if isinstance(ref, TakeRef) else self.takes.selected()
        if ref is None:
            self.show_error("No take to export yet: play a phrase first.", dialog=False)
            return
        if path is None:
            suggestion = str(Path.home() / take_file_name(ref.take, ref.index))
            path, _ = QFileDialog.getSaveFileName(self, "Export take", suggestion, "MIDI file (*.mid)")
            if not path:
                return
            if not path.lower().endswith((".mid", ".midi")):
                path += ".mid"
        bridge, number = self.bridge, ref.take.number

        def done(written: Path | None, error: str | None) -> None:  # on the file worker
            if written is None:
                safe_emit(bridge.errorOccurred, f"export failed: {error}")  # -> the status bar
                return
            safe_emit(self.exported, str(written))
            safe_emit(self.notice, f"Exported take {number} to {written}")
        self.bridge.files.export(path, ref.take, ref.index, self.bridge.meter, self.bridge.tempo_now, done)

    # -- errors -------------------------------------------------------------------------
    def show_error(self, message: str, dialog: bool = False) -> None:
        self.last_error = message
        self.statusBar().showMessage(message, 10000)
        self.errorShown.emit(message)
        if dialog and self.isVisible():
            box = QMessageBox(QMessageBox.Icon.Warning, TITLE, message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()  # not exec(): never block the event loop

    # -- musical typing -------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if not self.typing_check.isChecked() or not isinstance(obj, QWidget) or obj.window() is not self:
            return False
        if event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                                | Qt.KeyboardModifier.MetaModifier):
            return False
        focus = QApplication.focusWidget()
        if isinstance(focus, (QLineEdit, QAbstractSpinBox, QPlainTextEdit)):
            return False
        key = event.key()
        if not self.typing.handles(key):
            return False
        if event.isAutoRepeat():
            return True
        if event.type() == QEvent.Type.KeyPress:
            before = self.typing.base
            pitch = self.typing.press(key)
            if pitch is not None:
                self.bridge.keyboard_note(pitch, True)
            elif self.typing.base != before:
                self.keyboard.typing_base = self.typing.base
                self.keyboard.update()
                self._update_octave_label()
        else:
            pitch = self.typing.release(key)
            if pitch is not None:
                self.bridge.keyboard_note(pitch, False)
        return True

    # -- window -----------------------------------------------------------------------------
    def changeEvent(self, event) -> None:  # noqa: N802
        # Keys released while another window has the focus never reach us: end their notes now.
        if event.type() == QEvent.Type.ActivationChange and not self.isActiveWindow() and self.typing.down:
            for key in list(self.typing.down):
                pitch = self.typing.release(key)
                if pitch is not None:
                    self.bridge.keyboard_note(pitch, False)
        super().changeEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self._save("window/geometry", self.saveGeometry())
        if self.persist:
            self.settings.sync()
        if self.finetune_dialog is not None:
            self.finetune_dialog.stop_and_wait()
        self.timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self.bridge.close()
        super().closeEvent(event)

    def _show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{name}</td><td><b>{key}</b></td></tr>" for name, key in [
            ("Continue now", SHORTCUTS["continue"]), ("Accept take", SHORTCUTS["accept"]),
            ("Next / previous variation", "→ / ←"), ("Stop playback", SHORTCUTS["stop"]),
            ("All notes off", "Esc"), ("Open phrase", "Ctrl+O"), ("Export take", "Ctrl+E"),
            ("Musical typing", "A W S E D F T G Y H U J K O L P ;"), ("Octave down / up", "Z / X")])
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table>{rows}</table>",
                          QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _show_about(self) -> None:
        QMessageBox.about(self, f"About {TITLE}",
                          f"{TITLE} {__version__}\nLive music continuation with a small RWKV-7 model.")


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


__all__ = ["MainWindow", "TITLE", "SHORTCUTS"]
