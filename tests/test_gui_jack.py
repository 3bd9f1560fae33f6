"""The window on real JACK MIDI ports: its virtual In/Out chosen from the port menus.

A test client plays into "Composer Copilot In" and listens on "Composer
Copilot Out": the phrase shows in the piano roll, Continue answers on the
output, and Panic leaves every note-on with its note-off.
"""
from __future__ import annotations

import queue

import mido
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from copilot_app.ui.engine_bridge import VIRTUAL  # noqa: E402
from tests.helpers import ARPEGGIO, app_virtual_ports, drain_heard, play_notes  # noqa: E402
from tests.test_gui_live import started_window, tiny_model  # noqa: E402,F401  (fixture)

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]




def sounding(messages: list[mido.Message]) -> set[tuple[int, int]]:
    on: set[tuple[int, int]] = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            on.add((m.channel, m.note))
        elif m.type in ("note_on", "note_off"):
            on.discard((m.channel, m.note))
        elif m.type == "control_change" and m.control == 123:
            on = {k for k in on if k[0] != m.channel}
    return on


def choose(combo, data) -> None:
    """What a user's pick in a port menu does."""
    i = combo.findData(data)
    assert i >= 0, [combo.itemText(j) for j in range(combo.count())]
    combo.setCurrentIndex(i)
    combo.activated.emit(i)


def test_window_on_virtual_jack_ports(qtbot, tmp_path, tiny_model):  # noqa: F811
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = started_window(qtbot, tmp_path, tiny_model, settings=settings, open_ports=True)
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.time_controls.tempo.setValue(240.0)
    window.bridge.update_settings(seed=3)
    choose(window.ports.input_combo, VIRTUAL)
    choose(window.ports.output_combo, VIRTUAL)
    # The ports open on the port worker; the choice is saved once they are open.
    qtbot.waitUntil(lambda: settings.value("ports/in") == VIRTUAL and settings.value("ports/out") == VIRTUAL,
                    timeout=10000)
    received: "queue.Queue[mido.Message]" = queue.Queue()
    got: list[mido.Message] = []
    with app_virtual_ports(received) as keys:
        qtbot.wait(300)
        play_notes(keys, lambda s: qtbot.wait(int(s * 1000)), 0.2, 0.03)
        qtbot.waitUntil(lambda: [n.pitch for n in window.roll.state.played] == list(ARPEGGIO), timeout=10000)
        window.act_continue.trigger()
        qtbot.waitUntil(lambda: drain_heard(received, got), timeout=20000)
        window.act_panic.trigger()
        qtbot.wait(400)
        drain_heard(received, got)
    assert sounding(got) == set()
    assert {(m.channel, m.control) for m in got if m.type == "control_change"} >= {(c, 123) for c in range(16)}
    window.close()
