"""The engine thread: MIDI in -> LiveSession -> Player -> MIDI out.

One thread owns the session (the model state, encoder and takes); everything
else talks to it through its inbox: the rtmidi callback puts stamped messages
there, the GUI or CLI put commands (trigger, next variation, settings...).
The Player has its own scheduler thread. Observers are called on the engine
thread and must not block (the Qt bridge turns them into queued signals):
``on_take`` for each new take, ``on_change`` for a take auditioned or
accepted later, ``on_input`` for each routed message, ``on_error``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import Callable

import mido
import torch

from copilot_app.engine.clock import Clock, InternalGrid, Meter, MidiClockGrid, MonotonicClock
from copilot_app.engine.metronome import Metronome
from copilot_app.engine.midi_input import Routed, Stamped, route
from copilot_app.engine.player import MidiSink, Player
from copilot_app.engine.session import LiveSession, SessionSettings, Take

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often held notes are committed and the silence trigger checked


class LiveEngine:
    """Runs a LiveSession on its own thread (see module docstring)."""

    def __init__(self, model: torch.nn.Module, sink: MidiSink,
                 grid: InternalGrid | MidiClockGrid | None = None,
                 settings: SessionSettings | None = None, clock: Clock | None = None,
                 on_take: Callable[[Take], None] | None = None,
                 on_input: Callable[[Routed], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 on_change: Callable[[Take], None] | None = None) -> None:
        self.clock = clock or MonotonicClock()
        self.player = Player(sink, self.clock, on_error=lambda e: self._error(f"MIDI out: {e}"))
        self.session = LiveSession(model, self.player, grid or InternalGrid(origin=self.clock.now()),
                                   self.clock, settings)
        # The click has its own Player so cancelling a take never stops it.
        self.metronome = Metronome(Player(sink, self.clock), self.session.grid)
        self.on_take, self.on_input, self.on_error = on_take, on_input, on_error
        self.on_change = on_change
        self._inbox: "queue.Queue[Stamped | Callable[[], None] | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        # Counts note/pedal messages as they arrive, so a take being prepared
        # during a pause stops the moment the player plays again.
        self._musical_inputs = 0
        self.session.input_counter = lambda: self._musical_inputs

    # -- called from any thread ---------------------------------------------
    def midi_callback(self, msg: mido.Message) -> None:
        """For rtmidi's thread: stamp and enqueue, nothing else."""
        self._inbox.put(Stamped(self.clock.now(), msg))
        if msg.type in ("note_on", "note_off", "control_change"):
            self._musical_inputs += 1

    def call(self, fn: Callable[[LiveSession], object]) -> None:
        """Run ``fn(session)`` on the engine thread."""
        self._inbox.put(lambda: fn(self.session))

    def trigger(self) -> None:
        self.call(lambda s: self._take(s.trigger()))

    def audition(self, take: Take | int | None, index: int) -> None:
        """Play variation ``index`` of any take (None: the last) from the next bar line."""
        self.call(lambda s: self._changed(s.audition(index, take=take)))

    def next_variation(self, take: Take | int | None = None) -> None:
        self.call(lambda s: self._changed(s.next_variation(take=take)))

    def previous_variation(self, take: Take | int | None = None) -> None:
        self.call(lambda s: self._changed(s.previous_variation(take=take)))

    def accept(self, take: Take | int | None = None, index: int | None = None) -> None:
        """Keep a take (None: the last) with variation ``index`` (None: its current one)."""
        self.call(lambda s: self._changed(s.accept(take, index)))

    def discard(self, take: Take | int) -> None:
        """Forget a take; if it is playing, it stops with its note-offs.

        Not reported to ``on_change``: the caller already knows it is gone.
        """
        self.call(lambda s: s.discard(take))

    def stop_playback(self) -> None:
        self.session.cancel_take.set()  # ends a take still being sampled
        self.call(lambda s: s.stop())

    def set_tempo(self, bpm: float) -> None:
        """New internal tempo from the moment the engine applies it; the beat stays put."""
        def apply(s: LiveSession) -> None:
            s.set_tempo(bpm, self.clock.now())
            self._new_metronome()  # clicks planned ahead at the old tempo are dropped
        self.call(apply)

    def set_grid(self, meter: Meter, clock_source: str = "internal", bpm: float | None = None) -> None:
        """A new timeline: ``meter`` on the internal clock or on the DAW's MIDI clock.

        The grid is made on the engine thread, so an internal grid's bar 1
        starts when the change applies, not when it was asked for. The
        phrase context starts over (see ``LiveSession.set_grid``); the model,
        the takes and the threads stay.
        """
        if clock_source not in ("internal", "midi"):
            raise ValueError(f"clock source must be 'internal' or 'midi', not {clock_source!r}")
        # A take being sampled on the old grid ends now; its notes would land on the wrong bars.
        self.session.cancel_take.set()

        def apply(s: LiveSession) -> None:
            tempo = float(bpm) if bpm is not None else s.grid.bpm
            grid: InternalGrid | MidiClockGrid
            if clock_source == "midi":
                grid = MidiClockGrid(meter=meter, fallback_bpm=tempo)
            else:
                grid = InternalGrid(tempo, meter, origin=self.clock.now())
            s.set_grid(grid)
            self._new_metronome()
        self.call(apply)

    def update_settings(self, **changes: object) -> None:
        """Change sampling/trigger settings; the next take uses them."""
        def apply(s: LiveSession) -> None:
            s.settings = replace(s.settings, **changes)
        self.call(apply)

    def set_metronome(self, enabled: bool) -> None:
        def apply(_s: LiveSession) -> None:
            self.metronome.enabled = enabled
            if not enabled:
                self.metronome.player.cancel()
        self.call(apply)

    def panic(self) -> None:
        """All notes off now, from the calling thread (the Player is thread-safe).

        A take still being sampled on the engine thread stops scheduling notes.
        """
        self.session.cancel_take.set()
        self.player.panic()
        self.metronome.player.cancel()

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self.player.start()
        self.metronome.player.start()
        self._thread = threading.Thread(target=self._run, name="copilot-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop both threads; every note the app started gets its note-off."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout=5.0)
            self._thread = None
        self.metronome.player.close()
        self.player.close()

    def __enter__(self) -> "LiveEngine":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- engine thread ------------------------------------------------------
    def _run(self) -> None:
        torch.set_num_threads(1)
        while True:
            try:
                item = self._inbox.get(timeout=POLL_S)
            except queue.Empty:
                item = ()
            if item is None:
                return
            try:
                if isinstance(item, Stamped):
                    routed = route(item)
                    if self.on_input is not None and routed.kind != "ignored":
                        self.on_input(routed)
                    self._take(self.session.handle(routed))
                elif callable(item):
                    item()
                self._take(self.session.poll())
                self.metronome.tick(self.clock.now())
            except Exception as exc:  # a bad take must not kill the live loop
                log.exception("engine error")
                self.player.panic()
                self._error(f"engine: {exc}")

    def _new_metronome(self) -> None:
        """Engine thread: clicks on the session's current grid, from the next beat."""
        old = self.metronome
        old.player.cancel()
        self.metronome = Metronome(old.player, self.session.grid, enabled=old.enabled,
                                   velocity=old.velocity)

    def _changed(self, take: Take | None) -> None:
        if take is not None and self.on_change is not None:
            self.on_change(take)

    def _take(self, take: Take | None) -> None:
        if take is None:
            return
        if self.on_take is not None:
            self.on_take(take)

    def _error(self, message: str) -> None:
        if self.on_error is not None:
            self.on_error(message)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (tests, CLI)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
