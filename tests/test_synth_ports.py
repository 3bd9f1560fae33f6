"""The built-in piano in the window: the default output, listed beside the MIDI
ports, MIDI thru, and one status-bar line when there is no audio device.

FluidSynth itself is replaced here by fakes (tests/test_synth_output.py and
tests/test_synth_jack.py exercise the real one).
"""
from __future__ import annotations

import threading

import mido
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from copilot_app.engine import midi_ports, synth_output  # noqa: E402
from copilot_app.engine.live import wait_until  # noqa: E402
from copilot_app.engine.synth_output import BUILTIN, BUILTIN_LABEL, SynthUnavailable  # noqa: E402
from copilot_app.ui.engine_bridge import ForwardingSink  # noqa: E402
from copilot_app.ui.port_worker import PortManager  # noqa: E402

NO_AUDIO = "built-in piano: no audio device (tried pulseaudio, alsa)"


class FakeOutput:
    """An output that records what it is sent (and whether it was closed)."""

    def __init__(self, name: str) -> None:
        self.name, self.sent, self.closed = name, [], False
        self.lock = threading.Lock()

    def send(self, msg: mido.Message) -> None:
        with self.lock:
            self.sent.append(msg)

    def close(self) -> None:
        self.closed = True

    def notes(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(m.type if m.type != "note_on" or m.velocity else "note_off", m.note)
                    for m in self.sent if m.type in ("note_on", "note_off")]


@pytest.fixture
def fakes(monkeypatch):
    made: dict[str, FakeOutput] = {}

    def open_synth(**_kw):
        made[BUILTIN] = FakeOutput(BUILTIN_LABEL)
        return made[BUILTIN]

    def open_output(name, *, virtual=False, api=None):
        made[name or "virtual"] = FakeOutput(name or "virtual")
        return made[name or "virtual"]

    def open_input(name, callback, *, virtual=False, api=None):
        port = FakeOutput(name or "virtual in")
        port.callback = callback
        made["input"] = port
        return port

    monkeypatch.setattr(synth_output, "open_synth", open_synth)
    monkeypatch.setattr(midi_ports, "open_output", open_output)
    monkeypatch.setattr(midi_ports, "open_input", open_input)
    monkeypatch.setattr(midi_ports, "list_ports", lambda api=None: (["Keys"], ["Ext Synth"]))
    return made


@pytest.fixture
def manager(qtbot):
    engine_got: list[mido.Message] = []
    m = PortManager(ForwardingSink(), engine_got.append)
    m.engine_got = engine_got
    yield m
    m.close()
    m.wait(5)


def play(port, *msgs: mido.Message) -> None:
    for msg in msgs:
        port.callback(msg)


ON60, OFF60 = mido.Message("note_on", note=60, velocity=90), mido.Message("note_off", note=60)
ON64 = mido.Message("note_on", note=64, velocity=90)


def test_thru_is_on_for_the_builtin_piano_and_off_for_other_outputs(manager, fakes):
    manager.open_input("Keys")
    manager.open_output(BUILTIN)
    assert manager.wait(5)
    assert manager.output_name == BUILTIN and manager.thru
    play(fakes["input"], ON60, OFF60, mido.Message("clock"))
    # Everything reaches the engine; the notes (not the clock) also sound.
    assert [m.type for m in manager.engine_got] == ["note_on", "note_off", "clock"]
    assert fakes[BUILTIN].notes() == [("note_on", 60), ("note_off", 60)]
    manager.open_output("Ext Synth")
    assert manager.wait(5)
    assert not manager.thru and fakes[BUILTIN].closed
    play(fakes["input"], ON64)
    assert fakes["Ext Synth"].notes() == []
    manager.set_thru(external=True)  # the setting for external outputs
    assert manager.wait(5) and manager.thru
    play(fakes["input"], ON60)
    assert fakes["Ext Synth"].notes() == [("note_on", 60)]


def test_notes_passed_on_end_when_the_input_closes_or_thru_goes_off(manager, fakes):
    manager.open_input("Keys")
    manager.open_output(BUILTIN)
    assert manager.wait(5)
    play(fakes["input"], ON60, ON64, OFF60)
    manager.open_input(None)  # the keyboard goes away with 64 held
    assert manager.wait(5)
    assert fakes[BUILTIN].notes()[-1] == ("note_off", 64)
    manager.open_input("Keys")
    assert manager.wait(5)
    play(fakes["input"], ON60)
    manager.set_thru(builtin=False)
    assert manager.wait(5) and not manager.thru
    assert fakes[BUILTIN].notes()[-1] == ("note_off", 60)
    play(fakes["input"], ON64)
    assert fakes[BUILTIN].notes()[-1] == ("note_off", 60)  # thru off: nothing more passed on


def test_no_audio_device_is_reported_and_playback_goes_on(manager, fakes, monkeypatch, qtbot):
    def no_audio(**_kw):
        raise SynthUnavailable(NO_AUDIO)

    monkeypatch.setattr(synth_output, "open_synth", no_audio)
    errors, opened = [], []
    manager.errorOccurred.connect(errors.append)
    manager.outputOpened.connect(lambda name, ok: opened.append((name, ok)))
    manager.open_output(BUILTIN)
    qtbot.waitUntil(lambda: opened == [(BUILTIN, False)], timeout=5000)
    assert errors == [NO_AUDIO]
    assert manager.output_name is None and manager.sink.target is None
    manager.sink.send(ON60)  # the engine's notes are dropped, nothing breaks


def _window(qtbot, tmp_path, settings):
    from copilot_app.ui.main_window import MainWindow

    w = MainWindow(settings=settings, models_dir=tmp_path / "models", autoload=False, open_ports=True)
    qtbot.addWidget(w)
    w.show()
    return w


def test_first_start_opens_the_builtin_piano_with_thru(qtbot, tmp_path, fakes):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = _window(qtbot, tmp_path, settings)
    combo = w.ports.output_combo
    qtbot.waitUntil(lambda: w.bridge.output_name == BUILTIN, timeout=5000)
    qtbot.waitUntil(lambda: combo.currentData() == BUILTIN, timeout=5000)
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels[0] == "(none)" and labels.index(BUILTIN_LABEL) < labels.index("Ext Synth")  # beside the ports
    assert w.ports.thru_check.isChecked() and w.ports.thru_check.isEnabled()
    assert w.ports.thru_check.toolTip()
    # Notes from the window (the engine's Player, the on-screen keyboard) reach the synth.
    w.bridge.keyboard_note(72, True)
    w.bridge.keyboard_note(72, False)
    assert wait_until(lambda: ("note_off", 72) in fakes[BUILTIN].notes(), 2.0)
    # An external output: thru is its own setting, off until turned on.
    combo.setCurrentIndex(combo.findData("Ext Synth"))
    combo.activated.emit(combo.currentIndex())
    qtbot.waitUntil(lambda: w.bridge.output_name == "Ext Synth", timeout=5000)
    assert not w.ports.thru_check.isChecked()
    w.ports.thru_check.setChecked(True)
    qtbot.waitUntil(lambda: settings.value("ports/thru_external") in (True, "true"), timeout=5000)
    qtbot.waitUntil(lambda: w.bridge.ports.thru, timeout=5000)
    qtbot.waitUntil(lambda: settings.value("ports/out") == "Ext Synth", timeout=5000)  # saved once open
    w.close()


def test_no_audio_device_is_said_once_and_the_window_works(qtbot, tmp_path, fakes, monkeypatch):
    calls = []

    def no_audio(**_kw):
        calls.append(1)
        raise SynthUnavailable(NO_AUDIO)

    monkeypatch.setattr(synth_output, "open_synth", no_audio)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = _window(qtbot, tmp_path, settings)
    shown = []
    w.errorShown.connect(shown.append)  # before the event loop delivers the port worker's answers
    qtbot.waitUntil(lambda: calls == [1], timeout=5000)
    qtbot.waitUntil(lambda: NO_AUDIO in (w.statusBar().currentMessage() or ""), timeout=5000)
    qtbot.wait(300)
    assert [m for m in shown if "no audio device" in m] == [NO_AUDIO]  # said once
    assert w.ports.output_combo.currentIndex() == 0  # back on (none)
    assert not w.ports.thru_check.isEnabled()
    # It keeps working: the built-in piano stays the saved choice for the next start, other outputs open.
    assert settings.value("ports/out") in (None, BUILTIN)
    combo = w.ports.output_combo
    combo.setCurrentIndex(combo.findData("Ext Synth"))
    combo.activated.emit(combo.currentIndex())
    qtbot.waitUntil(lambda: w.bridge.output_name == "Ext Synth", timeout=5000)
    assert calls == [1]
    w.close()


def test_the_builtin_piano_opens_without_any_midi_system(qtbot, tmp_path, fakes, monkeypatch):
    """No ALSA sequencer and no JACK: listing fails (one line), the built-in piano still opens."""
    def no_midi(api=None):
        raise midi_ports.MidiPortError("cannot list MIDI ports: no sequencer")

    monkeypatch.setattr(midi_ports, "list_ports", no_midi)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = _window(qtbot, tmp_path, settings)
    shown = []
    w.errorShown.connect(shown.append)
    qtbot.waitUntil(lambda: w.bridge.output_name == BUILTIN, timeout=5000)
    qtbot.waitUntil(lambda: w.ports.output_combo.currentData() == BUILTIN, timeout=5000)
    assert any("cannot list MIDI ports" in m for m in shown)
    w.close()
