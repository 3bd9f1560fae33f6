"""Real MIDI through real ports: a JACK server (dummy driver) and python-rtmidi."""
from __future__ import annotations

import queue
import time

import mido
import pytest

from copilot_app.engine import midi_ports

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]

PHRASE = [
    mido.Message("note_on", channel=0, note=60, velocity=100),
    mido.Message("control_change", channel=0, control=64, value=127),
    mido.Message("note_off", channel=0, note=60, velocity=0),
    mido.Message("pitchwheel", channel=0, pitch=-2048),
]


def _receive(q: "queue.Queue[mido.Message]", n: int, timeout: float = 5.0) -> list[mido.Message]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(q.get(timeout=0.05))
        except queue.Empty:
            pass
    return got


def _wait_for_port(list_index: int, fragment: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = midi_ports.list_ports()[list_index]
        hits = [n for n in names if fragment in n]
        if hits:
            return hits[0]
        time.sleep(0.05)
    raise AssertionError(f"port {fragment!r} never appeared: {midi_ports.list_ports()}")


def test_jack_is_the_chosen_api():
    assert midi_ports.choose_api() == "UNIX_JACK"


def test_virtual_output_to_input_passes_notes():
    received: "queue.Queue[mido.Message]" = queue.Queue()
    with midi_ports.open_output(midi_ports.VIRTUAL_OUT, virtual=True) as out:
        source = _wait_for_port(0, midi_ports.VIRTUAL_OUT)
        with midi_ports.open_input(source, received.put):
            time.sleep(0.2)  # let JACK finish the connection before sending
            for msg in PHRASE:
                out.send(msg)
            got = _receive(received, len(PHRASE))
    assert [m.bytes() for m in got] == [m.bytes() for m in PHRASE]


def test_output_reaches_virtual_input_by_partial_name():
    received: "queue.Queue[mido.Message]" = queue.Queue()
    with midi_ports.open_input(midi_ports.VIRTUAL_IN, received.put, virtual=True):
        _wait_for_port(1, midi_ports.VIRTUAL_IN)
        # Users type part of a name; the client prefix is filled in.
        with midi_ports.open_output("copilot in") as out:
            time.sleep(0.2)
            out.send(mido.Message("note_on", note=64, velocity=90))
            out.send(mido.Message("note_on", note=64, velocity=0))  # running-status style note-off
            got = _receive(received, 2)
    assert [(m.type, m.note, m.velocity) for m in got] == [("note_on", 64, 90), ("note_on", 64, 0)]


def test_unknown_port_is_a_clear_error():
    with pytest.raises(midi_ports.MidiPortError, match="no MIDI output port matches 'Nonexistent Synth'"):
        midi_ports.open_output("Nonexistent Synth")


def test_port_keeper_reconnects_when_the_device_comes_back():
    received: "queue.Queue[mido.Message]" = queue.Queue()
    b = midi_ports.backend()
    device = b.open_output("Fake Keyboard", virtual=True, client_name="fakekbd")
    keeper = midi_ports.PortKeeper("input", "Fake Keyboard", received.put)
    try:
        time.sleep(0.2)
        device.send(mido.Message("note_on", note=60, velocity=80))
        assert [m.note for m in _receive(received, 1)] == [60]
        assert keeper.check() is None
        device.close()                       # unplugged
        time.sleep(0.2)
        assert keeper.check() == "lost" and not keeper.connected
        device = b.open_output("Fake Keyboard", virtual=True, client_name="fakekbd")  # plugged back in
        time.sleep(0.2)
        assert keeper.check() == "back" and keeper.reconnects == 1
        time.sleep(0.2)
        device.send(mido.Message("note_on", note=62, velocity=80))
        assert [m.note for m in _receive(received, 1)] == [62]
    finally:
        keeper.close()
        device.close()


def test_output_keeper_drops_while_gone():
    b = midi_ports.backend()
    synth = b.open_input("Fake Synth", virtual=True, client_name="fakesynth")
    keeper = midi_ports.PortKeeper("output", "Fake Synth")
    synth.close()
    time.sleep(0.2)
    assert keeper.check() == "lost"
    keeper.send(mido.Message("note_off", note=60))
    assert keeper.dropped == 1
    keeper.close()


def test_a_device_plugged_back_under_a_renamed_client_is_the_same_port():
    """JACK renames a client whose name is still taken ("synth-01"): a device
    plugged back in before its old client is gone is still the chosen port."""
    from copilot_app.engine.midi_ports import _match, port_present

    assert port_present("fakesynth:Fake Synth", ["fakesynth-01:Fake Synth", "other:port"])
    assert _match("fakesynth:Fake Synth", ["fakesynth-01:Fake Synth"], "output") == "fakesynth-01:Fake Synth"
    assert not port_present("fakesynth:Fake Synth", ["fakesynth-01:Other", "x:Fake Synth 2"])
