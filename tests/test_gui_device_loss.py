"""The window when a chosen MIDI device goes away and comes back, the JACK server staying up (issue 21).

On the real JACK server (dummy driver), the test makes the "device": a port of
a python-rtmidi client of its own. The window chooses it as its input (or
output); the device is deleted: within about a second (the port worker lists
the ports once a second) the status bar says "MIDI: <port> gone", nothing is
sent to it, the choice stays; the device is created again: the window opens
it again by itself, the status says "MIDI: ok" and a note goes through it.
"""
from __future__ import annotations

import time

import mido
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import rtmidi  # noqa: E402

from tests.helpers import wait_port  # noqa: E402
from tests.test_gui_jack import choose  # noqa: E402
from tests.test_gui_live import started_window, tiny_model  # noqa: E402,F401  (fixture)

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]

API = rtmidi.API_UNIX_JACK


def keyboard_device() -> rtmidi.MidiOut:
    """A keyboard: a port the window reads from."""
    dev = rtmidi.MidiOut(API, name="fakekbd")
    dev.open_virtual_port("Fake Keyboard")
    return dev


def synth_device() -> rtmidi.MidiIn:
    """A synth: a port the window plays into (read here by polling, no callback thread)."""
    dev = rtmidi.MidiIn(API, name="fakesynth")
    dev.open_virtual_port("Fake Synth")
    return dev


def unplug(dev) -> None:
    try:
        dev.close_port()
        dev.delete()
    except Exception:  # already unplugged (a failed test's clean-up)
        pass


def window_on(qtbot, tmp_path, tiny_model, combo_name: str, fragment: str, kind: int):  # noqa: F811
    window = started_window(qtbot, tmp_path, tiny_model)
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    name = wait_port(kind, fragment)
    window.refresh_ports()
    combo = getattr(window.ports, combo_name)
    qtbot.waitUntil(lambda: combo.findData(name) >= 0, timeout=10000)
    choose(combo, name)
    return window, name


def goes_away(qtbot, window, name: str) -> float:
    """Seconds until the status bar says the device is gone."""
    t0 = time.monotonic()
    qtbot.waitUntil(lambda: window.midi_view.text() == f"MIDI: {name} gone", timeout=5000)
    elapsed = time.monotonic() - t0
    assert not window.midi_view.ok
    assert window.engine_status.text() == "Engine: ready"  # the server is there; the session goes on
    return elapsed


def test_a_vanished_input_device_is_shown_and_reopened_when_it_is_back(qtbot, tmp_path, tiny_model):  # noqa: F811
    device = keyboard_device()
    window, name = window_on(qtbot, tmp_path, tiny_model, "input_combo", "Fake Keyboard", 0)
    try:
        qtbot.waitUntil(lambda: window.bridge.input_name == name, timeout=10000)

        def play(pitch: int) -> None:
            before = len(window.roll.state.played)
            qtbot.wait(300)  # JACK makes the connection
            device.send_message(mido.Message("note_on", note=pitch, velocity=90).bytes())
            qtbot.wait(100)
            device.send_message(mido.Message("note_off", note=pitch).bytes())
            qtbot.waitUntil(lambda: len(window.roll.state.played) > before, timeout=10000)
            assert window.roll.state.played[-1].pitch == pitch

        play(60)
        assert window.midi_view.text() == "MIDI: ok"
        unplug(device)
        elapsed = goes_away(qtbot, window, name)
        assert elapsed < 1.6, elapsed
        assert window.ports.input_combo.currentData() == name  # the choice is kept
        qtbot.wait(1500)                                        # still gone: no flapping, no crash
        assert window.midi_view.text() == f"MIDI: {name} gone"

        device = keyboard_device()                              # plugged in again
        qtbot.waitUntil(lambda: window.midi_view.ok, timeout=5000)
        assert window.midi_view.text() == "MIDI: ok"
        assert window.bridge.input_name == name
        play(62)
    finally:
        window.close()
        unplug(device)


def test_a_vanished_output_device_gets_nothing_and_is_reopened_when_it_is_back(qtbot, tmp_path,
                                                                               tiny_model):  # noqa: F811
    device = synth_device()
    window, name = window_on(qtbot, tmp_path, tiny_model, "output_combo", "Fake Synth", 1)
    bridge = window.bridge
    try:
        qtbot.waitUntil(lambda: bridge.output_name == name, timeout=10000)

        def hears(pitch: int) -> bool:
            qtbot.wait(300)
            while device.get_message() is not None:  # what came before (e.g. notes off on reopen)
                pass
            bridge.keyboard_note(pitch, True)
            bridge.keyboard_note(pitch, False)
            got: list[mido.Message] = []

            def arrived() -> bool:
                while (event := device.get_message()) is not None:
                    got.append(mido.Message.from_bytes(event[0]))
                return any(m.type == "note_on" and m.note == pitch and m.velocity > 0 for m in got)
            qtbot.waitUntil(arrived, timeout=5000)
            return True

        assert hears(60)
        unplug(device)
        elapsed = goes_away(qtbot, window, name)
        assert elapsed < 1.6, elapsed
        assert bridge.output_name is None and bridge.sink.target is None  # closed: nothing goes to it
        dropped = bridge.sink.dropped
        bridge.keyboard_note(64, True)
        bridge.keyboard_note(64, False)
        assert bridge.sink.dropped == dropped + 2
        assert window.ports.output_combo.currentData() == name  # the choice is kept

        device = synth_device()                                 # plugged in again
        qtbot.waitUntil(lambda: window.midi_view.ok, timeout=5000)
        assert window.midi_view.text() == "MIDI: ok"
        qtbot.waitUntil(lambda: bridge.output_name == name, timeout=5000)
        assert hears(67)
    finally:
        window.close()
        unplug(device)
