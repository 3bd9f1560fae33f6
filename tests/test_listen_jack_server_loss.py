"""`listen --virtual` when the JACK server dies under it and comes back (issue 21).

On a JACK server of the test's own (tests/jack_private.py): play a phrase, get
an answer; kill -9 the server: one line within a second, no crash; start it
again: the virtual ports come back and the next phrase is answered. Exit
codes say what happened (3: stopped while the server was gone, 4: gave up).
"""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import pytest

from tests.helpers import app_virtual_ports, play_notes
from tests.jack_private import PrivateJack
from tests.test_engine_continue import checkpoint  # noqa: F401  (fixture)

pytestmark = [pytest.mark.jack]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def private_jack(tmp_path, monkeypatch):
    server = PrivateJack(tmp_path)
    for key, value in server.env.items():
        if key in ("JACK_DEFAULT_SERVER", "COPILOT_MIDI_API", "JACK_NO_START_SERVER"):
            monkeypatch.setenv(key, value)
    server.start()
    yield server
    server.stop()


class Listen:
    """`main.py listen` in a subprocess, its stdout lines on a queue."""

    def __init__(self, server: PrivateJack, checkpoint: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "main.py"), "listen", "--virtual", "--model", str(checkpoint),
             "--tempo", "240", "--trigger-beats", "2", "--bars", "1", "--seed", "3", *extra],
            cwd=REPO, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, None), daemon=True).start()

    def _read(self, stream, q) -> None:
        for line in stream:
            (q.put(line.rstrip("\n")) if q is not None else self.err.append(line))

    def wait_line(self, fragment: str, timeout: float) -> float:
        """Seconds until a stdout line holding ``fragment`` arrived."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if fragment in line:
                return time.monotonic() - t0
        raise AssertionError(f"no line with {fragment!r} in {timeout} s: {self.seen}; "
                             f"rc={self.proc.poll()} stderr={''.join(self.err)[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def play_and_hear(timeout: float = 20.0) -> list[mido.Message]:
    """Play four quarter notes into the app's In; what its Out sends until an answer starts, then 1 s more."""
    received: "queue.Queue[mido.Message]" = queue.Queue()
    got: list[mido.Message] = []
    with app_virtual_ports(received) as keys:
        time.sleep(0.3)
        play_notes(keys, time.sleep, 0.22, 0.03)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(m.type == "note_on" and m.velocity for m in got):
            try:
                got.append(received.get(timeout=0.1))
            except queue.Empty:
                pass
        time.sleep(1.5)  # the rest of the one-bar answer (1 s at 240 BPM)
        while not received.empty():
            got.append(received.get())
    return got


def test_listen_survives_a_killed_jack_server_and_answers_after_its_restart(private_jack, checkpoint):  # noqa: F811
    app = Listen(private_jack, checkpoint)
    try:
        app.wait_line("listening on", 60)
        first = play_and_hear()
        assert any(m.type == "note_on" and m.velocity for m in first), app.err
        app.wait_line("take 1:", 10)
        private_jack.kill()                                   # kill -9 under the running app
        assert app.wait_line("MIDI server (JACK) lost", 5) < 1.0
        time.sleep(1.0)
        assert app.proc.poll() is None                        # still running, no crash
        private_jack.start()
        app.wait_line("MIDI server (JACK) back", 15)
        # Its tries to reach the server while it was away were not echoed by libjack (5 lines each).
        assert "Cannot connect to server" not in "".join(app.err), "".join(app.err)[-1500:]
        second = play_and_hear()
        assert any(m.type == "note_on" and m.velocity for m in second), app.err
        app.wait_line("take 2:", 10)                          # the session (take numbers) was kept
        assert app.stop() == 0
    finally:
        app.stop(signal.SIGKILL)
    assert "Traceback" not in "".join(app.err)


def test_listen_exit_codes_after_a_server_loss(private_jack, checkpoint):  # noqa: F811
    app = Listen(private_jack, checkpoint)
    try:
        app.wait_line("listening on", 60)
        private_jack.kill()
        app.wait_line("MIDI server (JACK) lost", 5)
        assert app.stop() == 3                                # stopped while the server was gone
    finally:
        app.stop(signal.SIGKILL)
    private_jack.start()
    app = Listen(private_jack, checkpoint, "--give-up", "1")
    try:
        app.wait_line("listening on", 60)
        private_jack.kill()
        app.wait_line("MIDI server (JACK) lost", 5)
        assert app.proc.wait(timeout=10) == 4                 # gave up after 1 s
        assert "giving up" in "".join(app.err)
    finally:
        app.stop(signal.SIGKILL)
    assert "Traceback" not in "".join(app.err)
