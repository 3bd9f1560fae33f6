"""Whether a MIDI port just opened on JACK really passes MIDI.

libjack keeps, per process, one table of the other clients' wake-up futexes,
indexed by the client number the server hands out. When some client closes
(another app, a port listing, a readiness probe) just as one of ours opens,
the server can give ours the number just freed before our process has been
told of the close: our new client then waits on the departed client's futex
and never runs. Its port is listed and looks open, but nothing passes, and on
a synchronous server the whole graph stops with it. It shows most after a
server restart, when every client reconnects at once (the JACK restart test
met it about one run in ten on a loaded machine).

So a port opened on JACK is checked with a probe, a 9-byte sysex under the
non-commercial manufacturer id, sent through it by a client of our own; the
opener closes and reopens a port whose probe does not arrive (``OPEN_TRIES``).
Inputs are checked by sending into them, outputs by listening to them while
nothing else is connected: an output for a device is made unconnected,
checked, and only then connected to the device (so the probe never reaches it).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable

import rtmidi

log = logging.getLogger(__name__)

PROBE_PREFIX = (0xF0, 0x7D, 0x43, 0x43)  # sysex, non-commercial id, "CC"
PROBE_LEN = 9
PROBE_TIMEOUT_S = 1.0  # a healthy graph answers within a few periods (~5 ms each)
OPEN_TRIES = 3
CHECK_CLIENT = "Composer Copilot check"


def new_probe() -> tuple[int, ...]:
    """A probe message with a random nonce (so two apps' probes never mix)."""
    return PROBE_PREFIX + tuple(b & 0x7F for b in os.urandom(4)) + (0xF7,)


def is_probe(data) -> bool:
    """Whether raw MIDI bytes are a probe (anyone's): never handed on as music."""
    return len(data) == PROBE_LEN and tuple(data[:4]) == PROBE_PREFIX and data[-1] == 0xF7


def our_ports(names: list[str], client: str, port: str) -> list[int]:
    """Indexes of ``client:port`` in a JACK port list, JACK's "-NN" suffixes on the
    client name included (a second client of the same name is renamed)."""
    hits = []
    for i, full in enumerate(names):
        head, sep, tail = full.partition(":")
        if sep and tail == port and (head == client or (head.startswith(client + "-")
                                                      and head[len(client) + 1:].isdigit())):
            hits.append(i)
    return hits


def _probe_each(probe_client, client: str, port: str,
                try_one: Callable[[object, tuple[int, ...]], bool]) -> str | None:
    """Connect ``probe_client`` (an rtmidi MidiIn or MidiOut of our own) to each
    ``client:port`` in turn (another instance's may share the name) and let
    ``try_one(probe_client, probe)`` say whether a fresh probe got through; the
    full JACK name of the port it got through, or None."""
    try:
        names = probe_client.get_ports()
        targets = our_ports(names, client, port)
        if not targets:
            log.debug("port check: %s:%s not listed", client, port)
        for index in targets:
            probe_client.open_port(index)
            try:
                if try_one(probe_client, new_probe()):
                    return names[index]
            finally:
                probe_client.close_port()
        return None
    finally:
        probe_client.delete()


def input_passes(api_id: int, client: str, port: str,
                 wait_probe: Callable[[tuple[int, ...], float], bool]) -> str | None:
    """Send a probe into ``client:port``; ``wait_probe(probe, timeout)`` says whether it
    arrived. The port's full JACK name when it did, else None."""
    def try_one(out, probe: tuple[int, ...]) -> bool:
        out.send_message(list(probe))
        return wait_probe(probe, PROBE_TIMEOUT_S)
    return _probe_each(rtmidi.MidiOut(api_id, name=CHECK_CLIENT), client, port, try_one)


def output_passes(api_id: int, client: str, port: str, send: Callable[[tuple[int, ...]], None]) -> str | None:
    """Listen to ``client:port`` and ``send`` a probe through it: the port's full JACK
    name when the probe arrived, else None."""
    def try_one(listener, probe: tuple[int, ...]) -> bool:
        send(probe)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while time.monotonic() < deadline:
            event = listener.get_message()
            if event is None:
                time.sleep(0.002)
            elif tuple(event[0]) == probe:
                return True
        return False
    listener = rtmidi.MidiIn(api_id, name=CHECK_CLIENT)
    listener.ignore_types(sysex=False, timing=True, active_sense=True)
    return _probe_each(listener, client, port, try_one)
