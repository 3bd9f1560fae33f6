"""A JACK audio client that records other clients' output ports, frame-stamped.

Used by bench/synth_latency.py and tests/test_synth_jack.py to hear what the
built-in piano plays. Each JACK cycle's buffers are copied with the cycle's
first frame (``last_frame_time``), so a sound's onset is known in JACK frames
and can be set against ``frame_time`` read when a note was sent.

The process callback is Python (JACK-Client): while recording, no thread may
hold the GIL and wait for the JACK server (python-rtmidi opening a client
does); the callers record only around FluidSynth, which never holds it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections import deque

import jack
import numpy as np


class JackRecorder:
    """Records ``sources`` (JACK port names, e.g. the synth's left/right) into memory."""

    def __init__(self, sources: list[str], name: str = "copilot-recorder") -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.rate = self.client.samplerate
        self.period = self.client.blocksize
        self._ins = [self.client.inports.register(f"in_{i}") for i in range(len(sources))]
        self._blocks: deque[tuple[int, float, np.ndarray]] = deque()
        self._recording = threading.Event()

        @self.client.set_process_callback
        def process(frames: int) -> None:
            if self._recording.is_set():
                now = time.monotonic()
                first = self.client.last_frame_time
                self._blocks.append((first, now, np.stack([p.get_array().copy() for p in self._ins])))

        self.client.activate()
        for src, dst in zip(sources, self._ins):
            self.client.connect(src, dst)
        self._recording.set()

    def now_frame(self) -> int:
        """JACK's estimate of the current frame (for stamping a note when it is sent)."""
        return self.client.frame_time

    def wait_frames(self, frames: int) -> None:
        """Sleep until JACK's clock has moved ``frames`` on (the dummy driver may run slower than real time)."""
        target = self.client.frame_time + frames
        while self.client.frame_time < target:
            time.sleep(0.002)

    def take(self) -> "Recording":
        """What was recorded so far (cleared here)."""
        blocks = []
        while self._blocks:
            blocks.append(self._blocks.popleft())
        return Recording(blocks, self.rate)

    def playback_latency(self) -> int:
        """The system playback ports' latency in frames (the time from the graph to the speaker)."""
        ports = self.client.get_ports(is_audio=True, is_input=True, is_physical=True)
        return max((_latency_range(p, playback=True)[1] for p in ports), default=0)

    def close(self) -> None:
        self._recording.clear()
        self.client.deactivate()
        self.client.close()

    def __enter__(self) -> "JackRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Recording:
    """Recorded cycles as one mono peak signal (max |sample| over the sources).

    ``time_at(i)``: when sample ``i`` was in the graph, on ``time.monotonic``'s
    clock: the moment its cycle's process callback ran (JACK renders a cycle
    when its first frame is "now"; the callback runs after the synth's, so
    this errs late), plus ``i``'s offset in the cycle.
    """

    def __init__(self, blocks: list[tuple[int, float, np.ndarray]], rate: int) -> None:
        self.rate = rate
        self.first_frame = blocks[0][0] if blocks else 0
        length = (blocks[-1][0] + blocks[-1][2].shape[1] - self.first_frame) if blocks else 0
        self.signal = np.zeros(length, dtype=np.float32)
        self._starts = np.array([b[0] - self.first_frame for b in blocks], dtype=np.int64)
        self._times = np.array([b[1] for b in blocks], dtype=np.float64)
        for start, _t, data in blocks:
            offset = start - self.first_frame
            self.signal[offset:offset + data.shape[1]] = np.abs(data).max(axis=0)

    def index_at(self, t: float) -> int:
        """The first sample whose cycle ran at or after monotonic time ``t``."""
        k = int(np.searchsorted(self._times, t))
        return int(self._starts[k]) if k < len(self._starts) else len(self.signal)

    def time_at(self, i: int) -> float:
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return float(self._times[k] + (i - self._starts[k]) / self.rate)

    def peak(self, t0: float, t1: float) -> float:
        """Loudest sample whose cycle ran between monotonic times ``t0`` and ``t1``."""
        a, b = self.index_at(t0), self.index_at(t1)
        return float(self.signal[a:b].max()) if b > a else 0.0


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


def _latency_range(port: jack.Port, playback: bool) -> tuple[int, int]:
    """jack_port_get_latency_range (JACK-Client does not wrap it): (min, max) frames."""
    lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
    lib.jack_port_get_latency_range.restype = None
    address = int(jack._ffi.cast("uintptr_t", port._ptr))
    r = _Range()
    lib.jack_port_get_latency_range(address, 1 if playback else 0, ctypes.byref(r))  # JackPlaybackLatency = 1
    return r.min, r.max


def synth_ports(client_name: str, timeout: float = 5.0) -> list[str]:
    """The audio output ports of the JACK client ``client_name`` (waits for them to appear)."""
    probe = jack.Client("copilot-port-probe", no_start_server=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            names = [p.name for p in probe.get_ports(f"^{client_name}:", is_audio=True, is_output=True)]
            if names or time.monotonic() > deadline:
                return names
            time.sleep(0.05)
    finally:
        probe.close()


def onset(signal: np.ndarray, threshold: float = 1e-3, start: int = 0) -> int | None:
    """Index of the first sample at or after ``start`` above ``threshold`` (-60 dBFS), or None."""
    hits = np.flatnonzero(signal[start:] > threshold)
    return int(hits[0]) + start if hits.size else None
