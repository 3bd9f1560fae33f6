"""A JACK server (dummy driver) of a test's own, to kill and restart under a running app.

The session's shared server (conftest.py's ``jack_server``) must stay up for
the other tests; a test that pulls the server from under the app starts its
own, with its own name, and points its clients (and its subprocesses) at it
through ``JACK_DEFAULT_SERVER``.
"""
from __future__ import annotations

import ctypes
import glob
import mmap
import struct
import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

_numbers = itertools.count(1)

# libjack's shared registry of servers (jack2 shm.c): 8 slots, a slot is only
# reclaimed by a server of the same name. A server killed with SIGKILL keeps
# its slot, so every test that kills a uniquely named server would leak one
# and after eight no JACK server could start on the machine. ``reclaim`` frees
# the slots of dead servers the way libjack frees a same-named one: under the
# registry's SysV semaphore, only where the slot's pid no longer exists.
REGISTRY = "/dev/shm/jack-shm-registry"
_REGISTRY_SEM_KEY = 0x282929
_HEADER = struct.Struct("<IiiIII")   # magic, protocol, type, size, hdr_len, entry_len
_SERVER_SLOT = 4 + 257 + 3           # pid_t pid; char name[257]; padding
_MAX_SERVERS = 8


class _SemBuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short), ("sem_flg", ctypes.c_short)]


def reclaim_dead_servers() -> int:
    """Free the registry slots of JACK servers whose process is gone; how many were freed."""
    if not os.path.exists(REGISTRY):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    semid = libc.semget(_REGISTRY_SEM_KEY, 0, 0)
    undo = 0x1000  # SEM_UNDO: released if this process dies holding it
    if semid >= 0 and libc.semop(semid, ctypes.byref(_SemBuf(0, -1, undo)), 1) != 0:
        return 0
    freed = 0
    try:
        with open(REGISTRY, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mem:
            magic, *_rest = _HEADER.unpack_from(mem, 0)
            if magic != 0x4A41434B:  # "JACK"
                return 0
            for i in range(_MAX_SERVERS):
                offset = _HEADER.size + i * _SERVER_SLOT
                (pid,) = struct.unpack_from("<i", mem, offset)
                if pid > 0 and not os.path.exists(f"/proc/{pid}"):
                    mem[offset:offset + _SERVER_SLOT] = bytes(_SERVER_SLOT)
                    freed += 1
    finally:
        if semid >= 0:
            libc.semop(semid, ctypes.byref(_SemBuf(0, 1, undo)), 1)
    return freed


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
        reclaim_dead_servers()
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
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # A server waiting on a client that was killed can sit on SIGTERM: end it.
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self._clean()
        reclaim_dead_servers()
