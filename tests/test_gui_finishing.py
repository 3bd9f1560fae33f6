"""The small things of issue 18, through the real window offscreen: musical typing
ignores auto-repeat, variations default to 3 and show, the velocity control
reaches the engine, every control has a tooltip, the Open dialog remembers
its folder, and File > Open example lists the shipped phrases."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QKeyEvent  # noqa: E402
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox,  # noqa: E402
                               QSlider)

from copilot_app.ui import file_commands as file_commands_module  # noqa: E402
from copilot_app.ui.main_window import MainWindow, example_phrases  # noqa: E402
from copilot_app.ui.musical_typing import RELEASE_GRACE_MS  # noqa: E402
from copilot_app.ui.settings_store import Keys  # noqa: E402
from tests.test_gui_live import make_tiny_checkpoint, started_window  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def settings_at(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=settings_at(tmp_path), models_dir=tmp_path / "models", autoload=False,
                   open_ports=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def record_typing(window) -> list[tuple[int, bool]]:
    sent: list[tuple[int, bool]] = []
    window.typing_row._send_note = lambda pitch, on: sent.append((pitch, on))
    return sent


def key(kind: QEvent.Type, code: Qt.Key, text: str, repeat: bool = False) -> QKeyEvent:
    return QKeyEvent(kind, code, Qt.KeyboardModifier.NoModifier, text, repeat)


def send(widget, event) -> None:
    QApplication.sendEvent(widget, event)


def test_typing_ignores_key_events_flagged_as_auto_repeat(window, qtbot):
    sent = record_typing(window)
    send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_A, "a"))
    for _ in range(11):  # a held key, as X11 with detectable auto-repeat sends it
        send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_A, "a", repeat=True))
        send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_A, "a", repeat=True))
    assert sent == [(60, True)]
    send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_A, "a"))
    qtbot.waitUntil(lambda: sent == [(60, True), (60, False)], timeout=2000)


def test_typing_ignores_rapid_release_press_pairs_of_one_key(window, qtbot):
    """Auto-repeat without the flag: plain release/press pairs a moment apart."""
    sent = record_typing(window)
    send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_D, "d"))
    for _ in range(11):
        send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_D, "d"))
        send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_D, "d"))
        qtbot.wait(5)
    assert sent == [(64, True)]  # one note, still sounding
    send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_D, "d"))
    qtbot.waitUntil(lambda: sent == [(64, True), (64, False)], timeout=2000)
    # A real second strike (a finger, 50+ ms later) is a second note.
    qtbot.wait(RELEASE_GRACE_MS * 3)
    send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_D, "d"))
    send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_D, "d"))
    qtbot.waitUntil(lambda: sent == [(64, True), (64, False)] * 2, timeout=2000)
    # Two keys at once (a chord) are two notes, each ended by its own release.
    sent.clear()
    send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_A, "a"))
    send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_G, "g"))
    send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_A, "a"))
    send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_G, "g"))
    qtbot.waitUntil(lambda: len(sent) == 4, timeout=2000)
    assert sorted(sent) == [(60, False), (60, True), (67, False), (67, True)]
    # Panic ends a note whose release is still in its grace period.
    sent.clear()
    send(window.roll, key(QEvent.Type.KeyPress, Qt.Key.Key_A, "a"))
    send(window.roll, key(QEvent.Type.KeyRelease, Qt.Key.Key_A, "a"))
    window.panic()
    assert sent == [(60, True), (60, False)]
    qtbot.wait(RELEASE_GRACE_MS * 3)
    assert sent == [(60, True), (60, False)]


def test_variations_default_to_3_and_show_without_advanced(window):
    c = window.continuation
    assert c.variations.value() == 3
    assert not c.advanced_toggle.isChecked() and not c.advanced.isVisible()
    assert c.variations.isVisible()
    assert c.values()["variations"] == 3


def test_every_control_has_a_tooltip(window):
    controls = []
    for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QSlider):
        for w in window.findChildren(kind):
            if w.objectName().startswith("qt_") or isinstance(w.parent(), (QAbstractSpinBox, QComboBox)):
                continue  # Qt's own parts of a control (a spin box's arrows, the menu bar's » button)
            controls.append(w)
    controls += [window.roll, window.keyboard, window.takes.handle, window.takes.list]
    assert len(controls) >= 20
    missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')() or w.objectName()}"
               for w in controls if not w.toolTip().strip()]
    assert missing == []


def test_velocity_control_follows_or_fixes_and_is_saved(qtbot, tmp_path):
    model = make_tiny_checkpoint(tmp_path / "tiny.safetensors")
    w = started_window(qtbot, tmp_path, model)
    c = w.continuation
    assert c.velocity.value() == 0 and c.velocity.text() == "Follow you" and c.velocity.isVisible()
    assert w.bridge.engine.session.settings.fixed_velocity is None
    c.velocity.setValue(64)
    qtbot.waitUntil(lambda: w.bridge.engine.session.settings.fixed_velocity == 64, timeout=5000)
    w.close()
    again = MainWindow(settings=settings_at(tmp_path), models_dir=tmp_path / "models", autoload=False,
                       open_ports=False)
    qtbot.addWidget(again)
    assert again.continuation.velocity.value() == 64
    again.continuation.velocity.setValue(0)
    assert again.continuation.values()["fixed_velocity"] is None
    again.close()


def test_open_dialog_remembers_its_folder(window, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "my phrases"
    folder.mkdir()
    asked: list[str] = []
    answers = [str(folder / "a.mid"), ""]

    def fake_dialog(parent, caption, directory, filters):
        asked.append(directory)
        return answers.pop(0), filters

    monkeypatch.setattr(file_commands_module.QFileDialog, "getOpenFileName", staticmethod(fake_dialog))
    opened: list[str] = []
    window.continue_file = opened.append
    window.open_phrase()
    window.open_phrase()
    assert opened == [str(folder / "a.mid")]
    assert asked[1] == str(folder)
    # ... also after a restart (the folder is in the settings file).
    window.close()
    again = MainWindow(settings=settings_at(tmp_path), models_dir=tmp_path / "models", autoload=False,
                       open_ports=False)
    qtbot.addWidget(again)
    assert again.store.get(Keys.OPEN_DIR) == str(folder)
    again.close()


def test_file_menu_lists_the_example_phrases(window):
    examples = example_phrases()
    names = {p.name for p in examples}
    assert {"01-pop-ballad-4-4.mid", "02-waltz-3-4.mid", "03-jig-6-8.mid", "04-chorale-4-4.mid"} <= names
    titles = [a.text() for a in window.examples_menu.actions()]
    assert titles[:4] == ["Pop ballad 4/4", "Waltz 3/4", "Jig 6/8", "Chorale 4/4"]
    opened: list[str] = []
    window.continue_file = opened.append
    window.examples_menu.actions()[2].trigger()
    assert opened == [str(REPO / "resources" / "phrases" / "03-jig-6-8.mid")]


def test_example_phrases_are_what_their_script_writes(tmp_path, monkeypatch):
    """The committed .mid files are the generator's output, byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_phrases", REPO / "resources" / "phrases" / "make_phrases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    for made in sorted(tmp_path.glob("*.mid")):
        assert made.read_bytes() == (REPO / "resources" / "phrases" / made.name).read_bytes(), made.name


def test_example_phrases_open_in_their_meter_and_tempo():
    from copilot_app.engine.phrase_file import read_phrase

    meters = {p.name: read_phrase(p) for p in example_phrases()}
    assert (meters["02-waltz-3-4.mid"].meter.numerator, meters["02-waltz-3-4.mid"].meter.denominator) == (3, 4)
    assert (meters["03-jig-6-8.mid"].meter.numerator, meters["03-jig-6-8.mid"].meter.denominator) == (6, 8)
    assert round(meters["01-pop-ballad-4-4.mid"].tempo_bpm) == 72
    for phrase in meters.values():
        assert len(phrase.notes) >= 16 and len({n.velocity for n in phrase.notes}) > 2  # dynamics to follow


def test_every_control_of_the_fine_tune_dialog_has_a_tooltip(window, qtbot):
    from PySide6.QtWidgets import QLineEdit, QListWidget

    dialog = window.open_finetune()
    qtbot.addWidget(dialog)
    controls = [w for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QListWidget)
                for w in dialog.findChildren(kind)
                if not w.objectName().startswith("qt_")
                and not isinstance(w.parent(), (QAbstractSpinBox, QComboBox))]
    assert len(controls) >= 9
    assert [type(w).__name__ for w in controls if not w.toolTip().strip()] == []
    dialog.close()
