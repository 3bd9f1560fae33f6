"""A port opened on JACK is checked to pass MIDI, and opened again when it does not.

libjack can hand a new client a stale wake-up futex when another client closes
at the same moment (copilot_app/engine/jack_port_check.py): the port is listed
but nothing passes. The unit tests pin the retry bookkeeping with fakes; the
JACK tests probe real ports on the dummy server, a healthy one and one whose
reader is stopped (nothing it receives reaches the app), and check that an
output opened on a device is connected only after its check: the device
never receives a probe.
"""
from __future__ import annotations

import queue
import time

import mido
import pytest
import rtmidi

from copilot_app.engine import jack_port_check, midi_ports


def test_a_probe_is_recognised_and_carries_a_fresh_nonce():
    a, b = jack_port_check.new_probe(), jack_port_check.new_probe()
    assert jack_port_check.is_probe(a) and jack_port_check.is_probe(list(a))
    assert a != b  # 28 random bits: two probes practically never collide
    assert all(0 <= x <= 0x7F for x in a[1:-1])  # a valid sysex body
    assert not jack_port_check.is_probe([0x90, 60, 100])
    assert not jack_port_check.is_probe([0xF0, 0x7D, 0x43, 0x44, 1, 2, 3, 4, 0xF7])


def test_our_ports_are_found_under_renamed_clients_only():
    names = ["Composer Copilot:Composer Copilot In", "Composer Copilot-01:Composer Copilot Out",
             "Composer Copilot-02:Composer Copilot In", "Composer Copilot listener:input",
             "Composer Copilot-xy:Composer Copilot In", "system:midi_capture_1"]
    assert jack_port_check.our_ports(names, "Composer Copilot", "Composer Copilot In") == [0, 2]
    assert jack_port_check.our_ports(names, "Composer Copilot", "Composer Copilot Out") == [1]
    assert jack_port_check.our_ports(names, "Composer Copilot listener", "input") == [3]
    assert jack_port_check.our_ports(names, "Composer Copilot", "input") == []


class _Port:
    def __init__(self, log: list, n: int) -> None:
        self.n, self.log = n, log
        log.append(("open", n))

    def close(self) -> None:
        self.log.append(("close", self.n))


def test_a_port_that_passes_nothing_is_closed_and_opened_again(monkeypatch):
    monkeypatch.setattr(midi_ports.time, "sleep", lambda s: None)
    log: list = []
    count = iter(range(1, 10))
    port = midi_ports._checked("input", "Keys", "UNIX_JACK", lambda: _Port(log, next(count)),
                               lambda p: p.n == 2)
    assert port.n == 2
    assert log == [("open", 1), ("close", 1), ("open", 2)]


def test_a_port_that_never_passes_is_a_one_line_error_and_nothing_is_left_open(monkeypatch):
    monkeypatch.setattr(midi_ports.time, "sleep", lambda s: None)
    log: list = []
    count = iter(range(1, 10))
    with pytest.raises(midi_ports.MidiPortError, match="passes no MIDI"):
        midi_ports._checked("output", "Composer Copilot Out", "UNIX_JACK", lambda: _Port(log, next(count)),
                            lambda p: False)
    opened = [n for what, n in log if what == "open"]
    assert len(opened) == jack_port_check.OPEN_TRIES
    assert sorted(n for what, n in log if what == "close") == opened


def test_off_jack_nothing_is_checked():
    calls = []
    port = midi_ports._checked("input", "Keys", "LINUX_ALSA", lambda: "port", lambda p: calls.append(p))
    assert port == "port" and calls == []


@pytest.mark.jack
@pytest.mark.usefixtures("jack_server")
def test_real_ports_pass_their_probe_and_a_stopped_reader_does_not():
    received: "queue.Queue[mido.Message]" = queue.Queue()
    with midi_ports.open_input(None, received.put, virtual=True) as inp:
        assert inp.passes_midi()
        inp._stop.set()  # the reader stops: what JACK delivers no longer reaches the app
        inp._thread.join()
        t0 = time.monotonic()
        assert not inp.passes_midi()
        assert time.monotonic() - t0 < 3 * jack_port_check.PROBE_TIMEOUT_S
    assert received.empty()  # the probes were never handed on as music
    out = midi_ports.open_output(None, virtual=True)
    try:
        assert jack_port_check.output_passes(midi_ports._API_IDS["UNIX_JACK"], midi_ports.CLIENT_NAME,
                                             midi_ports.VIRTUAL_OUT,
                                             lambda probe: out.send(mido.Message.from_bytes(probe)))
        assert not jack_port_check.output_passes(midi_ports._API_IDS["UNIX_JACK"], midi_ports.CLIENT_NAME,
                                                 midi_ports.VIRTUAL_OUT, lambda probe: None)
    finally:
        out.close()


@pytest.mark.jack
@pytest.mark.usefixtures("jack_server")
def test_another_apps_probe_is_not_music_and_music_still_passes():
    received: "queue.Queue[mido.Message]" = queue.Queue()
    with midi_ports.open_input(None, received.put, virtual=True):
        with midi_ports.open_output(midi_ports.VIRTUAL_IN) as keys:
            time.sleep(0.2)
            keys.send(mido.Message.from_bytes(jack_port_check.new_probe()))
            keys.send(mido.Message("note_on", note=60, velocity=90))
            got = received.get(timeout=5)
            time.sleep(0.2)
    assert got.type == "note_on" and got.note == 60
    assert received.empty()


def test_a_check_that_fails_itself_closes_the_port_and_says_why(monkeypatch):
    log: list = []

    def broken(port):
        raise OSError("JACK server not running?")
    with pytest.raises(OSError, match="not running"):
        midi_ports._checked("input", "Keys", "UNIX_JACK", lambda: _Port(log, 1), broken)
    assert log == [("open", 1), ("close", 1)]


@pytest.mark.jack
@pytest.mark.usefixtures("jack_server")
def test_an_output_to_a_device_is_checked_before_it_is_connected_so_the_device_never_sees_a_probe():
    device = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="copilot-test-synth")  # takes everything, sysex too
    device.ignore_types(sysex=False, timing=False, active_sense=False)
    device.open_virtual_port("synth in")
    try:
        target = next(n for n in midi_ports.list_ports()[1] if n.endswith(":synth in"))
        with midi_ports.open_output(target) as out:
            assert out.name == target  # the keeper finds it again by the device's name
            time.sleep(0.1)
            out.send(mido.Message("note_on", note=62, velocity=80))
            got, deadline = [], time.monotonic() + 5
            while time.monotonic() < deadline and not got:
                event = device.get_message()
                if event is None:
                    time.sleep(0.005)
                else:
                    got.append(event[0])
            time.sleep(0.2)
            while (event := device.get_message()) is not None:
                got.append(event[0])
        assert got == [[0x90, 62, 80]]
    finally:
        device.close_port()
        device.delete()
