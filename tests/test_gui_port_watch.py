"""The port worker's server watch with fake ports and a scripted server (issue 21, no JACK needed)."""
from __future__ import annotations

import mido
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from copilot_app.engine import midi_ports  # noqa: E402
from copilot_app.ui.engine_bridge import ForwardingSink  # noqa: E402
from copilot_app.ui.port_worker import VIRTUAL, PortManager  # noqa: E402
from tests.test_port_watch import ScriptedWatch, fake_midi  # noqa: E402,F401  (fixture)


def test_port_worker_drops_playback_on_loss_and_reopens_the_chosen_ports(qtbot, fake_midi, monkeypatch):  # noqa: F811
    log, _present = fake_midi
    monkeypatch.setattr(midi_ports, "choose_api", lambda: "UNIX_JACK")
    sink, lost = ForwardingSink(), []
    manager = PortManager(sink, lambda m: None, on_lost=lambda: lost.append(True), watch=False)
    changes, opened = [], []
    manager.serverChanged.connect(lambda ok, line: changes.append((ok, line)))
    manager.outputOpened.connect(lambda name, ok: opened.append(("out", name, ok)))
    manager.inputOpened.connect(lambda name, ok: opened.append(("in", name, ok)))
    manager.open_input(VIRTUAL)
    manager.open_output("Synth")
    manager.watch()
    assert manager.wait(5)
    qtbot.waitUntil(lambda: len(opened) == 2, timeout=5000)
    server = manager._server
    assert isinstance(server, ScriptedWatch)

    server.next = "lost"
    manager.watch()
    qtbot.waitUntil(lambda: lost == [True], timeout=5000)     # the last thing the loss does
    assert changes == [(False, "MIDI server (JACK) lost: nothing is sent until it is back")]
    assert sink.target is None and not manager.server_alive
    dropped = sink.dropped
    sink.send(mido.Message("note_on", note=60))
    assert sink.dropped == dropped + 1                        # nothing into the void
    assert ("close", midi_ports.VIRTUAL_IN) in log
    assert ("close", "Synth") not in log                      # a dead output closes on the next look
    manager.watch()
    qtbot.waitUntil(lambda: ("close", "Synth") in log, timeout=5000)

    server.next = "back"
    opened.clear()
    manager.watch()
    qtbot.waitUntil(lambda: len(changes) == 2, timeout=5000)
    assert changes[1] == (True, "MIDI server (JACK) back: ports reopened")
    assert sorted(opened) == [("in", VIRTUAL, True), ("out", "Synth", True)]
    assert sink.target is not None and manager.input_name == VIRTUAL and manager.output_name == "Synth"
    manager.close().result(5)
