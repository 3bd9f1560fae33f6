"""MIDI ports for the window: listed, opened and closed off the GUI thread.

Opening or closing a port can take long: python-rtmidi talks to ALSA or a
JACK server (a busy JACK server answers in its own time), and closing an
input joins its polling thread (``midi_ports.RtInput``). So every port
operation runs on one worker thread of its own, in the order asked (open A
then open B never race), and the results come back as signals, which Qt
queues to the GUI thread. Not the engine thread: the engine is replaced when
the model changes, may not exist yet, and must not stall MIDI input while a
port opens.

The same worker watches the MIDI server (``midi_ports.ServerWatch``, looked
at four times a second from a timer): when the JACK server dies, playback is
dropped at once (never sent into the void), the input is closed and
``serverChanged(False, ...)`` says so; when a server answers again the ports
the user chose open again (virtual ones are created again) and
``serverChanged(True, ...)`` follows their ``inputOpened``/``outputOpened``.
A chosen port that is not back yet is tried again once a second.

A named device port (a keyboard, a synth: not our virtual ports, not the
built-in piano) can also vanish while the server stays up. Every
``device_watch_s`` (0.6 s: with the worker's 0.25 s tick a loss shows
within a second; None: not watched) the worker lists the ports and looks
for the chosen ones: when one is gone ``deviceChanged(kind, name,
False)`` says so first, then the output is taken from the sink (nothing is
sent to it) and closed, or the input is closed (the keys it held are
released); the choice is kept, and when a port of that name is listed again
it is opened again and ``deviceChanged(kind, name, True)`` follows.

The output may also be the built-in piano (``BUILTIN``: FluidSynth, see
copilot_app/engine/synth_output.py), opened here like a port. MIDI thru:
what arrives on the input port also goes to the output, from the input's
own thread (no queue in between), on by default for the built-in piano and
a setting for the other outputs; the notes it passed on are ended when the
input closes or thru is turned off.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import mido
from PySide6.QtCore import QObject, QTimer, Signal

from copilot_app.engine.player import ALL_NOTES_OFF, ALL_SOUND_OFF, SUSTAIN
from copilot_app.engine.synth_output import BUILTIN
from copilot_app.ui.messages import one_line

log = logging.getLogger(__name__)

VIRTUAL = "virtual"  # port name given to open_* for the app's own virtual port
WATCH_MS = 250       # how often the worker looks at the MIDI server
RETRY_S = 1.0        # how often a chosen port that is not back yet is tried again
DEVICE_WATCH_S = 0.6  # how often the chosen named ports are looked for (None: never)
# What MIDI thru passes from the input to the output (not clock, sysex, or song position).
THRU_TYPES = frozenset({"note_on", "note_off", "control_change", "pitchwheel", "aftertouch", "polytouch",
                        "program_change"})


def all_notes_off(send: Callable[[mido.Message], None]) -> None:
    """Sustain up, all notes off and all sound off on every channel."""
    for channel in range(16):
        for control in (SUSTAIN, ALL_NOTES_OFF, ALL_SOUND_OFF):
            send(mido.Message("control_change", channel=channel, control=control, value=0))


class PortManager(QObject):
    """The input port and the output behind the engine's sink (see module docstring).

    ``input_port`` and the sink's target are changed only on the worker thread.
    """

    portsListed = Signal(list, list)  # input names, output names
    inputOpened = Signal(str, bool)   # the name asked for ("" for none), whether it is open
    outputOpened = Signal(str, bool)
    errorOccurred = Signal(str)
    serverChanged = Signal(bool, str)  # whether the MIDI server is there; one line saying what happened
    deviceChanged = Signal(str, str, bool)  # "input"/"output", the chosen port's name, whether it is there

    def __init__(self, sink, midi_in: Callable[[mido.Message], None], parent: QObject | None = None,
                 on_lost: Callable[[], None] | None = None, watch: bool = True,
                 device_watch_s: float | None = DEVICE_WATCH_S) -> None:
        super().__init__(parent)
        self.sink = sink                # ForwardingSink: ``set_target`` swaps the output atomically
        self.midi_in = midi_in          # rtmidi's callback (it only enqueues)
        self.input_port = None
        self.input_name: str | None = None
        self.output_name: str | None = None
        # MIDI thru for the built-in piano / for any other output; ``thru`` is the one in force.
        self.thru_builtin = True
        self.thru_external = False
        self.thru = False
        self._thru_lock = threading.Lock()
        self._thru_held: set[tuple[int, int]] = set()  # (channel, note) passed on and not yet ended
        # Not a daemon: Python joins these workers at exit, so ports close cleanly.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copilot-ports")
        self._last: Future | None = None
        # The server watch (worker thread only) and the ports to bring back with the server.
        self.on_lost = on_lost          # e.g. the engine releases held keys: their note-offs cannot come
        self.server_alive = True
        self._server = None
        self._want_in: str | None = None
        self._want_out: str | None = None
        self._missing: set[str] = set()  # "input"/"output": chosen, not open again since the server is back
        self._dead: list = []            # outputs of a dead server (see _server_lost)
        self._kept: list = []            # the built-in piano of a dead server: never closed
        self._last_retry = 0.0
        # Named device ports (worker thread only): kind -> the name chosen and opened; kinds now gone.
        self.device_watch_s = device_watch_s
        self._watched: dict[str, str] = {}
        self._gone: set[str] = set()
        self._last_device = time.monotonic()
        self._watch_queued = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.watch)
        if watch:
            self._timer.start(WATCH_MS)

    # -- called on the GUI thread; each returns at once ------------------------------
    def watch(self) -> None:
        """Look at the MIDI server on the worker (the timer calls this; one look queued at a time)."""
        if self._watch_queued:
            return
        self._watch_queued = True
        if self._submit(self._watch, track=False) is None:
            self._watch_queued = False

    def list_ports(self) -> None:
        """Look for ports; ``portsListed`` (or ``errorOccurred``) answers."""
        self._submit(self._list)

    def open_input(self, name: str | None) -> None:
        """Close the current input, open ``name`` (VIRTUAL, a port name, or None for none)."""
        self._submit(lambda: self._swap_input(name))

    def open_output(self, name: str | None) -> None:
        """Open ``name`` (VIRTUAL, a port name, or None for none) and route playback to it."""
        self._submit(lambda: self._swap_output(name))

    def set_thru(self, builtin: bool | None = None, external: bool | None = None) -> None:
        """MIDI thru for the built-in piano and/or the other outputs (None: unchanged)."""
        self._submit(lambda: self._set_thru(builtin, external))

    def close(self, before: Callable[[], None] | None = None) -> Future:
        """Run ``before`` (e.g. closing the engine, whose note-offs need the output), then close both ports.

        Returns the job's future; nothing waits on it on the GUI thread.
        """
        def work() -> None:
            if before is not None:
                try:
                    before()
                except Exception:
                    log.exception("closing before the ports")
            self._close_input()
            self._update_thru(None)
            old = self.sink.set_target(None)
            _close_port(old)
            self.output_name = None
            if self._server is not None:
                self._server.close()
        self._timer.stop()
        future = self._submit(work)
        self._worker.shutdown(wait=False)  # the queued jobs still run
        return future

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the jobs asked so far (tests and shutdown, never the running GUI)."""
        last = self._last
        if last is None:
            return True
        try:
            last.result(timeout)
        except TimeoutError:
            return False
        except Exception:
            pass
        return True

    def _submit(self, fn: Callable[[], None], track: bool = True) -> Future | None:
        def guarded() -> None:
            try:
                fn()
            except Exception as exc:  # a port job must never die silently
                log.exception("MIDI port job")
                self._emit("errorOccurred", f"MIDI ports: {one_line(exc)}")
        try:
            future = self._worker.submit(guarded)
        except RuntimeError:  # closed: the window is going away
            return None
        if track:  # the server watch is not a job anyone waits for
            self._last = future
        return future

    # -- worker thread -----------------------------------------------------------
    def _list(self) -> None:
        from copilot_app.engine.midi_ports import list_ports

        try:
            inputs, outputs = list_ports()
        except Exception as exc:
            self._emit("errorOccurred", f"MIDI ports: {one_line(exc)}")
            # No MIDI system (no ALSA sequencer, no JACK): the menus are still
            # answered, so the saved output (the built-in piano needs no MIDI) opens.
            inputs, outputs = [], []
        self._emit("portsListed", list(inputs), list(outputs))

    # -- the MIDI server (worker thread) ------------------------------------------
    def _watch(self) -> None:
        self._watch_queued = False
        while self._dead:
            # Closing a JACK output of a dead server waits 1 s in RtMidi holding the GIL, so it
            # happens a tick after the loss was reported (the window shows it first).
            _close_port(self._dead.pop())
        if self._server is None:
            from copilot_app.engine.midi_ports import ServerWatch, choose_api

            self._server = ServerWatch(choose_api())
            self.server_alive = self._server.alive
        change = self._server.check()
        if change == "lost":
            self._server_lost()
        elif change == "back":
            self.server_alive = True
            self._missing = {kind for kind, want in (("input", self._want_in), ("output", self._want_out)) if want}
            self._reopen()
            waiting = f" (waiting for the {' and '.join(sorted(self._missing))})" if self._missing else ""
            self._emit("serverChanged", True, f"MIDI server (JACK) back: ports reopened{waiting}")
        elif self._missing and self.server_alive and time.monotonic() - self._last_retry >= RETRY_S:
            self._reopen()
        if (change is None and self.server_alive and self._watched and self.device_watch_s is not None
                and time.monotonic() - self._last_device >= self.device_watch_s):
            self._check_devices()

    # -- named device ports (worker thread) -------------------------------------------
    def _check_devices(self) -> None:
        """One listing: close a chosen port whose device went away, reopen one that is back."""
        from copilot_app.engine.midi_ports import list_ports, port_present

        self._last_device = time.monotonic()
        try:
            inputs, outputs = list_ports()
        except Exception as exc:
            log.debug("device watch: %s", exc)
            return
        for kind, name in list(self._watched.items()):
            present = port_present(name, inputs if kind == "input" else outputs)
            is_open = self.input_port is not None if kind == "input" else self.output_name == name
            if is_open and not present:
                self._device_lost(kind, name)
            elif not is_open and present:
                self._missing.add(kind)
                self._reopen()  # deviceChanged(kind, name, True) once it is open
            elif not is_open and not present and kind not in self._gone:
                self._gone.add(kind)  # e.g. not there when the server came back
                self._emit("deviceChanged", kind, name, False)

    def _device_lost(self, kind: str, name: str) -> None:
        """The device of a chosen port is gone: say so, send nothing to it, keep the choice."""
        self._gone.add(kind)
        self._emit("deviceChanged", kind, name, False)
        if kind == "input":
            self._close_input(forget=False)  # thru notes it started end on the output
            if self.on_lost is not None:
                self.on_lost()  # the keys it held send no note-off now
        else:
            old = self.sink.set_target(None)  # waits for a send in flight; later ones are dropped
            self.output_name = None
            self._update_thru(None)
            _close_port(old)

    def _device_back(self, kind: str, name: str) -> None:
        if kind in self._gone:
            self._gone.discard(kind)
            self._emit("deviceChanged", kind, name, True)

    def _forget_device(self, kind: str) -> None:
        """Another port was chosen: the old one is not watched (nor gone) any more."""
        name = self._watched.pop(kind, None)
        if kind in self._gone:
            self._gone.discard(kind)
            self._emit("deviceChanged", kind, name or "", True)

    def _server_lost(self) -> None:
        """Drop playback first (nothing into the void), then close the input; the choices stay."""
        self.server_alive = False
        self._emit("serverChanged", False, "MIDI server (JACK) lost: nothing is sent until it is back")
        old = self.sink.set_target(None)  # waits for a send in flight
        from copilot_app.engine.synth_output import BUILTIN

        if old is not None:
            # The built-in piano's audio driver died with the server: never closed. A port of
            # the dead server is closed on the next look, before a new server can start.
            (self._kept if self._want_out == BUILTIN else self._dead).append(old)
        self.output_name = None
        self._close_input(forget=False)
        if self.on_lost is not None:
            self.on_lost()

    def _reopen(self) -> None:
        """Open again the chosen ports that are not open (the server is back)."""
        from copilot_app.engine.midi_ports import open_input, open_output
        from copilot_app.engine.synth_output import BUILTIN, open_synth

        self._last_retry = time.monotonic()
        name = self._want_in
        if "input" in self._missing and name:
            try:
                self.input_port = open_input(None if name == VIRTUAL else name,
                                             getattr(self, "_from_port", self.midi_in),  # with MIDI thru when there
                                             virtual=name == VIRTUAL)
            except Exception as exc:
                log.debug("reopen input %s: %s", name, exc)
            else:
                self._missing.discard("input")
                self.input_name = name
                self._emit("inputOpened", name, True)
                self._device_back("input", name)
        name = self._want_out
        if "output" in self._missing and name:
            try:
                port = (open_synth() if name == BUILTIN
                        else open_output(None if name == VIRTUAL else name, virtual=name == VIRTUAL))
            except Exception as exc:
                log.debug("reopen output %s: %s", name, exc)
            else:
                self._missing.discard("output")
                if "output" in self._gone:
                    try:
                        all_notes_off(port.send)  # what the device held when it went away ends now
                    except Exception as exc:
                        log.debug("notes off on %s: %s", name, exc)
                _close_port(self.sink.set_target(port))
                self.output_name = name
                self._update_thru(name)
                self._emit("outputOpened", name, True)
                self._device_back("output", name)

    def _swap_input(self, name: str | None) -> None:
        from copilot_app.engine.midi_ports import open_input

        self._close_input()
        self._want_in = name or None
        self._missing.discard("input")
        self._forget_device("input")
        if not name:
            self._emit("inputOpened", "", True)
            return
        try:
            self.input_port = open_input(None if name == VIRTUAL else name, self._from_port,
                                         virtual=name == VIRTUAL)
        except Exception as exc:
            self._emit("errorOccurred", one_line(exc))
            self._emit("inputOpened", name, False)
            return
        self.input_name = name
        if name != VIRTUAL:
            self._watched["input"] = name
        self._emit("inputOpened", name, True)

    def _close_input(self, forget: bool = True) -> None:
        port, self.input_port = self.input_port, None
        if forget:
            self.input_name = None
        _close_port(port)
        self._end_thru_notes()  # a key held while its input went away

    # -- MIDI thru (``_from_port`` runs on the input's polling thread) ----------------
    def _from_port(self, msg: mido.Message) -> None:
        """A message from the input port: to the engine, and to the output when thru is on."""
        self.midi_in(msg)
        if not self.thru or msg.type not in THRU_TYPES:
            return
        with self._thru_lock:
            if msg.type == "note_on" and msg.velocity > 0:
                self._thru_held.add((msg.channel, msg.note))
            elif msg.type in ("note_on", "note_off"):
                self._thru_held.discard((msg.channel, msg.note))
        try:
            self.sink.send(msg)
        except Exception as exc:  # the output went away; the input goes on
            log.warning("MIDI thru failed: %s", exc)

    def _end_thru_notes(self) -> None:
        with self._thru_lock:
            held, self._thru_held = sorted(self._thru_held), set()
        for channel, note in held:
            try:
                self.sink.send(mido.Message("note_off", channel=channel, note=note, velocity=0))
            except Exception:
                pass

    def _set_thru(self, builtin: bool | None, external: bool | None) -> None:
        if builtin is not None:
            self.thru_builtin = bool(builtin)
        if external is not None:
            self.thru_external = bool(external)
        self._update_thru(self.output_name)

    def _update_thru(self, output: str | None) -> None:
        on = bool(output) and (self.thru_builtin if output == BUILTIN else self.thru_external)
        if self.thru and not on:
            self._end_thru_notes()
        self.thru = on

    def _swap_output(self, name: str | None) -> None:
        from copilot_app.engine.midi_ports import open_output

        port, ok = None, True
        self._want_out = name or None
        self._missing.discard("output")
        self._forget_device("output")
        if name:
            try:
                if name == BUILTIN:
                    from copilot_app.engine.synth_output import open_synth

                    port = open_synth()
                else:
                    port = open_output(None if name == VIRTUAL else name, virtual=name == VIRTUAL)
            except Exception as exc:
                self._emit("errorOccurred", one_line(exc))
                ok = False
        try:
            all_notes_off(self.sink.send)  # nothing left hanging on the port we leave
        except Exception as exc:
            self._emit("errorOccurred", f"MIDI out: {one_line(exc)}")
        self._update_thru(None)  # notes passed on to the old output end there
        old = self.sink.set_target(port)
        _close_port(old)
        self.output_name = name if port is not None else None
        self._update_thru(self.output_name)
        if port is not None and name not in (VIRTUAL, BUILTIN):
            self._watched["output"] = name
        self._emit("outputOpened", name or "", ok)

    def _emit(self, signal: str, *args) -> None:
        try:
            getattr(self, signal).emit(*args)
        except RuntimeError:  # the window (and this object) were deleted meanwhile
            pass


def _close_port(port) -> None:
    if port is None or not hasattr(port, "close"):
        return
    try:
        port.close()
    except Exception:  # a vanished device may complain on close
        pass
