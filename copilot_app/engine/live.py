"""The engine thread: MIDI in -> LiveSession -> Player -> MIDI out.

One thread owns the session (the model state, encoder and takes); everything
else talks to it through its inbox: the rtmidi callback puts stamped messages
there, the GUI or CLI put commands (trigger, next variation, settings...).
The Player has its own scheduler thread.

Observers are given to the constructor and called on the engine thread; they
must not block (the Qt bridge turns them into queued signals), and they only
ever receive immutable values: ``on_snapshot`` a ``SessionSnapshot`` after
every change (with the event that caused it), ``on_take`` each new ``Take``,
``on_input`` each ``PlayedNote`` placed on the timeline, ``on_busy`` around
each answer being sampled, ``on_error`` one line, ``on_held`` the keys (and
pedal) the session holds as down, a ``HeldNotes``, whenever that changes (a
key held past the bound turns "stuck"; see held_notes.py).

The engine can run without a model (``model=None``, e.g. the GUI before its
first model has loaded); ``set_model`` brings one in, or swaps it, without
losing the takes, their numbers or the timeline; ``set_style`` changes the
state every context starts from (model/style.py) on the same model.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import asdict, replace
from typing import Callable, Sequence

import mido
import torch

from copilot_app.engine.clock import Clock, InternalGrid, Meter, MidiClockGrid, MonotonicClock
from copilot_app.engine.held_notes import HeldNotes
from copilot_app.engine.metronome import Metronome
from copilot_app.engine.midi_input import Routed, Stamped, route
from copilot_app.engine.player import MidiSink, Player
from copilot_app.engine.phrase_file import FilePhrase
from copilot_app.engine.session import LiveSession, NoModelError, SessionSettings
from copilot_app.engine.session_model import PlayedNote, SessionEvent, SessionSnapshot, Take
from copilot_app.engine.session_store import SessionStore
from model.style import Style

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often held notes are committed and the silence trigger checked
MIDI_CLOCK_REPORT_S = 0.5  # how often the timeline is re-sent while a DAW's clock drives it
# Changes after which the session is saved (session_store.py): not "tempo" (the DAW's clock).
SAVED_EVENTS = frozenset({"take", "audition", "accept", "discard", "undo", "phrase", "timeline", "model",
                          "settings", "stop"})


class LiveEngine:
    """Runs a LiveSession on its own thread (see module docstring)."""

    def __init__(self, model: torch.nn.Module | None, sink: MidiSink,
                 grid: InternalGrid | MidiClockGrid | None = None,
                 settings: SessionSettings | None = None, clock: Clock | None = None, *,
                 model_name: str = "",
                 on_take: Callable[[Take], None] | None = None,
                 on_input: Callable[[PlayedNote], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 on_snapshot: Callable[[SessionSnapshot], None] | None = None,
                 on_busy: Callable[[bool], None] | None = None,
                 on_held: Callable[[HeldNotes], None] | None = None) -> None:
        self.clock = clock or MonotonicClock()
        self.on_take, self.on_input, self.on_error = on_take, on_input, on_error
        self.on_snapshot, self.on_busy = on_snapshot, on_busy
        self.on_held = on_held
        self._held_reported = HeldNotes()
        self.player = Player(sink, self.clock, on_error=lambda e: self._error(f"MIDI out: {e}"))
        # Counts note/pedal messages as they arrive, so a take being prepared
        # during a pause stops the moment the player plays again.
        self._musical_inputs = 0
        self.session = LiveSession(model, self.player, grid or InternalGrid(origin=self.clock.now()),
                                   self.clock, settings, model_name=model_name,
                                   input_counter=lambda: self._musical_inputs)
        # The click has its own Player so cancelling a take never stops it.
        self.metronome = Metronome(Player(sink, self.clock), self.session.grid)
        self._inbox: "queue.Queue[Stamped | Callable[[], None] | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._last_timeline_sent = 0.0
        self._clock_running = False  # whether a DAW's MIDI clock ran at the last report

    # -- called from any thread ---------------------------------------------
    def midi_callback(self, msg: mido.Message) -> None:
        """For rtmidi's thread: stamp and enqueue, nothing else."""
        self._inbox.put(Stamped(self.clock.now(), msg))
        if msg.type in ("note_on", "note_off", "control_change"):
            self._musical_inputs += 1

    def _call(self, fn: Callable[[LiveSession], object]) -> None:
        """Run ``fn(session)`` on the engine thread."""
        self._inbox.put(lambda: fn(self.session))

    def trigger(self) -> None:
        """Answer the current context now (played, opened from a file, or accepted)."""
        self._call(lambda s: self._answer(s.trigger))

    def open_phrase(self, phrase: FilePhrase) -> None:
        """Make a file (read off this thread) the context, in its tempo and meter, and answer it."""
        self.session.cancel_take.set()  # a take being sampled on the old timeline ends now

        def apply(s: LiveSession) -> None:
            for warning in phrase.warnings:  # e.g. a 0 us tempo read as the default
                self._error(warning)  # names the file already
            s.open_phrase(phrase, self.clock.now())
            self._new_metronome()
            self._publish(SessionEvent("phrase"))
            self._answer(s.trigger)
        self._call(apply)

    def set_model(self, model: torch.nn.Module | None, name: str = "") -> None:
        """Another model (loaded off this thread); takes, numbers and the timeline stay.
        A style learned for another model is dropped, with one line to ``on_error``."""
        def apply(s: LiveSession) -> None:
            dropped = s.set_model(model, name)
            if dropped:
                self._error(dropped)
            self._publish(SessionEvent("model"))
        self._call(apply)

    def set_style(self, style: Style | None) -> None:
        """Start every context from ``style``'s state (None: no style), loaded and
        checked against the model off this thread (``model.style.load_style_for``);
        the next answer is in the new style (a style kept ready takes over the
        whole context at once, any other re-primes the recent bars)."""
        self.session.cancel_take.set()  # a take being sampled from the old state ends now

        def apply(s: LiveSession) -> None:
            s.set_style(style)
            self._publish(SessionEvent("style"))
        self._call(apply)

    def keep_styles_ready(self, styles: Sequence[Style]) -> None:
        """Keep these styles of the loaded model primed beside the context (the
        Style menu's), so switching to one is a copy (engine/ready_styles.py)."""
        self._call(lambda s: s.keep_styles_ready(styles))

    def audition(self, take: Take | int | None, index: int) -> None:
        """Play variation ``index`` of any take (None: the last) from the next bar line."""
        self._call(lambda s: self._changed("audition", s.audition(index, take=take)))

    def next_variation(self, take: Take | int | None = None) -> None:
        self._call(lambda s: self._changed("audition", s.next_variation(take=take)))

    def previous_variation(self, take: Take | int | None = None) -> None:
        self._call(lambda s: self._changed("audition", s.previous_variation(take=take)))

    def accept(self, take: Take | int | None = None, index: int | None = None) -> None:
        """Accept a take (None: the last) with variation ``index`` (None: the one auditioned last)."""
        self._call(lambda s: self._changed("accept", s.accept(take, index)))

    def regenerate(self, take: Take | int | None = None, variation: int | None = None, bar: int = 2) -> None:
        """Keep a take's variation (None: the one auditioned last) up to bar ``bar``
        and sample the rest again as a new take, which then auditions."""
        self._call(lambda s: self._answer_or_say(lambda: s.regenerate(take, variation, bar)))

    def more_like_this(self, take: Take | int | None = None, variation: int | None = None) -> None:
        """New variations of a take's bars, sampled after hearing one of them
        (None: the accepted one, else the one auditioned last)."""
        self._call(lambda s: self._answer_or_say(lambda: s.more_like_this(take, variation)))

    def discard(self, take: Take | int) -> None:
        """Forget a take; if it is playing, it stops with its note-offs."""
        self._call(lambda s: self._changed("discard", s.discard(take)))

    def undo_discard(self) -> None:
        """Bring back the take discarded last (an "undo" snapshot names it)."""
        self._call(lambda s: self._changed("undo", s.undo_discard()))

    # -- the session on disk (session_store.py) ------------------------------------
    def use_session(self, path: str | os.PathLike | None, load: bool = True, apply_settings: bool = True) -> None:
        """Save the session into ``path`` as it changes (None: nowhere). With ``load``
        the file is the session: restored if it is there, else a new one; a bad
        file is kept aside and reported through ``on_error`` (one line)."""
        def apply(s: LiveSession) -> None:
            store = SessionStore(path, on_error=self._error) if path is not None else None
            message = s.use_store(store, load=load, apply_settings=apply_settings)
            if message:
                self._error(message)
            self._publish(SessionEvent("session"))
        self._call(apply)

    def new_session(self, path: str | os.PathLike | None) -> None:
        """An empty session (numbers from 1), saved into ``path`` from now on."""
        def apply(s: LiveSession) -> None:
            s.use_store(None, load=False)
            s.new_session(self.clock.now())
            s.use_store(SessionStore(path, on_error=self._error) if path is not None else None, load=False)
            self._publish(SessionEvent("session"))
        self._call(apply)

    def stop_playback(self) -> None:
        self.session.cancel_take.set()  # ends a take still being sampled

        def apply(s: LiveSession) -> None:
            s.stop()
            self._publish(SessionEvent("stop"))
        self._call(apply)

    def set_tempo(self, bpm: float) -> None:
        """New internal tempo from the moment the engine applies it; the beat stays put."""
        def apply(s: LiveSession) -> None:
            s.set_tempo(bpm, self.clock.now())
            self._new_metronome()  # clicks planned ahead at the old tempo are dropped
            self._publish(SessionEvent("tempo"))
        self._call(apply)

    def set_grid(self, meter: Meter | None = None, clock_source: str | None = None,
                 bpm: float | None = None) -> None:
        """A new timeline: ``meter`` on the internal clock or on the DAW's MIDI clock.

        None keeps the current meter, clock source or tempo. The grid is made
        on the engine thread, so an internal grid's bar 1 starts when the
        change applies, not when it was asked for. The phrase context starts
        over (see ``LiveSession.set_grid``); the model, the takes and the
        threads stay.
        """
        if clock_source not in (None, "internal", "midi"):
            raise ValueError(f"clock source must be 'internal' or 'midi', not {clock_source!r}")
        # A take being sampled on the old grid ends now; its notes would land on the wrong bars.
        self.session.cancel_take.set()

        def apply(s: LiveSession) -> None:
            old = s.grid
            source = clock_source or ("midi" if isinstance(old, MidiClockGrid) else "internal")
            new_meter = meter or old.meter
            tempo = float(bpm) if bpm is not None else (
                old.fallback_bpm if isinstance(old, MidiClockGrid) else old.bpm)
            grid: InternalGrid | MidiClockGrid
            if source == "midi":
                grid = MidiClockGrid(meter=new_meter, fallback_bpm=tempo)
            else:
                grid = InternalGrid(tempo, new_meter, origin=self.clock.now())
            s.set_grid(grid)
            self._new_metronome()
            self._publish(SessionEvent("timeline"))
        self._call(apply)

    def update_settings(self, **changes: object) -> None:
        """Change sampling/trigger settings; the next take uses them.

        Unknown names raise here, in the caller's thread.
        """
        unknown = set(changes) - set(asdict(SessionSettings()))
        if unknown:
            raise TypeError(f"unknown session settings: {sorted(unknown)}")
        replace(SessionSettings(), **changes).steering()  # a bad key or range: ValueError here

        def apply(s: LiveSession) -> None:
            s.settings = replace(s.settings, **changes)
            self._publish(SessionEvent("settings"))
        self._call(apply)

    def set_metronome(self, enabled: bool) -> None:
        def apply(_s: LiveSession) -> None:
            self.metronome.enabled = enabled
            if not enabled:
                self.metronome.player.cancel()
            self._publish(SessionEvent("settings"))
        self._call(apply)

    def release_held(self) -> None:
        """Every key the session holds as down goes up, and the sustain pedal
        (the GUI's Clear for a stuck note; a lost MIDI input)."""
        self._call(lambda s: s.release_held(self.clock.now()))

    def publish(self) -> None:
        """Ask for a snapshot of the session as it is (``on_snapshot`` answers)."""
        self._call(lambda _s: self._publish(SessionEvent("start")))

    def panic(self) -> None:
        """All notes off now, from the calling thread (the Player is thread-safe).

        A take still being sampled on the engine thread stops scheduling
        notes, and whatever it scheduled meanwhile is cancelled as soon as
        the engine thread is free.
        """
        self.session.cancel_take.set()
        self.player.panic()
        self.metronome.player.cancel()
        self._call(lambda s: s.player.cancel())

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
        self.session.cancel_take.set()  # a take being sampled ends now
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout=5.0)
            self._thread = None
        self.session.close_store()  # the session's last state on disk
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
        self._publish(SessionEvent("start"))
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
                    self._report_input(routed)
                    self._take(self.session.handle(routed))
                elif callable(item):
                    item()
                self._take(self.session.poll())
                self._report_held()
                self.metronome.tick(self.clock.now())
                self._follow_midi_clock()
            except NoModelError as exc:
                self._error(str(exc))
            except Exception as exc:  # a bad take must not kill the live loop
                log.exception("engine error")
                self.player.panic()
                self._error(f"engine: {exc}")

    def _report_held(self) -> None:
        if self.on_held is None:
            return
        held = self.session.held_notes(self.clock.now())
        if held != self._held_reported:
            self._held_reported = held
            self.on_held(held)

    def _report_input(self, routed: Routed) -> None:
        if self.on_input is not None and routed.kind in ("note_on", "note_off"):
            self.on_input(PlayedNote(routed.kind == "note_on", routed.pitch, self.session.quarters_at(routed.time)))

    def _follow_midi_clock(self) -> None:
        """Under MIDI clock the GUI's timeline is re-sent while the DAW's clock moves
        (twice a second, and at once when it starts or stops)."""
        grid = self.session.grid
        if not isinstance(grid, MidiClockGrid) or self.on_snapshot is None:
            return
        now = self.clock.now()
        if grid.running != self._clock_running or (
                grid.running and now - self._last_timeline_sent >= MIDI_CLOCK_REPORT_S):
            self._clock_running = grid.running
            self._publish(SessionEvent("tempo"))

    def _new_metronome(self) -> None:
        """Engine thread: clicks on the session's current grid, from the next beat."""
        old = self.metronome
        old.player.cancel()
        self.metronome = Metronome(old.player, self.session.grid, enabled=old.enabled,
                                   velocity=old.velocity)

    def _answer(self, make: Callable[[], Take]) -> None:
        """Engine thread: one take, with busy reported around it."""
        if self.on_busy is not None:
            self.on_busy(True)
        try:
            self._take(make())
        finally:
            if self.on_busy is not None:
                self.on_busy(False)

    def _answer_or_say(self, make: Callable[[], Take]) -> None:
        """A take asked for by a command that may not apply (no such bar, the
        take's states are gone): one line to the user instead of an engine error."""
        try:
            self._answer(make)
        except ValueError as exc:
            self._error(str(exc))

    def _changed(self, kind: str, take: Take | None) -> None:
        if take is not None:
            self._publish(SessionEvent(kind, take.number, self.session.library.auditioned(take)
                                       if kind != "discard" else None))

    def _take(self, take: Take | None) -> None:
        if take is None:
            return
        if self.on_take is not None:
            self.on_take(take)
        self._publish(SessionEvent("take", take.number, 0))

    def _publish(self, event: SessionEvent) -> None:
        if event.kind in SAVED_EVENTS:
            self.session.save()  # handed to the store's writer thread; returns at once
        if self.on_snapshot is not None:
            self._last_timeline_sent = self.clock.now()
            self.on_snapshot(self.session.snapshot(event, self.metronome.enabled))

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
