"""The Player: sends notes at their musical time and never leaves one hanging.

A time-ordered queue (a heap) of note-on/note-off events is drained by a
scheduler thread that waits on a condition variable until the next event is
due (or the plan changes). ``pump(now)`` is the same drain without a thread,
so tests drive it from a fake clock deterministically.

Every note-on the Player sends is tracked until its note-off is sent; ``cancel``
(barge-in, stop) sends note-offs for all of them, ``panic`` also sends All
Notes Off / All Sound Off on every channel. Re-striking a pitch that is still
sounding first ends the old note, so on/off pairs on the wire always match.
"""
from __future__ import annotations

import gc
import heapq
import itertools
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import mido

from copilot_app.engine.clock import Clock, MonotonicClock

log = logging.getLogger(__name__)

ALL_SOUND_OFF = 120
ALL_NOTES_OFF = 123
SUSTAIN = 64


class MidiSink(Protocol):
    def send(self, msg: mido.Message) -> None: ...


@dataclass(frozen=True)
class PlannedNote:
    """A note to play, in seconds on the Player's clock."""

    pitch: int
    velocity: int
    start: float
    end: float
    channel: int = 0


# How long another Python thread may keep the GIL before it must hand it over.
# CPython's default is 5 ms: a Player thread woken for a due note-on could
# wait that long behind the engine thread sampling the take's other rows.
# 0.5 ms keeps that wait well inside the 2 ms jitter budget; the sampling
# thread loses a few percent (the model step itself runs without the GIL).
GIL_SWITCH_INTERVAL_S = 0.0005


def tighten_gil_switch_interval() -> None:
    """Lower the interpreter's GIL switch interval to GIL_SWITCH_INTERVAL_S (never raise it)."""
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def freeze_gc_heap() -> None:
    """Move every object alive now (the model, the vocabulary tables, Qt) out of
    the garbage collector's reach. A full collection walks all tracked objects
    with the GIL held; with a model loaded that is a pause long enough to make
    a note late (a 130 ms outlier in bench/live_bench.py). What the engine
    allocates afterwards is still collected."""
    gc.freeze()


# Heap entries: (time, order, seq, kind, note_id, note). order puts note-offs
# before note-ons at the same instant so a repeated pitch is re-struck cleanly.
_OFF, _ON = 0, 1


class Player:
    """Schedules notes onto a MIDI sink; thread-safe."""

    def __init__(self, sink: MidiSink, clock: Clock | None = None,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self._sink = sink
        self._clock = clock or MonotonicClock()
        self._on_error = on_error
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._sounding: dict[tuple[int, int], int] = {}  # (channel, pitch) -> note id
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.sent_log: list[tuple[float, mido.Message]] | None = None  # set to [] to record

    # -- planning -------------------------------------------------------
    def schedule(self, notes: Iterable[PlannedNote]) -> int:
        """Add notes to the plan; returns how many were added."""
        count = 0
        with self._cond:
            for note in notes:
                if not (0 <= note.pitch <= 127 and note.end > note.start):
                    continue
                note_id = next(self._ids)
                heapq.heappush(self._heap, (note.start, _ON, next(self._seq), note_id, note))
                heapq.heappush(self._heap, (note.end, _OFF, next(self._seq), note_id, note))
                count += 1
            self._cond.notify()
        return count

    def replace(self, notes: Iterable[PlannedNote]) -> int:
        """Swap the plan while playing: end what sounds, then play ``notes``."""
        with self._cond:
            self._clear_locked()
            return self.schedule(notes)

    def cancel(self) -> None:
        """Drop the plan and send note-offs for every note this Player started."""
        with self._cond:
            self._clear_locked()
            self._cond.notify()

    def panic(self) -> None:
        """cancel(), then silence every channel (sustain up, notes off, sound off)."""
        with self._cond:
            self._clear_locked()
            for channel in range(16):
                for control in (SUSTAIN, ALL_NOTES_OFF, ALL_SOUND_OFF):
                    self._send(mido.Message("control_change", channel=channel, control=control, value=0))
            self._cond.notify()

    @property
    def open_notes(self) -> set[tuple[int, int]]:
        """(channel, pitch) of the notes sounding now."""
        with self._cond:
            return set(self._sounding)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    # -- sending --------------------------------------------------------
    def pump(self, now: float | None = None) -> int:
        """Send every event due at ``now``; returns how many messages went out."""
        now = self._clock.now() if now is None else now
        sent = 0
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                _, kind, _, note_id, note = heapq.heappop(self._heap)
                sent += self._emit_locked(kind, note_id, note)
        return sent

    def _emit_locked(self, kind: int, note_id: int, note: PlannedNote) -> int:
        key = (note.channel, note.pitch)
        if kind == _OFF:
            if self._sounding.get(key) != note_id:
                return 0  # already ended by a re-strike or a cancel
            del self._sounding[key]
            self._send(mido.Message("note_off", channel=note.channel, note=note.pitch, velocity=0))
            return 1
        sent = 0
        if key in self._sounding:
            self._send(mido.Message("note_off", channel=note.channel, note=note.pitch, velocity=0))
            sent += 1
        self._sounding[key] = note_id
        velocity = min(127, max(1, note.velocity))
        self._send(mido.Message("note_on", channel=note.channel, note=note.pitch, velocity=velocity))
        return sent + 1

    def _clear_locked(self) -> None:
        self._heap.clear()
        for channel, pitch in sorted(self._sounding):
            self._send(mido.Message("note_off", channel=channel, note=pitch, velocity=0))
        self._sounding.clear()

    def _send(self, msg: mido.Message) -> None:
        if self.sent_log is not None:
            self.sent_log.append((self._clock.now(), msg))
        try:
            self._sink.send(msg)
        except Exception as exc:  # a vanished port must not kill the scheduler
            log.warning("MIDI output failed: %s", exc)
            if self._on_error is not None:
                self._on_error(exc)

    # -- thread ---------------------------------------------------------
    def start(self) -> None:
        """Run the scheduler thread (real clock); idempotent."""
        if self._thread is not None:
            return
        tighten_gil_switch_interval()
        freeze_gc_heap()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="copilot-player", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - self._clock.now()
                if delay > 0:
                    self._cond.wait(timeout=delay)
                    continue
                _, kind, _, note_id, note = heapq.heappop(self._heap)
                self._emit_locked(kind, note_id, note)

    def close(self) -> None:
        """Stop the thread and panic: nothing is left sounding."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.panic()

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
