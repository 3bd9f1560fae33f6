"""A JACK server (dummy driver) of a test's own, to kill and restart under a running app.

The session's shared server (conftest.py's ``jack_server``) must stay up for
the other tests; a test that pulls the server from under the app starts its
own, with its own name, and points its clients (and its subprocesses) at it
through ``JACK_DEFAULT_SERVER``.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

_numbers = itertools.count(1)


class PrivateJack:
    def __init__(self, log_dir: Path) -> None:
        jackd = shutil.which("jackd")
        if jackd is None:
            pytest.skip("jackd is not installed (apt install jackd2)")
        self.jackd = jackd
        self.name = f"copilot-private-{os.getpid()}-{next(_numbers)}"
        self.log = log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, COPILOT_MIDI_API="UNIX_JACK",
                    JACK_NO_START_SERVER="1", PYTHONUNBUFFERED="1")

    def _clean(self) -> None:
        # What a killed server leaves in /dev/shm (semaphores, its socket) wedges the next one of that name.
        for path in glob.glob(f"/dev/shm/jack*{self.name}*"):
            try:
                os.unlink(path)
            except OSError:
                pass

    def start(self, timeout: float = 15.0) -> None:
        self._clean()
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([self.jackd, "-n", self.name, "-S", "--no-realtime",
                                          "-d", "dummy", "-r", "48000", "-p", "256"],
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        probe = [os.sys.executable, "-c",
                 "import rtmidi,sys; m=rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name='probe'); m.delete()"]
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.skip(f"could not start jackd -d dummy: {self.log.read_text(errors='replace')[-300:]}")
            if subprocess.run(probe, env=self.env, capture_output=True, timeout=10).returncode == 0:
                return
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self._clean()
