"""The Qt bridge to the engine: commands in, snapshots and events out.

The engine (copilot_app/engine) has no Qt; it owns the session (phrases,
takes, settings, the timeline) on its own thread. ``EngineBridge`` lives on
the GUI thread and only ever

* sends commands: ``LiveEngine`` methods that put a callable in the engine's
  inbox and return at once (trigger, audition, accept, discard, regenerate,
  more like this, tempo, meter, settings, a model, a style, a file's phrase,
  undo discard, the session file);
* receives immutable values: the engine's observers (passed in when the
  engine is made) emit them as signals, which Qt queues to the GUI thread.
  ``snapshot`` is the latest ``SessionSnapshot``; the window renders it.

It never reads or writes the engine's state. Nothing here blocks the GUI
thread on inference, MIDI ports or file I/O: a model file loads on a worker
thread and is handed to the engine, and so does a style (checked there
against the model's fingerprint, taken when the model loaded); a .mid phrase is read on a worker
thread; ports open on the port worker (copilot_app/ui/port_worker.py); take
files are written in the background (copilot_app/ui/take_files.py).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Callable

import mido
from PySide6.QtCore import QObject, Signal, Slot

from copilot_app.engine.clock import Clock, Meter, MonotonicClock
from copilot_app.engine.held_notes import HeldNotes
from copilot_app.engine.live import LiveEngine
from copilot_app.engine.player import ALL_NOTES_OFF, ALL_SOUND_OFF
from copilot_app.engine.ready_styles import MAX_READY_STYLES
from copilot_app.engine.session_model import SessionSnapshot, Take
from copilot_app.ui.messages import one_line, safe_emit
from copilot_app.ui.models import display_name
from copilot_app.ui.port_worker import DEVICE_WATCH_S, VIRTUAL, PortManager
from copilot_app.ui.take_files import TakeFiles

log = logging.getLogger(__name__)


def _mtime(path: str) -> float | None:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None


class ForwardingSink:
    """The MIDI sink the engine writes to; the real output can be swapped at any time.

    ``send`` runs on the Player's thread, ``set_target`` on the port worker: a
    lock keeps the swap atomic, and is held while a message goes out, so once
    ``set_target`` returns nothing is being sent to the old target any more
    (it can be closed safely). With no target the messages are dropped (the
    Player's own bookkeeping of open notes still balances).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target = None
        self.sent = 0
        self.dropped = 0  # sent while there was no output (none chosen, or its MIDI server gone)
        # What went out, for the on-screen keyboard to light up: (on, channel, pitch),
        # appended on the Player's thread, drained by the GUI's frame timer.
        self.monitor: "deque[tuple[bool, int, int]]" = deque(maxlen=512)

    def set_target(self, target) -> object:
        with self._lock:
            old, self._target = self._target, target
        return old

    @property
    def target(self):
        with self._lock:
            return self._target

    def send(self, msg: mido.Message) -> None:
        if msg.type in ("note_on", "note_off"):
            self.monitor.append((msg.type == "note_on" and msg.velocity > 0, msg.channel, msg.note))
        elif msg.type == "control_change" and msg.control in (ALL_NOTES_OFF, ALL_SOUND_OFF):
            self.monitor.append((False, msg.channel, -1))
        with self._lock:
            self.sent += 1
            if self._target is None:
                self.dropped += 1
                return
            self._target.send(msg)

    def drain_monitor(self) -> list[tuple[bool, int, int]]:
        out = []
        while True:
            try:
                out.append(self.monitor.popleft())
            except IndexError:
                return out


class EngineBridge(QObject):
    """Owns the LiveEngine and the MIDI ports (see module docstring)."""

    sessionChanged = Signal(object)     # SessionSnapshot (``snapshot`` already holds it)
    inputEvent = Signal(object)         # PlayedNote, placed on the engine's timeline
    errorOccurred = Signal(str)
    modelLoading = Signal(str)          # path
    modelLoaded = Signal(str, str)      # path, device label
    modelFailed = Signal(str)           # message
    busyChanged = Signal(bool)          # a take is being computed on the engine thread
    portsListed = Signal(list, list)    # input names, output names (from the port worker)
    inputOpened = Signal(str, bool)     # name asked for ("" for none), whether it is open
    outputOpened = Signal(str, bool)
    serverChanged = Signal(bool, str)   # the MIDI server is there or not; one line saying what happened
    deviceChanged = Signal(str, str, bool)  # "input"/"output", a chosen device port's name, whether it is there
    heldNotesChanged = Signal(object)   # HeldNotes: the keys (and pedal) the engine holds as down
    _snapshotArrived = Signal(object)   # from the engine thread
    styleLoaded = Signal(str)           # path of the style now used ("" for none)
    styleFailed = Signal(str)           # message
    _modelReady = Signal(object, str, str, int, str)  # model, path, device label, generation, fingerprint
    _modelLoadFailed = Signal(str, int)
    _styleReady = Signal(object, str, int)  # style (None: no style), path, generation
    _stylesReady = Signal(object, str)      # styles to keep ready, the model fingerprint they were checked for

    def __init__(self, clock: Clock | None = None, parent: QObject | None = None,
                 watch_interval_s: float | None = DEVICE_WATCH_S) -> None:
        super().__init__(parent)
        self.clock = clock or MonotonicClock()
        self.sink = ForwardingSink()
        self.files = TakeFiles()
        self.snapshot: SessionSnapshot | None = None  # the engine's latest, as it sent it
        self.model_path: str | None = None  # the model this bridge loaded last
        self.model_fingerprint: str | None = None  # its weights' print (model.style.model_fingerprint)
        self.style_path: str | None = None  # the style this bridge handed the engine last (None: none)
        self._style_fingerprint: str | None = None  # the model that style belongs to
        self._style_generation = 0
        self._ready_stamp: tuple | None = None  # the styles last handed to keep ready (model, paths, mtimes)
        self.device_label = ""
        self._generation = 0
        self._keyboard_held: set[int] = set()
        self._closed = False
        self.held_notes = HeldNotes()   # the engine's latest report
        self.midi_server_ok = True      # the port worker's latest report
        self.heldNotesChanged.connect(self._on_held)
        self.serverChanged.connect(self._on_server)
        self._snapshotArrived.connect(self._on_snapshot)
        self._modelReady.connect(self._on_model_ready)
        self._modelLoadFailed.connect(self._on_model_failed)
        self._styleReady.connect(self._on_style_ready)
        self._stylesReady.connect(self._on_styles_ready)
        # One engine for the window's life; models come and go inside it.
        self.engine = LiveEngine(None, self.sink, clock=self.clock,
                                 on_snapshot=lambda s: safe_emit(self._snapshotArrived, s),
                                 on_take=self.files.add,
                                 on_input=lambda n: safe_emit(self.inputEvent, n),
                                 on_error=lambda m: safe_emit(self.errorOccurred, m),
                                 on_busy=lambda b: safe_emit(self.busyChanged, b),
                                 on_held=lambda h: safe_emit(self.heldNotesChanged, h))
        # A lost MIDI server takes the input with it: the keys it held will send no note-off.
        # A chosen device port is looked for every ``watch_interval_s`` (None: never).
        self.ports = PortManager(self.sink, self.engine.midi_callback, self, on_lost=self.engine.release_held,
                                 device_watch_s=watch_interval_s)
        for name in ("portsListed", "inputOpened", "outputOpened", "errorOccurred", "serverChanged",
                     "deviceChanged"):
            getattr(self.ports, name).connect(getattr(self, name))
        self.engine.start()

    @Slot(object)
    def _on_held(self, held: HeldNotes) -> None:
        self.held_notes = held

    @Slot(bool, str)
    def _on_server(self, ok: bool, _message: str) -> None:
        self.midi_server_ok = ok

    def clear_held(self) -> None:
        """A stuck key: every key the engine holds as down goes up (and the pedal), the
        on-screen keyboard's too; ``heldNotesChanged`` answers."""
        self.release_keyboard()
        self.engine.release_held()

    @Slot(object)
    def _on_snapshot(self, snapshot: SessionSnapshot) -> None:
        if snapshot.event.kind == "session" and self.snapshot is not None:
            for view in self.snapshot.takes:  # another session: its numbers start over
                self.files.forget(view.number)
        self.snapshot = snapshot
        self.sessionChanged.emit(snapshot)

    # -- models ----------------------------------------------------------------------
    def load_model(self, path: str | None, device: str = "auto") -> None:
        """Load ``path`` (None: the bundled model) on a worker thread, then hand it to the engine."""
        self._generation += 1
        generation = self._generation
        self.modelLoading.emit(str(path or "bundled model"))

        def work() -> None:
            try:
                from copilot_app.engine.model_loader import load_model
                from copilot_app.engine.runtime_info import device_label

                from model.style import model_fingerprint

                model, _meta, real_path = load_model(path, device)
                label = device_label("cpu" if next(model.parameters()).device.type == "cpu" else "auto")
                fingerprint = model_fingerprint(model)  # here, so a style is checked without the weights
            except Exception as exc:  # one line for the status bar, never a crash
                log.exception("model load failed")
                if not self._closed:
                    safe_emit(self._modelLoadFailed, one_line(exc), generation)
                return
            if not self._closed:
                safe_emit(self._modelReady, model, str(real_path), label, generation, fingerprint)

        threading.Thread(target=work, name="copilot-model-load", daemon=True).start()

    @Slot(object, str, str, int, str)
    def _on_model_ready(self, model, path: str, label: str, generation: int, fingerprint: str) -> None:
        if generation != self._generation or self._closed:
            return  # a newer request won; this model is dropped
        self.engine.set_model(model, display_name(path))  # it drops a style of another model, saying so
        self.model_path, self.device_label, self.model_fingerprint = path, label, fingerprint
        if self._style_fingerprint is not None and self._style_fingerprint != fingerprint:
            self.style_path = self._style_fingerprint = None
            self.styleLoaded.emit("")
        self.modelLoaded.emit(path, label)

    # -- styles ----------------------------------------------------------------------
    def load_style(self, path: str | None) -> None:
        """Use the style file ``path`` (None: no style) from the next answer on: it is
        read and checked against the loaded model on a worker thread, then handed
        to the engine, which re-primes the context from it. ``styleLoaded`` or
        ``styleFailed`` (one line, e.g. a style learned for another model) answers."""
        self._style_generation += 1
        generation = self._style_generation
        fingerprint = self.model_fingerprint
        if path is None:
            self._on_style_ready(None, "", generation)
            return

        def work() -> None:
            try:
                from model.style import load_style

                if fingerprint is None:
                    raise ValueError("load a model first: a style belongs to one model")
                style = load_style(path)
                style.check_model(None, fingerprint)
                style.digest  # noqa: B018  (here, not on the engine thread: it finds the ready row by it)
            except Exception as exc:  # one line for the status bar, never a crash
                if not self._closed:
                    safe_emit(self.styleFailed, one_line(exc))
                return
            if not self._closed:
                safe_emit(self._styleReady, style, str(path), generation)

        threading.Thread(target=work, name="copilot-style-load", daemon=True).start()

    def blend_styles(self, path_a: str, path_b: str, amount: float) -> None:
        """Use the blend ``(1 - amount) x A + amount x B`` of two styles of the loaded
        model (``Style.blend``), loaded and checked on a worker thread like ``load_style``."""
        self._style_generation += 1
        generation = self._style_generation
        fingerprint = self.model_fingerprint

        def work() -> None:
            try:
                from model.style import load_style

                if fingerprint is None:
                    raise ValueError("load a model first: a style belongs to one model")
                a, b = load_style(path_a), load_style(path_b)
                a.check_model(None, fingerprint)
                b.check_model(None, fingerprint)
                blended = a.blend(b, amount)
                blended.digest  # noqa: B018  (off the engine thread, as for a style file)
            except Exception as exc:  # one line for the status bar, never a crash
                if not self._closed:
                    safe_emit(self.styleFailed, one_line(exc))
                return
            if not self._closed:
                safe_emit(self._styleReady, blended, "", generation)

        threading.Thread(target=work, name="copilot-style-blend", daemon=True).start()

    def keep_styles_ready(self, paths: list[str]) -> None:
        """Keep the styles at ``paths`` (the Style menu's, for the loaded model)
        primed beside the context, so choosing one is instant: read and checked
        on a worker thread; a file that fails is left out (choosing it says why)."""
        fingerprint = self.model_fingerprint
        if fingerprint is None:
            return
        stamp = (fingerprint, tuple((p, _mtime(p)) for p in paths))
        if stamp == self._ready_stamp:
            return  # the menu was rebuilt with the same styles: they are ready already
        self._ready_stamp = stamp

        def work() -> None:
            from model.style import StyleError, load_style

            styles = []
            for path in paths[:MAX_READY_STYLES]:
                try:
                    style = load_style(path)
                    style.check_model(None, fingerprint)
                except StyleError as exc:
                    log.info("style not kept ready: %s", exc)
                    continue
                style.digest  # noqa: B018  (computed here, off the engine thread)
                styles.append(style)
            if not self._closed:
                safe_emit(self._stylesReady, styles, fingerprint)

        threading.Thread(target=work, name="copilot-styles-ready", daemon=True).start()

    @Slot(object, str)
    def _on_styles_ready(self, styles, fingerprint: str) -> None:
        if fingerprint == self.model_fingerprint and not self._closed:
            self.engine.keep_styles_ready(styles)

    @Slot(object, str, int)
    def _on_style_ready(self, style, path: str, generation: int) -> None:
        if generation != self._style_generation or self._closed:
            return  # a newer choice won
        if style is not None and style.base_fingerprint != self.model_fingerprint:
            self.styleFailed.emit(f"{path}: the model changed while the style loaded; choose it again")
            return
        self.engine.set_style(style)
        self.style_path = path or None  # a blend has no file: no style path, the snapshot names it
        self._style_fingerprint = style.base_fingerprint if style is not None else None
        self.styleLoaded.emit(path)

    @Slot(str, int)
    def _on_model_failed(self, message: str, generation: int) -> None:
        if generation == self._generation:
            self.modelFailed.emit(message)

    def close(self) -> None:
        """Stop the engine (every note gets its note-off), then close the ports; returns at once.

        Both happen on the port worker, in that order, so the note-offs still
        reach the output; Python waits for that worker at exit.
        """
        if self._closed:
            return
        self._closed = True
        self._generation += 1
        self.release_keyboard()
        self.ports.close(before=self.engine.close)
        self.files.close()

    # -- MIDI ports ---------------------------------------------------------------
    def midi_in(self, msg: mido.Message) -> None:
        """A message as rtmidi's callback would hand it over (tests, the on-screen keyboard)."""
        self.engine.midi_callback(msg)

    def list_ports(self) -> None:
        """Look for MIDI ports off the GUI thread; ``portsListed`` answers."""
        self.ports.list_ports()

    def open_input(self, name: str | None) -> None:
        """Open a MIDI input (VIRTUAL, a name, or None for none) off the GUI thread; ``inputOpened`` answers."""
        self.ports.open_input(name)

    def open_output(self, name: str | None) -> None:
        """Open a MIDI output off the GUI thread and route playback to it; ``outputOpened`` answers."""
        self.ports.open_output(name)

    @property
    def input_name(self) -> str | None:
        return self.ports.input_name

    @property
    def output_name(self) -> str | None:
        return self.ports.output_name

    def set_output_sink(self, sink) -> None:
        """Route playback to any object with ``send(msg)`` (tests, a built-in synth)."""
        self.sink.set_target(sink)

    # -- notes from the GUI (on-screen keyboard, musical typing) ------------------------
    def keyboard_note(self, pitch: int, on: bool, velocity: int = 90) -> None:
        """A key of the on-screen keyboard: into the engine, and echoed to the output."""
        if on:
            msg = mido.Message("note_on", note=pitch, velocity=velocity)
            self._keyboard_held.add(pitch)
        else:
            if pitch not in self._keyboard_held:
                return
            msg = mido.Message("note_off", note=pitch, velocity=0)
            self._keyboard_held.discard(pitch)
        self.sink.send(msg)  # the keyboard has no sound of its own
        self.midi_in(msg)

    @property
    def keyboard_held(self) -> frozenset[int]:
        return frozenset(self._keyboard_held)

    def release_keyboard(self) -> None:
        for pitch in sorted(self._keyboard_held):
            self.keyboard_note(pitch, False)

    # -- commands (each returns at once; the engine answers with a snapshot) ----------
    def trigger(self) -> None:
        """Answer the current context (played, a file, or an accepted take) now."""
        self.engine.trigger()

    def next_variation(self, take: int | None = None) -> None:
        self.engine.next_variation(take)

    def previous_variation(self, take: int | None = None) -> None:
        self.engine.previous_variation(take)

    def audition(self, take: int, index: int) -> None:
        """Play variation ``index`` of any take (by number) from the next bar line."""
        self.engine.audition(take, index)

    def accept(self, take: int | None = None, index: int | None = None) -> None:
        """Accept a take's variation (default: the last take's auditioned one)."""
        self.engine.accept(take, index)

    def regenerate(self, take: int, variation: int, bar: int) -> None:
        """Keep variation ``variation`` of take ``take`` up to bar ``bar`` (1: none of it)
        and sample the rest again as a new take, which auditions; a take whose states
        are gone is reported as one line (``errorOccurred``)."""
        self.engine.regenerate(take, variation, bar)

    def more_like_this(self, take: int, variation: int | None = None) -> None:
        """New variations of a take's bars, sampled after hearing variation
        ``variation`` (None: the accepted, else the auditioned one), as a new take
        that auditions."""
        self.engine.more_like_this(take, variation)

    def request_snapshot(self) -> None:
        """Ask the engine for a snapshot as things are now (``sessionChanged`` answers)."""
        self.engine.publish()

    def discard(self, take: int) -> None:
        """Forget a take; if it is the one playing, it stops with its note-offs."""
        self.files.forget(take)
        self.engine.discard(take)

    def undo_discard(self) -> None:
        """Bring back the take discarded last; an "undo" snapshot names it."""
        self.engine.undo_discard()

    # -- the session on disk (the engine writes it; the window decides where) -----------
    def use_session(self, path: str | Path | None, apply_settings: bool = False) -> None:
        """The session file (restored if it is there, else a new session saved there);
        the window's own settings stay unless ``apply_settings``."""
        self.engine.use_session(None if path is None else str(path), load=True, apply_settings=apply_settings)

    def new_session(self, path: str | Path | None) -> None:
        """An empty session (take numbers from 1) saved into ``path`` from now on."""
        self.engine.new_session(None if path is None else str(path))

    def export_accepted(self, path: str | Path,
                        done: Callable[[Path | None, int, str | None], None]) -> None:
        """Every accepted take of the latest snapshot into one .mid, written (atomically)
        on a worker thread; ``done(path, tracks, error)`` is called there."""
        views = self.snapshot.takes if self.snapshot is not None else ()

        def work() -> None:
            from copilot_app.engine.take_export import write_accepted

            try:
                tracks = write_accepted(path, views)
            except Exception as exc:  # NothingToExport, WriteError: one line each
                done(None, 0, one_line(exc))
                return
            done(Path(path), tracks, None)
        # Not a daemon: an export under way is finished before Python exits.
        threading.Thread(target=work, name="copilot-export-all").start()

    def stop_playback(self) -> None:
        self.engine.stop_playback()

    def panic(self) -> None:
        """All notes off now: the keyboard's held keys, the take, the click, every channel."""
        self.release_keyboard()
        self.engine.panic()

    def update_settings(self, **changes: object) -> None:
        """Sampling/trigger settings (SessionSettings fields); the next take uses them."""
        self.engine.update_settings(**changes)

    def set_metronome(self, enabled: bool) -> None:
        self.engine.set_metronome(enabled)

    def set_tempo(self, bpm: float) -> None:
        """New internal tempo; the engine re-anchors its grid so the current beat stays put."""
        self.engine.set_tempo(float(bpm))

    def set_meter(self, meter: Meter) -> None:
        """A new meter: the engine starts a new timeline on it (same model, same takes)."""
        self.engine.set_grid(meter=meter)

    def set_clock_source(self, source: str) -> None:
        if source not in ("internal", "midi"):
            raise ValueError(f"clock source must be 'internal' or 'midi', not {source!r}")
        self.engine.set_grid(clock_source=source)

    def set_timeline(self, bpm: float, meter: Meter, source: str) -> None:
        """Tempo, meter and clock source at once (the window's saved ones at start-up)."""
        self.engine.set_grid(meter, source, bpm)

    # -- time, for the piano roll -----------------------------------------------------
    def quarters_now(self) -> float:
        """Where the engine's timeline is now, from its last snapshot (no engine state read)."""
        snap = self.snapshot
        return 0.0 if snap is None else snap.timeline.quarters_at(self.clock.now())

    # -- a phrase from a file ------------------------------------------------------------
    def continue_file(self, path: str) -> None:
        """Read ``path`` on a worker thread; the engine makes it the context and answers it."""
        def read() -> None:
            from copilot_app.engine.phrase_file import read_phrase

            try:
                phrase = read_phrase(path)
            except Exception as exc:
                safe_emit(self.errorOccurred, one_line(exc))  # MidiError names the file
                return
            if not self._closed:
                self.engine.open_phrase(phrase)

        threading.Thread(target=read, name="copilot-phrase", daemon=True).start()

    def take_file(self, take: Take, index: int) -> Path:
        """The take's .mid for a drag: written in the background already, else now."""
        return self.files.path_or_write(take, index)


__all__ = ["VIRTUAL", "EngineBridge", "ForwardingSink", "safe_emit"]
