"""Helpers shared by several test modules."""
from __future__ import annotations

import queue
import time
from contextlib import contextmanager

import torch

from model import RWKV7, RWKVConfig


def perturbed_model(seed: int = 0, scale: float = 0.1, **cfg: object) -> RWKV7:
    """A model whose every weight is randomised: RWKV-LM's init zeroes the
    output projections, which would make parity tests unable to fail."""
    torch.manual_seed(seed)
    model = RWKV7(RWKVConfig(**cfg))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ||a - b|| / ||b|| in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def wait_port(kind: int, fragment: str, timeout: float = 30.0) -> str:
    """The first input (kind 0) or output (kind 1) port whose name holds ``fragment``.

    Polls through one long-lived rtmidi client: list_ports() opens and closes
    two JACK clients per call, and that churn while another process registers
    its own clients could stall a synchronous JACK server for seconds.
    """
    import rtmidi

    from copilot_app.engine import midi_ports

    api_name = midi_ports.choose_api()
    api = getattr(rtmidi, f"API_{api_name}") if api_name else rtmidi.API_UNSPECIFIED
    probe = (rtmidi.MidiIn if kind == 0 else rtmidi.MidiOut)(api, name="copilot-test-probe")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [n for n in probe.get_ports() if fragment in n]
            if hits:
                return hits[0]
            time.sleep(0.1)
        names = probe.get_ports()
    finally:
        probe.delete()
    raise AssertionError(f"{fragment!r} never appeared: {names}")


def start_listen(checkpoint, *extra: str, env: dict | None = None):
    """`main.py listen --virtual` in a subprocess on JACK, answering 1 bar at 240 BPM
    after 2 beats of silence (seeded): the live app as a user starts it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = dict(env or os.environ, COPILOT_MIDI_API="UNIX_JACK", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(repo / "main.py"), "listen", "--virtual", "--model", str(checkpoint),
         "--tempo", "240", "--trigger-beats", "2", "--bars", "1", "--seed", "3", *extra],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


ARPEGGIO = (60, 64, 67, 72)  # the phrase the live tests play: C E G C, one at a time


@contextmanager
def app_virtual_ports(received: "queue.Queue"):
    """Wait for the app's virtual In/Out, listen to its Out into ``received``
    and yield a port that plays into its In (the keyboard)."""
    from copilot_app.engine import midi_ports

    app_out = wait_port(0, midi_ports.VIRTUAL_OUT)
    wait_port(1, midi_ports.VIRTUAL_IN)
    with midi_ports.open_input(app_out, received.put), midi_ports.open_output(midi_ports.VIRTUAL_IN) as keys:
        yield keys


def play_notes(keys, wait, hold_s: float, gap_s: float, pitches=ARPEGGIO) -> None:
    """Play ``pitches`` one after another; ``wait(seconds)`` is time.sleep or a Qt-friendly wait."""
    import mido

    for pitch in pitches:
        keys.send(mido.Message("note_on", note=pitch, velocity=96))
        wait(hold_s)
        keys.send(mido.Message("note_off", note=pitch))
        if gap_s:
            wait(gap_s)


def drain_heard(received: "queue.Queue", got: list) -> bool:
    """Move what arrived into ``got``; True once it holds a sounding note-on."""
    while not received.empty():
        got.append(received.get())
    return any(m.type == "note_on" and m.velocity > 0 for m in got)
