"""Server and port loss without a MIDI server: fake ports, a scripted server watch (issue 21).

The JACK tests (test_listen_jack_server_loss.py, test_gui_jack_server_loss.py)
kill a real server; these pin the bookkeeping: what is closed, dropped,
reported and reopened, in which order.
"""
from __future__ import annotations

import mido
import pytest

from copilot_app.engine import midi_ports


class FakePort:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.closed = name, log, False
        log.append(("open", name))

    def send(self, msg) -> None:
        self.log.append(("send", self.name, msg.type))

    def close(self) -> None:
        self.closed = True
        self.log.append(("close", self.name))


class ScriptedWatch:
    """A ServerWatch whose answers the test sets."""

    def __init__(self, api=None) -> None:
        self.enabled, self.alive, self.lost_at, self.next = True, True, None, None
        self.closed = False

    def check(self):
        change, self.next = self.next, None
        if change == "lost":
            self.alive, self.lost_at = False, 1.0
        elif change == "back":
            self.alive, self.lost_at = True, None
        return change

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_midi(monkeypatch):
    log: list = []
    present = {"input": {"Keys"}, "output": {"Synth"}}

    def open_input(name, callback, *, virtual=False, api=None):
        if not virtual and name not in present["input"]:
            raise midi_ports.MidiPortError(f"no MIDI input port matches {name!r}")
        return FakePort(name or midi_ports.VIRTUAL_IN, log)

    def open_output(name, *, virtual=False, api=None):
        if not virtual and name not in present["output"]:
            raise midi_ports.MidiPortError(f"no MIDI output port matches {name!r}")
        return FakePort(name or midi_ports.VIRTUAL_OUT, log)

    monkeypatch.setattr(midi_ports, "open_input", open_input)
    monkeypatch.setattr(midi_ports, "open_output", open_output)
    monkeypatch.setattr(midi_ports, "list_ports", lambda api=None: (sorted(present["input"]),
                                                                     sorted(present["output"])))
    monkeypatch.setattr(midi_ports, "ServerWatch", ScriptedWatch)
    return log, present


def test_a_virtual_keeper_drops_while_suspended_and_is_created_again(fake_midi):
    log, _present = fake_midi
    out = midi_ports.PortKeeper("output", midi_ports.VIRTUAL_OUT, api="UNIX_JACK", virtual=True)
    out.send(mido.Message("note_on", note=60))
    out.suspend()
    out.send(mido.Message("note_off", note=60))
    assert out.dropped == 1 and not out.connected
    assert out.check() is None                       # a virtual port has no device to look for
    assert out.resume() and out.connected and out.reconnects == 1
    assert [e[0] for e in log] == ["open", "send", "close", "open"]


def test_live_ports_report_the_loss_first_then_close_and_reopen_when_back(fake_midi):
    log, present = fake_midi
    released = []
    inp = midi_ports.PortKeeper("input", midi_ports.VIRTUAL_IN, lambda m: None, api="UNIX_JACK", virtual=True)
    out = midi_ports.PortKeeper("output", "Synth", api="UNIX_JACK")
    ports = midi_ports.LivePorts([inp, out], "UNIX_JACK", on_lost=lambda: released.append(True))
    assert ports.check() == [] and ports.healthy and ports.down_since is None
    ports.watch.next = "lost"
    order = []
    lines = ports.check(report=lambda line: order.append(("report", len(log))))
    assert lines == ["MIDI server (JACK) lost: nothing is sent until it is back; the session is kept"]
    assert order == [("report", 2)]                   # said before anything was closed
    assert not inp.connected and not out.connected and released == [True]
    assert not ports.healthy and ports.down_since == 1.0
    out.send(mido.Message("note_on", note=60))
    assert out.dropped == 1                           # nothing into the void
    present["output"].clear()                         # the synth is not back with the server yet
    ports.watch.next = "back"
    lines = ports.check()
    assert lines == [f"MIDI server (JACK) back: reopened {midi_ports.VIRTUAL_IN}; waiting for Synth"]
    assert inp.connected and not out.connected
    present["output"].add("Synth")
    ports._last_list = 0.0                            # a second later
    assert ports.check() == ["MIDI output Synth: reconnected"]
    assert ports.healthy and ports.down_since is None
    ports.close()
    assert ports.watch.closed


def test_a_named_device_unplugged_is_reported_and_comes_back(fake_midi):
    _log, present = fake_midi
    released = []
    inp = midi_ports.PortKeeper("input", "Keys", lambda m: None, api="UNIX_JACK")
    ports = midi_ports.LivePorts([inp], "UNIX_JACK", on_lost=lambda: released.append(True))
    present["input"].clear()
    ports._last_list = 0.0
    assert ports.check() == ["MIDI input Keys: disconnected"]
    assert released == [True]                         # its held keys will send no note-off
    assert not ports.healthy and ports.down_since is not None
    present["input"].add("Keys")
    ports._last_list = 0.0
    assert ports.check() == ["MIDI input Keys: reconnected"] and ports.healthy


def test_no_server_to_lose_off_jack():
    watch = midi_ports.ServerWatch("LINUX_ALSA")
    assert not watch.enabled and watch.alive and watch.check() is None
    watch.close()


def test_a_virtual_port_that_would_not_pass_midi_when_the_server_came_back_is_tried_again(fake_midi, monkeypatch):
    log, _present = fake_midi
    out = midi_ports.PortKeeper("output", midi_ports.VIRTUAL_OUT, api="UNIX_JACK", virtual=True)
    ports = midi_ports.LivePorts([out], "UNIX_JACK")
    ports.watch.next = "lost"
    ports.check()
    working = midi_ports.open_output

    def stalled(name, *, virtual=False, api=None):
        raise midi_ports.MidiPortError(f"MIDI output {name!r} opens on JACK but passes no MIDI (3 tries)")
    monkeypatch.setattr(midi_ports, "open_output", stalled)
    ports.watch.next = "back"
    assert ports.check() == [f"MIDI server (JACK) back: no port yet; waiting for {midi_ports.VIRTUAL_OUT}"]
    assert not ports.healthy
    monkeypatch.setattr(midi_ports, "open_output", working)
    assert ports.check() == []                        # tried again about once a second, not every look
    ports._last_list = 0.0
    assert ports.check() == [f"MIDI output {midi_ports.VIRTUAL_OUT}: reopened"]
    assert ports.healthy and out.reconnects == 1
    assert [e[0] for e in log] == ["open", "close", "open"]
