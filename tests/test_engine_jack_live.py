"""The live loop on real JACK MIDI ports: `listen --virtual` as a user runs it.

A test client plays a phrase into "Composer Copilot In" and listens on
"Composer Copilot Out": a continuation must come back, and once the process
is stopped every note-on it sent must have had its note-off.
"""
from __future__ import annotations

import queue
import signal
import time

import mido
import pytest

from copilot_app.engine import midi_ports
from tests.test_engine_continue import checkpoint  # noqa: F401  (fixture)
from tests.helpers import start_listen, wait_port
from tests.test_engine_player import balance

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]




def test_listen_answers_a_phrase_on_jack_ports(checkpoint):  # noqa: F811
    proc = start_listen(checkpoint)
    received: "queue.Queue[mido.Message]" = queue.Queue()
    try:
        app_out = wait_port(0, midi_ports.VIRTUAL_OUT)
        wait_port(1, midi_ports.VIRTUAL_IN)
        with midi_ports.open_input(app_out, received.put), \
                midi_ports.open_output(midi_ports.VIRTUAL_IN) as keys:
            time.sleep(0.3)
            for pitch in (60, 64, 67, 72):  # four quarter notes at 240 BPM
                keys.send(mido.Message("note_on", note=pitch, velocity=96))
                time.sleep(0.22)
                keys.send(mido.Message("note_off", note=pitch))
                time.sleep(0.03)
            got: list[mido.Message] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(m.type == "note_on" for m in got):
                try:
                    got.append(received.get(timeout=0.1))
                except queue.Empty:
                    pass
            assert any(m.type == "note_on" and m.velocity > 0 for m in got), proc.stderr
            proc.send_signal(signal.SIGTERM)  # stop mid-take: note-offs must still come
            proc.wait(timeout=20)
            time.sleep(0.3)
            while not received.empty():
                got.append(received.get())
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "take 1:" in out
    assert balance(got) == {}
    assert {(m.channel, m.control) for m in got if m.type == "control_change"} >= {(c, 123) for c in range(16)}
