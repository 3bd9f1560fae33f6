"""MIDI ports through mido's python-rtmidi backend, on the right system API.

python-rtmidi is compiled with several APIs on Linux (ALSA and JACK). Which one
to use is decided once: ``COPILOT_MIDI_API`` wins (e.g. ``UNIX_JACK``); else
JACK when a JACK server answers, since a JACK setup routes MIDI through it;
else rtmidi's own default (ALSA, CoreMIDI, Windows MM).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import mido
import rtmidi

VIRTUAL_IN = "Composer Copilot In"
VIRTUAL_OUT = "Composer Copilot Out"
CLIENT_NAME = "Composer Copilot"

_API_IDS = {
    "UNIX_JACK": rtmidi.API_UNIX_JACK,
    "LINUX_ALSA": rtmidi.API_LINUX_ALSA,
    "MACOSX_CORE": rtmidi.API_MACOSX_CORE,
    "WINDOWS_MM": rtmidi.API_WINDOWS_MM,
}


class MidiPortError(OSError):
    """A port could not be listed, found or opened; the message says which."""


def jack_server_running() -> bool:
    """True when python-rtmidi can reach a JACK server."""
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        return False
    try:
        probe = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="copilot-probe")
    except rtmidi.SystemError:
        return False
    probe.delete()
    return True


def choose_api() -> str | None:
    """The rtmidi API name to use, or None for rtmidi's platform default."""
    forced = os.environ.get("COPILOT_MIDI_API")
    if forced:
        return forced
    if jack_server_running():
        return "UNIX_JACK"
    return None


def backend(api: str | None = None) -> mido.Backend:
    """A mido backend bound to the chosen rtmidi API."""
    api = api if api is not None else choose_api()
    name = "mido.backends.rtmidi" + (f"/{api}" if api else "")
    return mido.Backend(name, load=True)


def list_ports(api: str | None = None) -> tuple[list[str], list[str]]:
    """(input names, output names) visible on the chosen API."""
    try:
        b = backend(api)
        return b.get_input_names(), b.get_output_names()
    except Exception as exc:  # rtmidi raises its own SystemError subclasses
        raise MidiPortError(f"cannot list MIDI ports: {exc}") from exc


class RtInput:
    """A MIDI input on python-rtmidi, read by a polling thread.

    No Python code runs on the MIDI driver's thread. With a Python callback
    there (mido's way), JACK's process thread must take the GIL, while any
    thread creating or closing a JACK client holds the GIL inside
    python-rtmidi and waits for that same process thread: both wait forever
    (seen with a synchronous JACK server and when closing a port while MIDI
    arrives). Here rtmidi queues messages in C++ and a small thread drains
    the queue every millisecond, calling ``callback`` (which must only
    enqueue) with each parsed message.
    """

    POLL_S = 0.001

    def __init__(self, name: str, callback: Callable[[mido.Message], None], *,
                 virtual: bool, api: str | None) -> None:
        self._rt = rtmidi.MidiIn(_API_IDS.get(api or "", rtmidi.API_UNSPECIFIED),
                                 name=CLIENT_NAME if virtual else "Composer Copilot listener",
                                 queue_size_limit=4096)
        # Keep sysex and timing messages (MIDI clock); drop active sensing.
        self._rt.ignore_types(sysex=False, timing=False, active_sense=True)
        if virtual:
            self._rt.open_virtual_port(name)
        else:
            self._rt.open_port(self._rt.get_ports().index(name))
        self.name = name
        self.closed = False
        self._callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name=f"midi-in {name}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            event = self._rt.get_message()
            if event is None:
                self._stop.wait(self.POLL_S)
                continue
            try:
                msg = mido.Message.from_bytes(event[0])
            except ValueError:  # a malformed message from a device: drop it
                continue
            self._callback(msg)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._rt.close_port()
        self._rt.delete()

    def __enter__(self) -> "RtInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(name: str | None, callback: Callable[[mido.Message], None], *,
               virtual: bool = False, api: str | None = None) -> RtInput:
    """Open an input by name (or a virtual one named ``name``).

    The callback runs on rtmidi's thread: it must only enqueue.
    """
    api = api if api is not None else choose_api()
    with _port_errors("input", name):
        if virtual:
            return RtInput(name or VIRTUAL_IN, callback, virtual=True, api=api)
        resolved = _match(name, list_ports(api)[0], "input")
        return RtInput(resolved, callback, virtual=False, api=api)


def open_output(name: str | None, *, virtual: bool = False,
                api: str | None = None) -> mido.ports.BaseOutput:
    """Open an output by name (or a virtual one named ``name``)."""
    b = backend(api)
    with _port_errors("output", name):
        if virtual:
            return b.open_output(name or VIRTUAL_OUT, virtual=True, client_name=CLIENT_NAME)
        return b.open_output(_match(name, b.get_output_names(), "output"))


@contextmanager
def _port_errors(kind: str, name: str | None) -> Iterator[None]:
    """Whatever the MIDI backend raises while opening a port becomes one
    MidiPortError that names the port (the app shows it as one line)."""
    try:
        yield
    except MidiPortError:
        raise
    except Exception as exc:
        raise MidiPortError(f"cannot open MIDI {kind} {name!r}: {exc}") from exc


def _match(name: str | None, available: list[str], kind: str) -> str:
    # Exact name first; else a unique case-insensitive substring, because
    # system port names carry client prefixes and numbers the user never types.
    if name is None:
        if not available:
            raise MidiPortError(f"no MIDI {kind} ports available")
        return available[0]
    if name in available:
        return name
    hits = [p for p in available if name.lower() in p.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise MidiPortError(f"no MIDI {kind} port matches {name!r}; "
                            f"available: {', '.join(available) or 'none'}")
    raise MidiPortError(f"MIDI {kind} name {name!r} is ambiguous: {', '.join(hits)}")


class PortKeeper:
    """A named device port that survives being unplugged and plugged back in.

    ``check()`` (called about once a second by the engine's owner) closes the
    port when its device disappears and reopens it when it comes back. While
    an output is gone, ``send`` drops messages: the Player's bookkeeping of
    open notes goes on, so its note-offs still balance what was sent.
    """

    def __init__(self, kind: str, name: str,
                 callback: Callable[[mido.Message], None] | None = None, api: str | None = None) -> None:
        if kind not in ("input", "output"):
            raise ValueError("kind must be 'input' or 'output'")
        self.kind, self.callback, self.api = kind, callback, api
        self.requested = name
        self.port = self._open(name)
        self.name = self.port.name
        self.reconnects = 0
        self.dropped = 0

    def _open(self, name: str):
        if self.kind == "input":
            return open_input(name, self.callback or (lambda m: None), api=self.api)
        return open_output(name, api=self.api)

    @property
    def connected(self) -> bool:
        return self.port is not None

    def check(self) -> str | None:
        """'lost', 'back' or None (nothing changed)."""
        try:
            names = list_ports(self.api)[0 if self.kind == "input" else 1]
        except MidiPortError:
            return None
        present = self.name in names
        if self.port is not None and not present:
            self._close_port()
            return "lost"
        if self.port is None and present:
            try:
                self.port = self._open(self.name)
            except MidiPortError:
                return None
            self.reconnects += 1
            return "back"
        return None

    def send(self, msg: mido.Message) -> None:
        if self.port is None:
            self.dropped += 1
            return
        self.port.send(msg)

    def _close_port(self) -> None:
        port, self.port = self.port, None
        try:
            port.close()
        except Exception:  # the device is gone; closing may complain
            pass

    def close(self) -> None:
        if self.port is not None:
            self._close_port()
