"""The desktop window, shown for real on Qt's offscreen platform (no model needed)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QSettings  # noqa: E402

from copilot_app.ui.main_window import TITLE, MainWindow  # noqa: E402


def temp_settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def test_main_window_shows_and_renders(qtbot, tmp_path):
    window = MainWindow("default", "CPU", settings=temp_settings(tmp_path), models_dir=tmp_path / "models",
                        autoload=False, open_ports=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.isVisible() and window.windowTitle() == TITLE
    assert [a.text() for a in window.menuBar().actions()] == ["&File", "&Edit", "&Play", "&Model", "&Style", "&Help"]
    file_actions = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "&Open phrase…" in file_actions and "&Export take…" in file_actions
    model_actions = [a.text() for a in window.model_menu.menu.actions()]
    assert "&Fine-tune on my pieces…" in model_actions
    assert window.model_status.text() == "Model: default"
    assert window.device_status.text() == "Device: CPU"
    # Ports: none and our virtual ports are always offered.
    assert window.ports.input_combo.itemText(0) == "(none)" and "virtual" in window.ports.input_combo.itemText(1)
    assert "virtual" in window.ports.output_combo.itemText(1)
    image = window.grab().toImage()
    assert image.width() >= 800 and image.height() >= 500
    # Something was painted: a blank window would be one flat colour.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 2
    assert image.save(str(tmp_path / "main_window.png"))
    window.close()


def test_without_a_model_the_commands_explain_themselves(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("copilot_app.ui.models.bundled_model", lambda: None)  # as before one ships
    monkeypatch.setattr("copilot_app.ui.models.bundled_models", lambda: [])
    window = MainWindow(settings=temp_settings(tmp_path), models_dir=tmp_path / "models", open_ports=False)
    qtbot.addWidget(window)
    window.show()
    # No model anywhere: a clear message, not a crash.
    assert "No model yet" in window.last_error
    assert window.model_menu.menu.actions()[0].text() == "(no models yet)"
    window.bridge_trigger()  # the engine runs without a model and says so
    qtbot.waitUntil(lambda: "no model loaded" in (window.last_error or ""), timeout=5000)
    window.panic()  # panic without an engine still works (all notes off to the output)
    window.close()


def test_settings_persist_in_the_given_qsettings(qtbot, tmp_path):
    settings = temp_settings(tmp_path)
    first = MainWindow(settings=settings, models_dir=tmp_path / "models", autoload=False, open_ports=False)
    qtbot.addWidget(first)
    first.show()
    first.time_controls.tempo.setValue(97.0)
    first.time_controls.meter_combo.setCurrentText("6/8")
    first.continuation.temperature.setValue(120)
    first.continuation.top_p.setValue(80)
    first.continuation.bars.setValue(5)
    first.continuation.variations.setValue(4)
    first.time_controls.metronome_check.setChecked(True)
    first.continuation.trigger_combo.setCurrentIndex(first.continuation.trigger_combo.findData("key"))
    first.resize(700, 500)
    geometry = first.saveGeometry()
    first.close()
    settings.sync()
    assert (tmp_path / "settings.ini").is_file()

    second = MainWindow(settings=temp_settings(tmp_path), models_dir=tmp_path / "models", autoload=False,
                        open_ports=False)
    qtbot.addWidget(second)
    assert second.time_controls.tempo.value() == 97.0 and second.time_controls.meter_combo.currentText() == "6/8"
    assert second.continuation.temperature.value() == 120 and second.continuation.temperature_value.text() == "1.20"
    assert second.continuation.top_p.value() == 80 and second.continuation.bars.value() == 5 and second.continuation.variations.value() == 4
    assert second.time_controls.metronome_check.isChecked() and second.continuation.trigger_combo.currentData() == "key"
    assert temp_settings(tmp_path).value("window/geometry") == geometry
    # Restored (the offscreen screen clamps it to the minimum size), not the 1280x800 default.
    assert (second.width(), second.height()) != (1280, 800)
    # ... and they reach the engine, which reports them back in its snapshot.
    def engine_has_them():
        snap = second.bridge.snapshot
        if snap is None:
            return False
        s = snap.settings
        return ((s.temperature, s.top_p, s.bars, s.variations, s.trigger_key) == (1.2, 0.8, 5, 4, 21)
                and snap.timeline.bpm == 97.0 and snap.timeline.meter.denominator == 8 and snap.metronome)
    qtbot.waitUntil(engine_has_them, timeout=5000)
    second.close()


# (Keep the port test above the entry-point test: run_gui's app.quit() leaves Qt's
# quitNow flag set, so later event loops in this process return at once.)
class FakePort:
    """A MIDI port that records on which thread it was opened and closed."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        log.append(("open", name, threading.current_thread()))

    def send(self, msg):
        pass

    def close(self):
        self.log.append(("close", self.name, threading.current_thread()))


def test_midi_ports_are_listed_opened_and_closed_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    from copilot_app.engine import midi_ports
    from copilot_app.ui.engine_bridge import VIRTUAL

    log = []

    def list_ports(api=None):
        log.append(("list", "", threading.current_thread()))
        time.sleep(0.2)  # a slow ALSA/JACK answer must not freeze the window
        return ["Fake Keys"], ["Fake Synth"]

    def open_input(name, callback, *, virtual=False, api=None):
        if name == "Broken Keys":
            raise midi_ports.MidiPortError("cannot open MIDI input 'Broken Keys'")
        return FakePort(name or midi_ports.VIRTUAL_IN, log)

    def open_output(name, *, virtual=False, api=None):
        return FakePort(name or midi_ports.VIRTUAL_OUT, log)

    monkeypatch.setattr(midi_ports, "list_ports", list_ports)
    monkeypatch.setattr(midi_ports, "open_input", open_input)
    monkeypatch.setattr(midi_ports, "open_output", open_output)
    settings = temp_settings(tmp_path)
    settings.setValue("ports/in", "Fake Keys")
    settings.setValue("ports/out", "Fake Synth")
    # watch_interval_s=None: no device watch, so the listings below are exactly the ones asked for.
    window = MainWindow(settings=settings, models_dir=tmp_path / "models", autoload=False, open_ports=True,
                        watch_interval_s=None)
    qtbot.addWidget(window)
    window.show()
    # The saved ports open once the worker has listed them.
    qtbot.waitUntil(lambda: window.bridge.input_name == "Fake Keys" and window.bridge.output_name == "Fake Synth",
                    timeout=5000)
    qtbot.waitUntil(lambda: window.ports.input_combo.currentData() == "Fake Keys", timeout=5000)
    assert window.ports.output_combo.currentData() == "Fake Synth"
    # A pick from the menu: the old input closes, the virtual one opens.
    window.ports.input_combo.setCurrentIndex(window.ports.input_combo.findData(VIRTUAL))
    window.ports.input_combo.activated.emit(window.ports.input_combo.currentIndex())
    qtbot.waitUntil(lambda: ("close", "Fake Keys") in [e[:2] for e in log], timeout=5000)
    qtbot.waitUntil(lambda: window.bridge.input_name == VIRTUAL, timeout=5000)
    qtbot.waitUntil(lambda: settings.value("ports/in") == VIRTUAL, timeout=5000)
    # A port that fails to open: an error in the status bar, the menu back on (none).
    window.ports.input_combo.addItem("Broken Keys", "Broken Keys")
    window.ports.input_combo.setCurrentIndex(window.ports.input_combo.findData("Broken Keys"))
    window.ports.input_combo.activated.emit(window.ports.input_combo.currentIndex())
    qtbot.waitUntil(lambda: window.ports.input_combo.currentIndex() == 0, timeout=5000)
    assert "Broken Keys" in (window.last_error or "")
    window.ports.refresh_button.click()
    qtbot.waitUntil(lambda: [e[0] for e in log].count("list") == 2, timeout=5000)
    window.close()
    qtbot.waitUntil(lambda: ("close", "Fake Synth") in [e[:2] for e in log], timeout=5000)
    kinds = [e[0] for e in log]
    assert kinds.count("open") == 3 and kinds.count("close") == 3 and kinds.count("list") == 2
    main = threading.main_thread()
    assert all(thread is not main for _k, _n, thread in log), [(k, n, t.name) for k, n, t in log]
    assert {thread.name.split("_")[0] for _k, _n, thread in log} == {"copilot-ports"}


def test_take_files_are_written_in_the_background_and_export_errors_reach_the_status_bar(
        qtbot, tmp_path, monkeypatch):
    from copilot_app.engine.session_model import Take
    from copilot_app.ui import take_files
    from copilot_app.ui.takes_panel import TakeRef
    from model.tokens.streaming import DecodedNote

    window = MainWindow(settings=temp_settings(tmp_path), models_dir=tmp_path / "models", autoload=False,
                        open_ports=False)
    qtbot.addWidget(window)
    threads = []
    real_write = take_files.write_take

    def recording_write(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_write(*args, **kwargs)

    monkeypatch.setattr(take_files, "write_take", recording_write)
    take = Take(1, 4.0, [[DecodedNote(96, 24, 60, 80)], [DecodedNote(96, 48, 64, 80)]], 80, tempo_bpm=110.0)
    files = window.bridge.files
    files.add(take)          # what the engine thread does when a take is complete
    qtbot.waitUntil(lambda: files.ready(take), timeout=5000)
    assert threads and all(t is not threading.main_thread() for t in threads)
    paths = [files.path(take, i) for i in range(2)]
    assert all(p.is_file() and p.name == f"copilot-take-1-v{i + 1}.mid" for i, p in enumerate(paths))
    # A take that never went through the writer (it cannot happen in the app) still drags: written now.
    other = Take(2, 0.0, [[DecodedNote(0, 24, 62, 80)]], 80)
    mime = window._mime_for_ref(TakeRef(other, 0))
    assert Path(mime.urls()[0].toLocalFile()).is_file()
    # Export: written on the file worker; a failure is one line in the status bar.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    window.export_take(TakeRef(take, 1), path=str(blocker / "take.mid"))
    qtbot.waitUntil(lambda: "export failed" in (window.last_error or ""), timeout=5000)
    assert "export failed" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.exported, timeout=5000) as signal:
        window.export_take(TakeRef(take, 1), path=str(tmp_path / "out.mid"))
    assert signal.args == [str(tmp_path / "out.mid")] and (tmp_path / "out.mid").is_file()
    window.close()


def test_gui_entry_point_screenshot(tmp_path):
    """The real entry point, in its own process: run_gui runs and quits the Qt
    event loop, which in this process would stop cross-thread events for
    every GUI test after it."""
    import os
    import subprocess
    import sys

    from copilot_app.ui.app import SETTINGS_ENV

    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), **{SETTINGS_ENV: str(tmp_path / "settings.ini")})
    proc = subprocess.run([sys.executable, "main.py", "--device", "cpu", "--screenshot", str(shot)],
                          cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.stat().st_size > 1000


def test_piano_roll_view_follows_the_music(qtbot):
    from copilot_app.engine.session_model import Take, TakeView
    from copilot_app.ui.piano_roll import PianoRoll
    from model.tokens.streaming import DecodedNote

    roll = PianoRoll()
    qtbot.addWidget(roll)
    assert roll.view_range() == (0.0, 32.0)          # 8 bars of 4/4 from bar 1
    roll.set_playhead(100.0)
    assert roll.view_range() == (76.0, 108.0)        # pages along with the playhead
    roll.clear()
    for i, pitch in enumerate([60, 62, 64, 65, 67]):  # a phrase in bars 2-3
        roll.note_on(4.0 + 1.5 * i, pitch)
        roll.note_off(5.0 + 1.5 * i, pitch)
    take = Take(1, 16.0, [[DecodedNote(16 * 24, 48, 72, 80), DecodedNote(22 * 24, 96, 71, 80)]], 80)
    roll.show_takes([TakeView(take)])
    roll.set_playhead(17.0)
    left, right = roll.view_range()
    assert left <= 4.0 and right >= 26.0              # phrase and answer on screen together
    low, high = roll.pitch_range(left, right)
    assert low <= 60 and high >= 72 and high - low >= 24
    roll.set_playhead(200.0)                          # long silence: the view stays on them
    assert roll.view_range() == (left, right)
    roll.remove_take(take.number)
    assert roll.state.takes == []


def test_installed_pyside6_keeps_references_to_none_and_true():
    # PySide6 6.12.0 on CPython < 3.12 returned None/True from Qt calls and
    # Signal.emit without a new reference; the app then aborted after a few
    # thousand signals. pyproject.toml excludes it; this catches a relapse.
    import sys

    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(200):
        probe.setObjectName("probe")
        probe.ping.emit()
    assert sys.getrefcount(None) - none_before > -50
    assert sys.getrefcount(True) - true_before > -50



def test_every_bundled_model_is_listed_default_first(tmp_path, monkeypatch):
    from copilot_app.engine import runtime_info
    from copilot_app.ui.models import all_models

    shipped = tmp_path / "models"
    shipped.mkdir()
    for name in ("default", "folk-and-chorale", "another"):
        (shipped / f"{name}.safetensors").write_bytes(b"x")
    monkeypatch.setattr(runtime_info, "DEFAULT_MODEL", shipped / "default.safetensors")
    user = tmp_path / "user"
    (user / "my-style").mkdir(parents=True)
    (user / "my-style" / "best.safetensors").write_bytes(b"x")
    entries = all_models(user)
    assert [(e.label, e.path.name) for e in entries] == [
        ("Default (bundled)", "default.safetensors"),
        ("Another (bundled)", "another.safetensors"),
        ("Folk and chorale (bundled)", "folk-and-chorale.safetensors"),
        ("my-style", "best.safetensors"),
    ]
