"""The main window: puts the parts together and renders what the engine reports.

Each part lives in its own module, named after what it shows:

=========================  ==================================================
port_menus.py              MIDI input / output menus
time_controls.py           tempo, meter, clock source, metronome
continuation_settings.py   trigger, length, temperature, top-p, advanced
steering_controls.py       key/scale lock, register, density, texture
transport_bar.py           Continue, variations, Stop, Panic (+ SHORTCUTS)
piano_roll.py              your notes and the answers on the timeline
takes_panel.py             the takes list: audition, accept, discard, drag
musical_typing.py          the computer keyboard as a piano
piano_keyboard.py          the on-screen keys
model_menu.py              the Model menu and the fine-tune dialog
style_menu.py              the Style menu (learned starting states; the dialog learns them)
settings_store.py          every QSettings key, typed, with its default
engine_bridge.py           commands to the engine, snapshots back
file_commands.py           the session on disk, Open phrase…, exports
=========================  ==================================================

Controls send commands through ``EngineBridge``; the engine answers with
immutable ``SessionSnapshot``s (queued signals), which ``_on_session``
renders. Nothing here reads or writes the engine's state, and nothing waits
on inference, MIDI ports, file I/O or training. Settings persist in the
QSettings the caller passes (tests use a temporary file). The session
(phrases, takes, accepted variations, discards, settings) is saved by the
engine as it changes, in ``sessions_dir`` (AppDataLocation/sessions, beside
``models``); the window only says which file: the one saved last at start,
a new one for File > New session, the chosen one for Open session…. Only
an opened session brings its settings (sampling, trigger, steering) back
into the engine and the controls; at start-up the window's saved settings
win (they are what was set last anyway).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QMainWindow,
                               QMessageBox, QSplitter, QVBoxLayout, QWidget)

from copilot_app import __version__
from copilot_app.engine.clock import Meter
from copilot_app.engine.midi_input import DRUM_CHANNEL
from copilot_app.engine.session import SessionSettings
from copilot_app.engine.session_model import SessionSnapshot
from copilot_app.ui.continuation_settings import HUNDREDTHS, ContinuationSettings
from copilot_app.ui.messages import one_line
from copilot_app.ui.engine_bridge import EngineBridge
from copilot_app.ui.file_commands import EXAMPLE_PHRASES, FileCommands
from copilot_app.ui.held_notes_view import HeldNotesView, MidiServerView
from copilot_app.ui.model_menu import ModelMenu
from copilot_app.ui.style_menu import NO_STYLE, StyleMenu
from copilot_app.ui.style_blend import StyleBlendDialog
from copilot_app.ui.styles import default_styles_dir
from copilot_app.ui.models import all_models, default_models_dir, display_name, same_path
from copilot_app.ui.musical_typing import TypingRow
from copilot_app.ui.piano_keyboard import PianoKeyboard
from copilot_app.ui.piano_roll import PianoRoll
from copilot_app.ui.port_menus import PortMenus
from copilot_app.ui.port_worker import DEVICE_WATCH_S
from copilot_app.ui.settings_store import Key, Keys, SettingsStore
from copilot_app.ui.steering_controls import STEER_FIELDS, SteeringControls, saved_steering
from copilot_app.ui.takes_panel import TakeRef, TakesPanel
from copilot_app.ui.time_controls import TimeControls
from copilot_app.ui.transport_bar import SHORTCUTS, TransportBar
from model.tokens.config import TICKS_PER_QUARTER

TITLE = "Composer Copilot"
FRAME_MS = 33  # piano roll refresh (about 30 per second)
KEYBOARD_RANGE = (36, 96)  # the on-screen keys: C2..C7
SAVED_SETTINGS: dict[str, Key] = {"bars": Keys.BARS, "temperature": Keys.TEMPERATURE, "top_p": Keys.TOP_P,
                                  "top_k": Keys.TOP_K, "variations": Keys.VARIATIONS, "start_on": Keys.START_ON,
                                  "fixed_velocity": Keys.FIXED_VELOCITY, "key": Keys.KEY,
                                  "register_low": Keys.REGISTER_LOW, "register_high": Keys.REGISTER_HIGH,
                                  "density": Keys.DENSITY, "texture": Keys.TEXTURE}


def default_sessions_dir(models_dir: Path | None = None) -> Path:
    """Where sessions are saved: ``sessions`` in the app-data folder, beside ``models``
    (QStandardPaths AppDataLocation, e.g. ~/.local/share/Composer Copilot/sessions)."""
    if models_dir is not None:
        return Path(models_dir).parent / "sessions"
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base) / "sessions"


def example_phrases() -> list[Path]:
    """The example phrases that ship in resources/phrases/, by file name."""
    return sorted(EXAMPLE_PHRASES.glob("*.mid")) if EXAMPLE_PHRASES.is_dir() else []


def example_title(path: Path) -> str:
    """'03-jig-6-8.mid' -> 'Jig 6/8'."""
    words = path.stem.split("-")
    if words and words[0].isdigit():
        words = words[1:]
    if len(words) >= 2 and words[-1].isdigit() and words[-2].isdigit():
        words = words[:-2] + [f"{words[-2]}/{words[-1]}"]
    return " ".join(words).capitalize()


class MainWindow(FileCommands, QMainWindow):
    """Top-level window (see module docstring)."""

    errorShown = Signal(str)
    notice = Signal(str)  # a status-bar message from a worker thread (queued)
    exported = Signal(str)  # path of a take written by File > Export take…

    def __init__(self, model_label: str = "none", device_label: str = "CPU", parent: QWidget | None = None,
                 *, settings: QSettings | None = None, bridge: EngineBridge | None = None,
                 models_dir: Path | None = None, model_path: str | None = None, device: str = "auto",
                 autoload: bool = True, open_ports: bool = True, persist: bool = True,
                 sessions_dir: Path | None = None, watch_interval_s: float | None = DEVICE_WATCH_S) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.resize(1280, 800)
        self.store = SettingsStore(settings if settings is not None else QSettings(), persist)
        # watch_interval_s: how often the chosen MIDI device ports are looked for (None: never).
        self.bridge = bridge or EngineBridge(parent=self, watch_interval_s=watch_interval_s)
        self.gone_ports: dict[str, str] = {}  # "input"/"output" -> a chosen device port that went away
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        # The session is saved as it changes (by the engine), in this folder; a
        # run that must not persist (screenshots) saves nothing.
        self.sessions_dir: Path | None = (Path(sessions_dir) if sessions_dir is not None
                                          else default_sessions_dir(models_dir) if persist else None)
        self.session_path: Path | None = None
        self._adopt_session_settings = False  # the next "session" snapshot's settings go into the controls
        self.device = device
        self.last_error: str | None = None
        self.loading = False  # a model is being loaded on a worker thread
        self._style_restored = False  # the saved style is asked for once, when the first model is in
        self.blend_dialog: StyleBlendDialog | None = None
        self._open_saved_after_listing = open_ports  # saved ports open once the ports are listed

        self._build_parts()
        self._build_actions()
        self._build_menus(Path(model_path) if model_path else None)
        self._build_layout()
        self._build_status(model_label, device_label)
        self._connect()
        self._restore_settings()
        self._resume_session()
        self.model_menu.rebuild()
        self.style_menu.rebuild()

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(FRAME_MS)
        self.typing_row.install()

        self.refresh_ports(list_system=open_ports)
        if autoload:
            start = self._startup_model(model_path)
            if start is not None:
                self.switch_model(str(start))
            else:
                self.show_error("No model yet: choose one in the Model menu (Open model file…).", dialog=False)

    # -- building -----------------------------------------------------------------
    def _build_parts(self) -> None:
        self.ports = PortMenus()
        self.time_controls = TimeControls()
        self.continuation = ContinuationSettings()
        self.steering = SteeringControls()
        self.transport = TransportBar()
        self.roll = PianoRoll()
        self.takes = TakesPanel(self._mime_for_ref)
        self.typing_row = TypingRow(self, self.bridge.keyboard_note)
        self.keyboard = PianoKeyboard(*KEYBOARD_RANGE)
        self.ports.input_combo.setToolTip("The MIDI keyboard (or DAW port) you play on")
        self.ports.output_combo.setToolTip("Where answers and the metronome play: a synth, a DAW, a digital piano")

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut: str | QKeySequence | None = None, tip: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            if tip:
                a.setStatusTip(tip)
            a.triggered.connect(lambda _checked=False: slot())
            self.addAction(a)  # shortcuts work wherever the focus is in the window
            return a

        self.act_open_phrase = action("&Open phrase…", self.open_phrase, QKeySequence.StandardKey.Open,
                                      "Continue a .mid file as if you had just played it")
        self.act_export = action("&Export take…", self.export_take, "Ctrl+E", "Save the selected take as .mid")
        self.act_quit = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_new_session = action("&New session", self.new_session, QKeySequence.StandardKey.New,
                                      "Start an empty session (the current one stays saved)")
        self.act_open_session = action("Open &session…", self.open_session, "Ctrl+Shift+O",
                                       "Go back to a saved session: its takes, phrases and accepted variations")
        self.act_export_all = action("Export all &accepted takes…", self.export_accepted, "Ctrl+Shift+E",
                                     "Save every accepted take to one .mid: one track each, tempo and meter kept")
        self.act_undo_discard = action("&Undo discard", self.undo_discard, QKeySequence.StandardKey.Undo,
                                       "Bring back the take discarded last")
        self.act_undo_discard.setEnabled(False)
        self.act_continue = action("&Continue now", self.bridge_trigger, SHORTCUTS["continue"],
                                   "Answer the phrase now")
        self.act_accept = action("&Accept take", self.accept_current, SHORTCUTS["accept"])
        self.act_next = action("&Next variation", lambda: self.step_variation(+1), SHORTCUTS["next"])
        self.act_previous = action("&Previous variation", lambda: self.step_variation(-1),
                                   SHORTCUTS["previous"])
        self.act_stop = action("&Stop playback", self.bridge.stop_playback, SHORTCUTS["stop"])
        self.act_panic = action("All notes off (&panic)", self.panic, SHORTCUTS["panic"])

    def _build_menus(self, extra_model: Path | None) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.act_open_phrase)
        self.examples_menu = file_menu.addMenu("Open e&xample")
        self.examples_menu.setToolTipsVisible(True)
        for path in example_phrases():
            a = self.examples_menu.addAction(example_title(path))
            a.setData(str(path))
            a.setStatusTip(f"Continue the example phrase {path.name}")
            a.triggered.connect(lambda _checked=False, p=str(path): self.continue_file(p))
        if not self.examples_menu.actions():
            self.examples_menu.addAction("(no examples installed)").setEnabled(False)
        file_menu.addSeparator()
        file_menu.addAction(self.act_new_session)
        file_menu.addAction(self.act_open_session)
        file_menu.addSeparator()
        file_menu.addAction(self.act_export)
        file_menu.addAction(self.act_export_all)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.act_undo_discard)
        play = self.menuBar().addMenu("&Play")
        for a in (self.act_continue, self.act_accept, self.act_next, self.act_previous, self.act_stop,
                  self.act_panic):
            play.addAction(a)
        self.model_menu = ModelMenu(self.menuBar().addMenu("&Model"), self, self.models_dir,
                                    lambda: self.bridge.model_path, extra_model)
        self.style_menu = StyleMenu(self.menuBar().addMenu("&Style"), self, default_styles_dir(self.models_dir),
                                    lambda: self.bridge.style_path, lambda: self.bridge.model_fingerprint)
        help_menu = self.menuBar().addMenu("&Help")
        shortcuts = QAction("&Keyboard shortcuts", self)
        shortcuts.triggered.connect(self._show_shortcuts)
        help_menu.addAction(shortcuts)
        about = QAction("&About Composer Copilot", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _build_layout(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        top = QHBoxLayout()
        io_box = QGroupBox("MIDI and time")
        io = QVBoxLayout(io_box)
        io.addWidget(self.ports)
        io.addWidget(self.time_controls)
        settings_box = QGroupBox("Continuation")
        QVBoxLayout(settings_box).addWidget(self.continuation)
        steer_box = QGroupBox("Steer")
        QVBoxLayout(steer_box).addWidget(self.steering)
        top.addWidget(io_box, 3)
        top.addWidget(settings_box, 4)
        top.addWidget(steer_box, 4)
        outer.addLayout(top)
        outer.addWidget(self.transport)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.roll)
        split.addWidget(self.takes)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([960, 300])
        outer.addWidget(split, 1)
        outer.addWidget(self.typing_row)
        outer.addWidget(self.keyboard)
        self.setCentralWidget(central)

    def _build_status(self, model_label: str, device_label: str) -> None:
        self.engine_status = QLabel("Engine: no model")
        self.model_status = QLabel(f"Model: {model_label}")
        self.device_status = QLabel(f"Device: {device_label}")
        self.held_view = HeldNotesView()    # the keys the engine holds as down; Clear for a stuck one
        self.midi_view = MidiServerView()   # red while the MIDI server (JACK) is gone
        for w in (self.held_view, self.midi_view, self.engine_status, self.model_status, self.device_status):
            self.statusBar().addPermanentWidget(w)
        self.statusBar().showMessage("Ready")

    def _connect(self) -> None:
        b, store = self.bridge, self.store
        b.sessionChanged.connect(self._on_session)
        b.inputEvent.connect(self._on_input)
        b.errorOccurred.connect(lambda m: self.show_error(m, dialog=False))
        b.modelLoading.connect(self._on_model_loading)
        b.modelLoaded.connect(self._on_model_loaded)
        b.modelFailed.connect(self._on_model_failed)
        b.busyChanged.connect(self._on_busy)
        b.heldNotesChanged.connect(self.held_view.show_held)
        self.held_view.clearRequested.connect(b.clear_held)
        b.serverChanged.connect(self._on_midi_server)
        b.deviceChanged.connect(self._on_midi_device)
        b.portsListed.connect(self._on_ports_listed)
        b.inputOpened.connect(lambda name, ok: self._port_opened(self.ports.input_combo, Keys.PORT_IN, "MIDI in",
                                                                 name, ok))
        b.outputOpened.connect(lambda name, ok: self._port_opened(self.ports.output_combo, Keys.PORT_OUT,
                                                                  "MIDI out", name, ok))
        self.notice.connect(lambda m: self.statusBar().showMessage(m, 8000))

        self.ports.inputChosen.connect(b.open_input)     # inputOpened answers
        self.ports.outputChosen.connect(b.open_output)
        self.ports.refreshRequested.connect(self.refresh_ports)
        self.ports.bind_thru(store, b.ports.set_thru)  # MIDI thru: the Thru box, its settings, the port worker

        t = self.time_controls
        t.tempoChanged.connect(lambda bpm: (b.set_tempo(bpm), store.put(Keys.BPM, bpm)))
        t.meterChanged.connect(self._meter_changed)
        t.clockSourceChanged.connect(lambda source: (b.set_clock_source(source), store.put(Keys.CLOCK, source)))
        t.metronomeToggled.connect(lambda on: (b.set_metronome(on), store.put(Keys.METRONOME, on)))

        c = self.continuation
        c.changed.connect(self._settings_changed)
        c.triggerModeChanged.connect(lambda mode, beats: (store.put(Keys.TRIGGER_MODE, mode),
                                                          store.put(Keys.TRIGGER_BEATS, beats)))
        c.advancedToggled.connect(lambda on: store.put(Keys.ADVANCED, on))
        self.steering.changed.connect(self._settings_changed)
        self.steering.snapshotWanted.connect(b.request_snapshot)

        tr = self.transport
        tr.continue_button.clicked.connect(self.bridge_trigger)
        tr.stop_button.clicked.connect(b.stop_playback)
        tr.panic_button.clicked.connect(self.panic)
        tr.next_button.clicked.connect(lambda: self.step_variation(+1))
        tr.prev_button.clicked.connect(lambda: self.step_variation(-1))

        self.keyboard.noteOn.connect(lambda p: b.keyboard_note(p, True))
        self.keyboard.noteOff.connect(lambda p: b.keyboard_note(p, False))
        self.typing_row.octaveChanged.connect(self._typing_octave)
        self.typing_row.toggled.connect(lambda on: store.put(Keys.TYPING, on))

        self.takes.auditionRequested.connect(lambda ref: b.audition(ref.number, ref.index))
        self.takes.acceptRequested.connect(lambda ref: b.accept(ref.number, ref.index))
        self.takes.discardRequested.connect(self.discard)
        self.takes.exportRequested.connect(lambda ref: self.export_take(ref))
        self.takes.regenerateRequested.connect(lambda ref, bar: b.regenerate(ref.number, ref.index, bar))
        self.takes.moreLikeRequested.connect(lambda ref: b.more_like_this(ref.number, ref.index))
        self.takes.selectionChanged.connect(self._take_selected)

        self.model_menu.switchRequested.connect(self.switch_model)
        self.model_menu.message.connect(lambda m: self.statusBar().showMessage(m, 10000))
        self.model_menu.styleCreated.connect(lambda _p: self.style_menu.rebuild())
        self.model_menu.styleRequested.connect(self.switch_style)
        self.style_menu.styleRequested.connect(self.switch_style)
        self.style_menu.learnRequested.connect(lambda: self.model_menu.open_finetune("style"))
        self.style_menu.blendRequested.connect(self.open_style_blend)
        self.style_menu.message.connect(lambda m: self.statusBar().showMessage(m, 10000))
        self.style_menu.offered.connect(self.bridge.keep_styles_ready)  # switching to them is instant
        self.bridge.styleLoaded.connect(self._on_style_loaded)
        self.bridge.styleFailed.connect(lambda m: self.show_error(f"Could not use the style: {m}"))

    # -- settings -------------------------------------------------------------------
    def _restore_settings(self) -> None:
        store = self.store
        store.restoring = True
        try:
            geometry = store.get(Keys.GEOMETRY)
            if geometry is not None:
                self.restoreGeometry(geometry)
            t = self.time_controls
            widgets = (t.tempo, t.meter_combo, t.clock_combo, t.metronome_check)
            for w in widgets:  # one timeline command below, not one per control
                w.blockSignals(True)
            t.set_values(store.get(Keys.BPM), store.get(Keys.METER), store.get(Keys.CLOCK),
                         store.get(Keys.METRONOME))
            for w in widgets:
                w.blockSignals(False)
            t.tempo.setEnabled(t.clock_source() == "internal")
            self.bridge.set_timeline(t.tempo.value(), t.meter(), t.clock_source())
            self.bridge.set_metronome(t.metronome_check.isChecked())
            self.roll.set_meter(t.meter().numerator, t.meter().quarters_per_beat())
            c = self.continuation
            c.trigger_combo.setCurrentIndex(max(0, c.trigger_combo.findData(store.get(Keys.TRIGGER_MODE))))
            c.trigger_beats.setValue(store.get(Keys.TRIGGER_BEATS))
            c.bars.setValue(store.get(Keys.BARS))
            c.temperature.setValue(round(store.get(Keys.TEMPERATURE) * HUNDREDTHS))
            c.top_p.setValue(round(store.get(Keys.TOP_P) * HUNDREDTHS))
            c.top_k.setValue(store.get(Keys.TOP_K))
            c.variations.setValue(store.get(Keys.VARIATIONS))
            c.velocity.setValue(max(0, min(127, store.get(Keys.FIXED_VELOCITY))))
            start_on = store.get(Keys.START_ON)
            if c.start_on.findText(start_on) >= 0:
                c.start_on.setCurrentText(start_on)
            c.advanced_toggle.setChecked(store.get(Keys.ADVANCED))
            self.typing_row.check.setChecked(store.get(Keys.TYPING))
            self.steering.show_settings(saved_steering(store))
            # Everything to the engine once, whatever changed or not.
            self.bridge.update_settings(**c.values(), **self.steering.values())
        finally:
            store.restoring = False

    def _settings_changed(self, changes: dict) -> None:
        try:
            self.bridge.update_settings(**changes)
        except ValueError as exc:  # a value the engine refuses: one line, the old one stays in force
            self.show_error(one_line(exc))
            return
        for name, value in changes.items():
            if name in SAVED_SETTINGS:
                self.store.put(SAVED_SETTINGS[name], 0 if value is None else value)

    def _meter_changed(self, meter: Meter) -> None:
        self.bridge.set_meter(meter)
        self.roll.set_meter(meter.numerator, meter.quarters_per_beat())
        self.store.put(Keys.METER, f"{meter.numerator}/{meter.denominator}")

    def _typing_octave(self, base: int | None) -> None:
        self.keyboard.typing_base = base
        self.keyboard.update()

    # -- ports --------------------------------------------------------------------------
    def refresh_ports(self, list_system: bool = True) -> None:
        """Offer (none) and our virtual ports now; the system's ports when the port worker has listed them."""
        self.ports.fill([], [])
        if list_system:
            self.bridge.list_ports()

    def _on_ports_listed(self, inputs: list[str], outputs: list[str]) -> None:
        self.ports.fill(inputs, outputs)
        if self._open_saved_after_listing:
            self._open_saved_after_listing = False
            self.ports.open_saved(self.store.get(Keys.PORT_IN), self.store.get(Keys.PORT_OUT),
                                  self.bridge.open_input, self.bridge.open_output,
                                  lambda name: self.show_error(f"MIDI port {name!r} is not there now"))

    def _port_opened(self, combo, key: Key, what: str, name: str, ok: bool) -> None:
        label = self.ports.opened(combo, name, ok)
        if label is not None:
            self.store.put(key, name)
            self.statusBar().showMessage(f"{what}: {label}", 4000)

    # -- models ---------------------------------------------------------------------
    def _startup_model(self, requested: str | None) -> Path | None:
        if requested:
            return Path(requested)
        saved = self.store.get(Keys.MODEL_PATH)
        if saved and Path(saved).is_file():
            return Path(saved)
        entries = all_models(self.models_dir)
        return entries[0].path if entries else None

    def rebuild_model_menu(self) -> None:
        self.model_menu.rebuild()

    def model_menu_paths(self) -> list[str]:
        return self.model_menu.paths()

    @property
    def model_group(self):
        return self.model_menu.group

    def open_finetune(self):
        return self.model_menu.open_finetune()

    def switch_model(self, path: str) -> None:
        """Load another model on a worker thread; the old one plays on until it is ready."""
        self.loading = True
        self.bridge.load_model(path, self.device)

    def switch_style(self, path: str) -> None:
        """Answer in another style (NO_STYLE: none) from the next answer on; the model stays."""
        self.bridge.load_style(path if path != NO_STYLE else None)

    def _on_style_loaded(self, path: str) -> None:
        self.store.put(Keys.STYLE_PATH, path)  # "" for none or a blend: neither comes back next run
        self.style_menu.rebuild()

    def open_style_blend(self) -> StyleBlendDialog:
        """Style > Blend two styles…: a slider between two styles of the loaded model."""
        if self.blend_dialog is None:
            self.blend_dialog = StyleBlendDialog(self)
            self.blend_dialog.blendRequested.connect(self.bridge.blend_styles)
        fingerprint = self.bridge.model_fingerprint
        self.blend_dialog.set_styles([e for e in self.style_menu.entries() if e.base_fingerprint == fingerprint])
        self.blend_dialog.show()
        self.blend_dialog.raise_()
        return self.blend_dialog

    def _restore_style(self) -> None:
        """The style of the last run, once the first model is in, if it was learned for that model."""
        self._style_restored = True
        saved = self.store.get(Keys.STYLE_PATH)
        entry = next((e for e in self.style_menu.entries() if saved and same_path(e.path, Path(saved))), None)
        if entry is not None and entry.base_fingerprint == self.bridge.model_fingerprint:
            self.switch_style(str(entry.path))

    def _on_model_loading(self, path: str) -> None:
        self.engine_status.setText("Engine: loading…")
        self.statusBar().showMessage(f"Loading model {Path(path).name}…")

    def _on_model_failed(self, message: str) -> None:
        self.loading = False
        self.engine_status.setText(self._engine_text())
        self.show_error(f"Could not load the model: {message}", dialog=True)

    def _on_model_loaded(self, path: str, label: str) -> None:
        self.loading = False
        name = display_name(path)
        self.model_status.setText(f"Model: {name}")
        self.device_status.setText(f"Device: {label}")
        self.engine_status.setText(self._engine_text())
        self.statusBar().showMessage(f"Model {name} ready on {label}", 5000)
        self.store.put(Keys.MODEL_PATH, path)
        self.model_menu.rebuild()
        self.style_menu.rebuild()  # styles of another model are disabled
        if not self._style_restored:
            self._restore_style()

    # -- what the engine reports ------------------------------------------------------
    def _on_input(self, note) -> None:
        self.steering.note_played()  # the heard key may move
        if note.on:
            self.roll.note_on(note.quarters, note.pitch)
        else:
            self.roll.note_off(note.quarters, note.pitch)
        self.keyboard.set_lit(note.pitch, note.on)

    def _on_session(self, snap: SessionSnapshot) -> None:
        """Render a snapshot: the takes list, the roll, the time controls, a status line."""
        event = snap.event
        if event.kind == "session":  # another session: its takes, numbered from 1
            self.roll.clear()
            self.takes.clear()
            if self._adopt_session_settings:  # File > Open session… applied the file's settings
                self._adopt_session_settings = False
                self._adopt_settings(snap.settings)
            n = len(snap.takes)
            if n:
                name = self.session_path.name if self.session_path is not None else "not saved"
                self.statusBar().showMessage(f"Session: {n} take{'s' if n != 1 else ''} ({name})", 6000)
        if event.kind == "style":
            self.statusBar().showMessage(f"Style: {snap.style}" if snap.style else "No style", 5000)
        if event.kind == "undo" and event.take is not None:
            self.takes.restore_take(event.take)
            self.statusBar().showMessage(f"Take {event.take} is back", 4000)
        self._show_undo(snap.discarded)
        if event.kind in ("timeline", "phrase"):
            self.roll.clear()  # a new grid: time starts over
            self.keyboard.clear_lit()
            meter = snap.timeline.meter
            self.roll.set_meter(meter.numerator, meter.quarters_per_beat())
            if event.kind == "phrase" and snap.phrase is not None:
                self.roll.add_phrase([(n.start / TICKS_PER_QUARTER, (n.start + n.duration) / TICKS_PER_QUARTER,
                                       n.pitch) for n in snap.phrase.notes])
                self.statusBar().showMessage(
                    f"{snap.phrase.name}: {snap.timeline.bpm:g} BPM, {meter.numerator}/{meter.denominator}", 6000)
        if event.kind in ("timeline", "phrase", "tempo"):
            self.time_controls.show_timeline(snap.timeline)
        self.steering.show_heard(snap.heard_key, snap.register)
        self.takes.render(snap.takes, snap.settings.bars)
        self.roll.show_takes([v for v in snap.takes
                              if v.take.timeline == snap.timeline.number and self.takes.view(v.number)])
        view = snap.view(event.take) if event.take is not None else None
        if view is None or event.kind not in ("take", "audition", "accept"):
            return
        sel = self.takes.selected()
        if event.kind != "accept" and (sel is None or sel.number != view.number or sel.index != view.auditioned):
            self.takes.select(view.number, view.auditioned)
        take = view.take
        latency = (f", first note after {take.first_note_latency_s * 1000:.0f} ms"
                   if event.kind == "take" and take.first_note_latency_s is not None else "")
        accepted = f" · variation {view.accepted + 1} accepted" if view.accepted is not None else ""
        origin = f" ({take.derived_from})" if take.derived_from else ""
        self.statusBar().showMessage(
            f"Take {take.number}{origin}: variation {view.auditioned + 1}/{len(take.variations)}, "
            f"{len(take.notes(view.auditioned))} notes{latency}{accepted}", 6000)

    def _adopt_settings(self, settings: SessionSettings) -> None:
        """The engine's settings after a session was opened: the controls show them
        (sending nothing back) and they are saved as the window's own."""
        self.continuation.show_settings(settings)
        self.steering.show_settings({name: getattr(settings, name) for name in STEER_FIELDS})
        values = {**self.continuation.values(), **self.steering.values()}
        for name, key in SAVED_SETTINGS.items():
            self.store.put(key, 0 if values[name] is None else values[name])
        self.store.put(Keys.TRIGGER_MODE, self.continuation.trigger_mode())
        self.store.put(Keys.TRIGGER_BEATS, self.continuation.trigger_beats.value())

    def _engine_text(self) -> str:
        if not self.bridge.midi_server_ok:
            return "Engine: no MIDI server"  # never "ready" while nothing can be heard or played
        return "Engine: ready" if self.bridge.model_path else "Engine: no model"

    def _on_midi_server(self, ok: bool, message: str) -> None:
        self.midi_view.show_server(ok, message)
        if ok:
            self._show_gone_ports()
        if not self.loading:
            self.engine_status.setText(self._engine_text())
        self.statusBar().showMessage(message, 0 if not ok else 8000)
        if ok:
            self.bridge.list_ports()  # the menus offer the ports of the server that came back

    def _on_midi_device(self, kind: str, name: str, present: bool) -> None:
        if present:
            self.gone_ports.pop(kind, None)
        else:
            self.gone_ports[kind] = name
        if not self.bridge.midi_server_ok:
            return  # "server lost" says more
        line = (f"MIDI {kind} {name}: reopened" if present
                else f"MIDI {kind} {name}: gone; nothing is sent to it until it is back")
        self.midi_view.show_server(True, "")
        self._show_gone_ports()
        self.statusBar().showMessage(line, 8000 if present else 0)

    def _show_gone_ports(self) -> None:
        if self.gone_ports:
            names = ", ".join(self.gone_ports[k] for k in sorted(self.gone_ports))
            self.midi_view.show_server(False, f"Gone: {names}; reopened when it is back")
            self.midi_view.setText(f"MIDI: {names} gone")

    def _on_busy(self, busy: bool) -> None:
        self.roll.busy = busy
        self.transport.set_busy(busy)
        self.roll.update()

    def _take_selected(self, ref: TakeRef | None) -> None:
        self.roll.selected = ref.number if ref is not None else None
        self.roll.update()

    def _tick(self) -> None:
        self.roll.set_playhead(self.bridge.quarters_now())
        for on, channel, pitch in self.bridge.sink.drain_monitor():
            if pitch < 0:
                self.keyboard.playing.clear()
                self.keyboard.update()
            elif channel != DRUM_CHANNEL and pitch not in self.bridge.keyboard_held:  # not the click, not your keys
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
        self.takes.select(ref.number, index)
        self.bridge.audition(ref.number, index)

    def accept_current(self) -> None:
        ref = self.takes.selected()
        if ref is not None:
            self.bridge.accept(ref.number, ref.index)
        else:
            self.bridge.accept()

    def discard(self, ref: TakeRef) -> None:
        self.bridge.discard(ref.number)
        self.takes.remove_take(ref.number)
        self.roll.remove_take(ref.number)
        self.statusBar().showMessage(f"Take {ref.number} discarded (Edit > Undo discard, Ctrl+Z, brings it back)",
                                     4000)

    def undo_discard(self) -> None:
        """Edit > Undo discard: the take discarded last comes back (an "undo" snapshot)."""
        self.bridge.undo_discard()

    def _show_undo(self, discarded: tuple[int, ...]) -> None:
        last = discarded[-1] if discarded else None
        self.act_undo_discard.setEnabled(last is not None)
        self.act_undo_discard.setText("&Undo discard" if last is None else f"&Undo discard of take {last}")

    def panic(self) -> None:
        self.bridge.panic()
        self.roll.release_all(self.bridge.quarters_now())
        self.keyboard.clear_lit()
        self.typing_row.release_all()
        self.statusBar().showMessage("All notes off", 3000)

    # -- errors -------------------------------------------------------------------------
    def show_error(self, message: str, dialog: bool = False) -> None:
        self.last_error = message
        self.statusBar().showMessage(message, 10000)
        self.errorShown.emit(message)
        if dialog and self.isVisible():
            box = QMessageBox(QMessageBox.Icon.Warning, TITLE, message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()  # not exec(): never block the event loop

    # -- window -----------------------------------------------------------------------------
    def changeEvent(self, event) -> None:  # noqa: N802
        # Keys released while another window has the focus never reach us: end their notes now.
        if event.type() == QEvent.Type.ActivationChange and not self.isActiveWindow():
            self.typing_row.release_all()
        super().changeEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.store.put(Keys.GEOMETRY, self.saveGeometry())
        self.store.sync()
        self.model_menu.close()
        self.timer.stop()
        self.typing_row.uninstall()
        self.bridge.close()
        super().closeEvent(event)

    def _show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{name}</td><td><b>{key}</b></td></tr>" for name, key in [
            ("Continue now", SHORTCUTS["continue"]), ("Accept take", SHORTCUTS["accept"]),
            ("Next / previous variation", "→ / ←"), ("Stop playback", SHORTCUTS["stop"]),
            ("All notes off", "Esc"), ("Open phrase", "Ctrl+O"), ("Export take", "Ctrl+E"),
            ("New session / open session", "Ctrl+N / Ctrl+Shift+O"), ("Undo discard", "Ctrl+Z"),
            ("Musical typing", "A W S E D F T G Y H U J K O L P ;"), ("Octave down / up", "Z / X")])
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table>{rows}</table>",
                          QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _show_about(self) -> None:
        QMessageBox.about(self, f"About {TITLE}",
                          f"{TITLE} {__version__}\nLive music continuation with a small RWKV-7 model.")


__all__ = ["MainWindow", "TITLE", "SHORTCUTS"]
