"""The Qt bridge to the engine: slots that talk to LiveEngine, signals for the GUI.

The engine (copilot_app/engine) has no Qt and calls its observers on its own
thread. ``EngineBridge`` lives on the GUI thread; the observers only *emit*
signals, which Qt queues to the GUI thread (the receivers are GUI objects), so
no widget is ever touched from the engine thread.

Nothing here blocks the GUI thread on inference, MIDI ports or file I/O:

* loading (or switching) a model and closing the old engine happen on a
  short-lived worker thread; the finished engine is handed to the GUI thread
  by a queued signal;
* MIDI ports are listed, opened and closed on their own worker thread
  (``PortManager``, copilot_app/ui/ports.py), answering with signals;
* each take's .mid files are written in the background as soon as the take is
  complete (``TakeFiles``, copilot_app/ui/take_files.py), so a drag starts from
  a file that exists;
* taking a phrase from a .mid file reads it on a worker thread and samples the
  continuation on the engine thread (``LiveEngine.call``), which owns the model;
* every other command (audition any take, accept, discard, tempo, meter and
  clock source) is a ``LiveEngine`` method that only puts a callable in the
  engine's inbox.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import asdict, replace
from pathlib import Path

import mido
from PySide6.QtCore import QObject, Signal, Slot

from copilot_app.engine.clock import Clock, InternalGrid, Meter, MidiClockGrid, MonotonicClock
from copilot_app.engine.midi_input import Routed
from copilot_app.engine.player import ALL_NOTES_OFF, ALL_SOUND_OFF
from copilot_app.engine.session import SessionSettings, Take
from copilot_app.ui.ports import VIRTUAL, PortManager, all_notes_off
from copilot_app.ui.take_files import TakeFiles

log = logging.getLogger(__name__)

__all__ = ["VIRTUAL", "EngineBridge", "ForwardingSink", "safe_emit"]


class ForwardingSink:
    """The MIDI sink the engine writes to; the real output can be swapped at any time.

    ``send`` runs on the Player's thread, ``set_target`` on the GUI thread: a
    lock keeps the swap atomic. With no target the messages are dropped (the
    Player's own bookkeeping of open notes still balances).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target = None
        self.sent = 0
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
        with self._lock:
            target = self._target
            self.sent += 1
        if msg.type in ("note_on", "note_off"):
            self.monitor.append((msg.type == "note_on" and msg.velocity > 0, msg.channel, msg.note))
        elif msg.type == "control_change" and msg.control in (ALL_NOTES_OFF, ALL_SOUND_OFF):
            self.monitor.append((False, msg.channel, -1))
        if target is not None:
            target.send(msg)

    def drain_monitor(self) -> list[tuple[bool, int, int]]:
        out = []
        while True:
            try:
                out.append(self.monitor.popleft())
            except IndexError:
                return out


class EngineBridge(QObject):
    """Owns the LiveEngine, its model and the MIDI ports (see module docstring)."""

    takeReady = Signal(object)          # Take (a new take, or the same one after audition/accept)
    inputEvent = Signal(object)         # Routed note_on/note_off/pedal/... from the engine thread
    errorOccurred = Signal(str)
    modelLoading = Signal(str)          # path
    modelLoaded = Signal(str, str)      # path, device label
    modelFailed = Signal(str)           # message
    phraseReady = Signal(object, object)  # list of (start_q, end_q, pitch) of the file, Take
    busyChanged = Signal(bool)          # a take is being computed on the engine thread
    timelineReset = Signal()            # a new grid (meter, clock source) is in force: time starts over
    portsListed = Signal(list, list)    # input names, output names (from the port worker)
    inputOpened = Signal(str, bool)     # name asked for ("" for none), whether it is open
    outputOpened = Signal(str, bool)
    _engineBuilt = Signal(object, object, str, str, int)  # engine, model, path, label, generation
    _engineFailed = Signal(str, int)

    def __init__(self, clock: Clock | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.clock = clock or MonotonicClock()
        self.sink = ForwardingSink()
        self.engine = None              # LiveEngine once a model is loaded
        self.model = None
        self.model_path: str | None = None
        self.device_label = ""
        self.settings = SessionSettings()
        self.bpm = 120.0
        self.meter = Meter()
        self.clock_source = "internal"  # or "midi"
        self.metronome = False
        self.ports = PortManager(self.sink, self.midi_in, self)
        for name in ("portsListed", "inputOpened", "outputOpened", "errorOccurred"):
            getattr(self.ports, name).connect(getattr(self, name))
        self.files = TakeFiles()
        self.engine_tag = "0"           # names the folder of the current engine's take files
        self._generation = 0
        self._keyboard_held: set[int] = set()
        self._closed = False
        self._engineBuilt.connect(self._on_engine_built)
        self._engineFailed.connect(self._on_engine_failed)

    # -- model and engine lifecycle ---------------------------------------------------
    def load_model(self, path: str | None, device: str = "auto") -> None:
        """Load ``path`` (None: the bundled model) and switch to it; returns at once."""
        self._generation += 1
        generation = self._generation
        self.modelLoading.emit(str(path or "bundled model"))

        def work() -> None:
            try:
                from copilot_app.engine.model_loader import load_model
                from copilot_app.engine.runtime_info import device_label

                model, _meta, real_path = load_model(path, device)
                label = device_label("cpu" if next(model.parameters()).device.type == "cpu" else "auto")
                engine = self._make_engine(model, generation)
                engine.start()
            except Exception as exc:  # one line for the status bar, never a crash
                log.exception("model load failed")
                self._fail_later(_one_line(exc), generation)
                return
            self._hand_over(engine, model, str(real_path), label, generation)

        threading.Thread(target=work, name="copilot-model-load", daemon=True).start()

    def _hand_over(self, engine, model, path: str, label: str, generation: int) -> None:
        """Worker thread: give the new engine to the GUI thread, or close it if nobody is left."""
        if self._closed or generation != self._generation:
            engine.close()
            return
        try:
            self._engineBuilt.emit(engine, model, path, label, generation)
        except RuntimeError:  # the bridge was deleted while the model loaded (window closed)
            engine.close()

    def _fail_later(self, message: str, generation: int) -> None:
        if self._closed:
            return
        try:
            self._engineFailed.emit(message, generation)
        except RuntimeError:  # the bridge is gone
            pass

    def _make_engine(self, model, generation: int):
        from copilot_app.engine.live import LiveEngine

        if self.clock_source == "midi":
            grid = MidiClockGrid(meter=self.meter, fallback_bpm=self.bpm)
        else:
            grid = InternalGrid(self.bpm, self.meter, origin=self.clock.now())
        engine = LiveEngine(model, self.sink, grid, replace(self.settings), self.clock,
                            on_input=self._on_input, on_error=self.errorOccurred.emit,
                            on_change=self.takeReady.emit)
        engine.on_take = lambda take: self._take_done(engine.session, take, str(generation))
        engine.metronome.enabled = self.metronome
        return engine

    def _take_done(self, session, take: Take, tag: str) -> None:
        """Engine thread: a take is complete; write its files in the background, tell the GUI."""
        grid = session.grid
        self.files.add(take, grid.meter, grid.bpm, tag)
        self.takeReady.emit(take)

    def _on_input(self, routed: Routed) -> None:  # engine thread
        self.inputEvent.emit(routed)

    @Slot(object, object, str, str, int)
    def _on_engine_built(self, engine, model, path: str, label: str, generation: int) -> None:
        if generation != self._generation or self._closed:
            _close_later(engine)  # a newer request won; this one is stale
            return
        old, self.engine = self.engine, engine
        self.engine_tag = str(generation)
        self.model, self.model_path, self.device_label = model, path, label
        if old is not None:
            _close_later(old)
        self.modelLoaded.emit(path, label)

    @Slot(str, int)
    def _on_engine_failed(self, message: str, generation: int) -> None:
        if generation == self._generation:
            self.modelFailed.emit(message)

    def close(self) -> None:
        """Stop the engine (every note gets its note-off), then close the ports; returns at once.

        Both happen on the port worker, in that order, so the note-offs still
        reach the output; Python waits for that worker at exit.
        """
        self._closed = True
        self._generation += 1
        self.release_keyboard()
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.session.cancel_take.set()  # a take being sampled ends now
        self.ports.close(before=engine.close if engine is not None else None)
        self.files.close()

    # -- MIDI ports ---------------------------------------------------------------
    def midi_in(self, msg: mido.Message) -> None:
        """rtmidi's callback: hand the message to whichever engine is current."""
        engine = self.engine
        if engine is not None:
            engine.midi_callback(msg)

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

    # -- commands ---------------------------------------------------------------------
    def trigger(self) -> None:
        if self._need_engine("continue"):
            # The inbox is first in, first out: busy on, the take, busy off.
            engine = self.engine
            engine.call(lambda s: self.busyChanged.emit(True))
            engine.trigger()
            engine.call(lambda s: self.busyChanged.emit(False))

    def next_variation(self) -> None:
        if self._need_engine("next take"):
            self.engine.next_variation()    # the engine reports the change (takeReady)

    def previous_variation(self) -> None:
        if self._need_engine("previous take"):
            self.engine.previous_variation()

    def audition(self, take: Take, index: int) -> None:
        """Play variation ``index`` of any take (not only the last) from the next bar line."""
        if self._need_engine("audition"):
            self.engine.audition(take, index)

    def accept(self, take: Take | None = None, index: int | None = None) -> None:
        """Accept a take's variation (default: the last take's current one)."""
        if self._need_engine("accept"):
            self.engine.accept(take, index)

    def discard(self, take: Take) -> None:
        """Forget a take; if it is the one playing, it stops with its note-offs."""
        self.files.forget(take)
        if self.engine is not None:
            self.engine.discard(take)

    def stop_playback(self) -> None:
        if self.engine is not None:
            self.engine.stop_playback()

    def panic(self) -> None:
        """All notes off now: the keyboard's held keys, the take, the click, every channel."""
        self.release_keyboard()
        if self.engine is not None:
            self.engine.panic()
            self.engine.metronome.player.cancel()
            # A take being sampled right now keeps scheduling notes until it ends:
            # cancel again as soon as the engine thread is free.
            self.engine.call(lambda s: s.player.cancel())
        else:
            self._all_off()

    def _all_off(self) -> None:
        try:
            all_notes_off(self.sink.send)
        except Exception as exc:
            self.errorOccurred.emit(f"MIDI out: {_one_line(exc)}")

    # -- settings ---------------------------------------------------------------------
    def update_settings(self, **changes: object) -> None:
        """Sampling/trigger settings (SessionSettings fields); the next take uses them."""
        unknown = set(changes) - set(asdict(self.settings))
        if unknown:
            raise TypeError(f"unknown session settings: {sorted(unknown)}")
        self.settings = replace(self.settings, **changes)
        if self.engine is not None:
            self.engine.update_settings(**changes)

    def set_metronome(self, enabled: bool) -> None:
        self.metronome = enabled
        if self.engine is not None:
            self.engine.set_metronome(enabled)

    def set_tempo(self, bpm: float) -> None:
        """New internal tempo; the engine re-anchors its grid so the current beat stays put."""
        self.bpm = float(bpm)
        if self.engine is not None:
            self.engine.set_tempo(self.bpm)

    def set_meter(self, meter: Meter) -> None:
        """A new meter: the engine starts a new timeline on it (same model, same takes)."""
        if meter != self.meter:
            self.meter = meter
            self._new_grid()

    def set_clock_source(self, source: str) -> None:
        if source not in ("internal", "midi"):
            raise ValueError(f"clock source must be 'internal' or 'midi', not {source!r}")
        if source != self.clock_source:
            self.clock_source = source
            self._new_grid()

    def _new_grid(self) -> None:
        engine = self.engine
        if engine is None:
            return  # the next engine is built with them
        engine.set_grid(self.meter, self.clock_source, self.bpm)
        # After the grid (the inbox is first in, first out): the roll starts a new time line.
        engine.call(lambda _s: safe_emit(self.timelineReset))

    # -- time, for the piano roll -----------------------------------------------------
    def quarters_now(self) -> float:
        engine = self.engine
        if engine is None:
            return 0.0
        return engine.session.quarters_at(self.clock.now())

    def quarters_at(self, t: float) -> float:
        engine = self.engine
        return 0.0 if engine is None else engine.session.quarters_at(t)

    @property
    def bar_quarters(self) -> float:
        return self.meter.numerator * self.meter.quarters_per_beat()

    @property
    def tempo_now(self) -> float:
        engine = self.engine
        return engine.session.grid.bpm if engine is not None else self.bpm

    # -- a phrase from a file ------------------------------------------------------------
    def continue_file(self, path: str) -> None:
        """Read ``path`` on a worker thread, continue it on the engine thread, emit phraseReady."""
        if not self._need_engine("open phrase"):
            return
        engine, tag = self.engine, self.engine_tag
        settings = replace(self.settings)

        def read() -> None:
            from copilot_app.ui.phrase import continue_phrase, read_phrase

            try:
                phrase = read_phrase(path)
            except Exception as exc:
                safe_emit(self.errorOccurred, _one_line(exc))
                return
            if self.engine is not engine:  # switched or closed meanwhile
                return

            def run(s) -> None:
                self.busyChanged.emit(True)
                try:
                    notes, take = continue_phrase(s, phrase, settings)
                except Exception as exc:
                    self.errorOccurred.emit(f"{Path(path).name}: {_one_line(exc)}")
                    return
                finally:
                    self.busyChanged.emit(False)
                self.phraseReady.emit(notes, take)
                self._take_done(s, take, tag)
            engine.call(run)

        threading.Thread(target=read, name="copilot-phrase", daemon=True).start()

    def _need_engine(self, what: str) -> bool:
        if self.engine is None:
            self.errorOccurred.emit(f"cannot {what}: no model loaded (Model menu)")
            return False
        return True


def safe_emit(signal, *args) -> None:
    """Emit from a worker thread; a receiver deleted meanwhile (window closed) is not an error."""
    try:
        signal.emit(*args)
    except RuntimeError:
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _close_later(engine) -> None:
    """Close an engine off the GUI thread (its thread may be finishing a take)."""
    threading.Thread(target=engine.close, name="copilot-engine-close", daemon=True).start()
