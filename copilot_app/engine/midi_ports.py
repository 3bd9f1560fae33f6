"""MIDI ports through mido's python-rtmidi backend, on the right system API.

python-rtmidi is compiled with several APIs on Linux (ALSA and JACK). Which one
to use is decided once: ``COPILOT_MIDI_API`` wins (e.g. ``UNIX_JACK``); else
JACK when a JACK server answers, since a JACK setup routes MIDI through it;
else rtmidi's own default (ALSA, CoreMIDI, Windows MM).

A JACK server can go away under a running app (killed, restarted by a
session manager). ``ServerWatch`` notices it within milliseconds (libjack's
shutdown callback on a client of its own) and again when a server answers;
``PortKeeper`` closes its port while the server or device is gone (messages
are dropped, never sent into the void) and opens it again, virtual ports
included, when it is back. ``LivePorts`` ties both together for the owner of
the engine (``listen``): one ``check()`` a quarter of a second, a line for
each change.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import mido
import rtmidi

from copilot_app.engine import jack_port_check

log = logging.getLogger(__name__)

VIRTUAL_IN = "Composer Copilot In"
VIRTUAL_OUT = "Composer Copilot Out"
CLIENT_NAME = "Composer Copilot"
LISTENER_CLIENT = "Composer Copilot listener"  # the client of an input opened on a device
LISTENER_PORT = "input"
DEVICE_OUT_PORT = "output"  # our port that an output opened on a device (JACK) sends from

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


def _device_key(name: str) -> str:
    """A port name without the "-NN" JACK adds to a client whose name is still
    taken (a device plugged back in before its old client is gone)."""
    return re.sub(r"-\d+(?=:)", "", name.lower())


def _matches(name: str, available: list[str]) -> list[str]:
    """Ports ``name`` means: the exact name; else the same device renamed by
    JACK; else a unique case-insensitive part of one (system port names carry
    client prefixes and numbers the user never types)."""
    if name in available:
        return [name]
    same = [p for p in available if _device_key(p) == _device_key(name)]
    if len(same) == 1:
        return same
    return [p for p in available if name.lower() in p.lower()]


def port_present(name: str, available: list[str]) -> bool:
    """Whether ``name`` names a port in ``available`` as ``open_input``/``open_output`` would
    find it (see ``_matches``)."""
    return len(_matches(name, available)) == 1


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
        self.api_id = _API_IDS.get(api or "", rtmidi.API_UNSPECIFIED)
        self.client = CLIENT_NAME if virtual else LISTENER_CLIENT
        self.port_name = name if virtual else LISTENER_PORT
        self._rt = rtmidi.MidiIn(self.api_id, name=self.client, queue_size_limit=4096)
        # Keep sysex and timing messages (MIDI clock); drop active sensing.
        self._rt.ignore_types(sysex=False, timing=False, active_sense=True)
        if virtual:
            self._rt.open_virtual_port(name)
        else:
            self._rt.open_port(self._rt.get_ports().index(name), self.port_name)
        self.name = name
        self.closed = False
        self._callback = callback
        self._probe: tuple[int, ...] | None = None
        self._probe_seen = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name=f"midi-in {name}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            event = self._rt.get_message()
            if event is None:
                self._stop.wait(self.POLL_S)
                continue
            data = event[0]
            if jack_port_check.is_probe(data):  # a port check's, ours or another app's: not music
                if tuple(data) == self._probe:
                    self._probe_seen.set()
                continue
            try:
                msg = mido.Message.from_bytes(data)
            except ValueError:  # a malformed message from a device: drop it
                continue
            self._callback(msg)

    def wait_probe(self, probe: tuple[int, ...], timeout: float) -> bool:
        """Whether ``probe`` arrives on this port within ``timeout`` seconds."""
        self._probe_seen.clear()
        self._probe = probe
        try:
            return self._probe_seen.wait(timeout)
        finally:
            self._probe = None

    def passes_midi(self) -> bool:
        """On JACK: whether a probe sent into this port arrives (see jack_port_check)."""
        return jack_port_check.input_passes(self.api_id, self.client, self.port_name, self.wait_probe) is not None

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
    """Open an input by name (or a virtual one named ``name``); on JACK, one that
    passes MIDI (checked, and opened again if not: see jack_port_check).

    The callback runs on the input's polling thread: it must only enqueue.
    """
    api = api if api is not None else choose_api()
    with _port_errors("input", name):
        resolved = (name or VIRTUAL_IN) if virtual else _match(name, list_ports(api)[0], "input")
        return _checked("input", resolved, api, lambda: RtInput(resolved, callback, virtual=virtual, api=api),
                        lambda port: port.passes_midi())


def open_output(name: str | None, *, virtual: bool = False,
                api: str | None = None) -> mido.ports.BaseOutput:
    """Open an output by name (or a virtual one named ``name``); on JACK one that
    passes MIDI (checked, and opened again if not: see jack_port_check). On JACK
    an output for a device is our own port, checked while unconnected and then
    connected to the device; its ``name`` is the device's."""
    b = backend(api)
    with _port_errors("output", name):
        if virtual:
            resolved, port_name = name or VIRTUAL_OUT, name or VIRTUAL_OUT
        else:
            resolved, port_name = _match(name, b.get_output_names(), "output"), DEVICE_OUT_PORT
            if b.api != "UNIX_JACK":
                return b.open_output(resolved)
        api_id = _API_IDS.get(b.api or "", rtmidi.API_UNSPECIFIED)

        def passes(port: mido.ports.BaseOutput) -> bool:
            ours = jack_port_check.output_passes(api_id, CLIENT_NAME, port_name,
                                                 lambda probe: port.send(mido.Message.from_bytes(probe)))
            if ours is None:
                return False
            if not virtual:
                connect_jack_ports(ours, resolved)
                port.name = resolved  # what the user chose, as listed: PortKeeper looks for it by name
            return True
        return _checked("output", resolved, b.api,
                        lambda: b.open_output(port_name, virtual=True, client_name=CLIENT_NAME), passes)


def _checked(kind: str, name: str, api: str | None, opener: Callable, passes: Callable) -> object:
    """``opener()``, and on JACK again (up to OPEN_TRIES) while ``passes(port)`` says no MIDI gets through."""
    if api != "UNIX_JACK":
        return opener()
    tries = jack_port_check.OPEN_TRIES
    for attempt in range(1, tries + 1):
        port = opener()
        try:
            ok = passes(port)
        except Exception:  # the check itself failed (the server went away): nothing left open
            port.close()
            raise
        if ok:
            if attempt > 1:
                log.info("MIDI %s %s passes MIDI after %d opens", kind, name, attempt)
            return port
        log.warning("MIDI %s %s opened but passes no MIDI (a stalled JACK client)%s",
                    kind, name, ": opening it again" if attempt < tries else "")
        port.close()
        if attempt < tries:
            time.sleep(0.05 * attempt)  # let the server's news of closed clients reach this process
    raise MidiPortError(f"MIDI {kind} {name!r} opens on JACK but passes no MIDI "
                        f"({jack_port_check.OPEN_TRIES} tries)")


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
    if name is None:
        if not available:
            raise MidiPortError(f"no MIDI {kind} ports available")
        return available[0]
    hits = _matches(name, available)
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise MidiPortError(f"no MIDI {kind} port matches {name!r}; "
                            f"available: {', '.join(available) or 'none'}")
    raise MidiPortError(f"MIDI {kind} name {name!r} is ambiguous: {', '.join(hits)}")


class PortKeeper:
    """A port that survives its device (or the whole MIDI server) going away.

    A named device port: ``check()`` (called about once a second by the
    engine's owner) closes the port when its device disappears and reopens
    it when it comes back. A virtual port (``virtual=True``) has no device;
    it goes with the server (``suspend``) and is created again when the
    server is back (``resume``). While the port is gone, ``send`` drops
    messages: the Player's bookkeeping of open notes goes on, so its
    note-offs still balance what was sent.
    """

    def __init__(self, kind: str, name: str | None,
                 callback: Callable[[mido.Message], None] | None = None, api: str | None = None,
                 *, virtual: bool = False) -> None:
        if kind not in ("input", "output"):
            raise ValueError("kind must be 'input' or 'output'")
        self.kind, self.callback, self.virtual = kind, callback, virtual
        self.api = api if api is not None else choose_api()
        self.requested = name
        self._lock = threading.Lock()  # send (Player thread) vs close/reopen (owner's thread)
        self.port = self._open(name)
        self.name = self.port.name
        self.reconnects = 0
        self.dropped = 0

    def _open(self, name: str | None):
        if self.kind == "input":
            return open_input(name, self.callback or (lambda m: None), virtual=self.virtual, api=self.api)
        return open_output(name, virtual=self.virtual, api=self.api)

    @property
    def connected(self) -> bool:
        return self.port is not None

    def check(self, names: list[str] | None = None) -> str | None:
        """'lost', 'back' or None (nothing changed); ``names``: the ports listed now
        (listed here when not given). A virtual port has nothing to check."""
        if self.virtual:
            return None
        if names is None:
            try:
                names = list_ports(self.api)[0 if self.kind == "input" else 1]
            except MidiPortError:
                return None
        present = self.name in names
        if self.port is not None and not present:
            self._close_port()
            return "lost"
        if self.port is None and present:
            return "back" if self.resume() else None
        return None

    def suspend(self) -> None:
        """The server went away: close the port now (before a new server could
        reuse what the old client points at) and drop messages until ``resume``."""
        if self.port is not None:
            self._close_port()

    def resume(self) -> bool:
        """Open the port again (a virtual one is created again); whether it is open."""
        if self.port is not None:
            return True
        try:
            port = self._open(self.requested if self.virtual else self.name)
        except MidiPortError as exc:
            log.debug("reopen %s %s: %s", self.kind, self.name, exc)
            return False
        with self._lock:
            self.port = port
        self.reconnects += 1
        return True

    def send(self, msg: mido.Message) -> None:
        with self._lock:
            if self.port is None:
                self.dropped += 1
                return
            self.port.send(msg)

    def _close_port(self) -> None:
        with self._lock:
            port, self.port = self.port, None
        try:
            port.close()
        except Exception:  # the device is gone; closing may complain
            pass

    def close(self) -> None:
        if self.port is not None:
            self._close_port()


# -- the JACK server itself ------------------------------------------------------
_JACK_NO_START_SERVER = 0x01
_ShutdownCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_MessageCallback = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_quiet = _MessageCallback(lambda _msg: None)


@functools.lru_cache(maxsize=1)
def _libjack():
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_on_shutdown.restype = None
    lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _ShutdownCallback, ctypes.c_void_p]
    lib.jack_client_close.restype = ctypes.c_int
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    lib.jack_connect.restype = ctypes.c_int
    lib.jack_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_set_error_function.argtypes = [_MessageCallback]
    lib.jack_set_info_function.argtypes = [_MessageCallback]
    return lib


@contextmanager
def _libjack_quiet(lib) -> Iterator[None]:
    """libjack prints five lines for every failed connection attempt; a watch that
    tries twice a second while the server is away would flood stderr. Muted for
    the attempt only, then libjack's own printers are put back."""
    try:
        error = ctypes.c_void_p.in_dll(lib, "jack_error_callback")
        info = ctypes.c_void_p.in_dll(lib, "jack_info_callback")
    except ValueError:  # a libjack without these globals: leave its output alone
        yield
        return
    saved = error.value, info.value
    lib.jack_set_error_function(_quiet)
    lib.jack_set_info_function(_quiet)
    try:
        yield
    finally:
        error.value, info.value = saved


def _open_client(lib, name: bytes) -> int | None:
    """A libjack client on the running server (never starting one), or None; quiet."""
    status = ctypes.c_int(0)
    with _libjack_quiet(lib):
        return lib.jack_client_open(name, _JACK_NO_START_SERVER, ctypes.byref(status))


def connect_jack_ports(source: str, destination: str) -> None:
    """Connect two JACK ports by their full names, through a short-lived client of
    our own (python-rtmidi cannot connect a port it made unconnected)."""
    lib = _libjack()
    if lib is None:
        raise MidiPortError("cannot connect MIDI ports: libjack not found")
    client = _open_client(lib, b"Composer Copilot connect")
    if not client:
        raise MidiPortError(f"cannot connect {source} to {destination}: the JACK server does not answer")
    try:
        rc = lib.jack_connect(client, source.encode(), destination.encode())
    finally:
        lib.jack_client_close(client)
    if rc not in (0, errno.EEXIST):
        raise MidiPortError(f"cannot connect {source} to {destination} (JACK says {rc})")


class ServerWatch:
    """Whether the JACK server is there: ``check()`` says 'lost', 'back' or None.

    A JACK client of its own (no ports, never activated, so it costs the
    server's graph nothing) registers libjack's shutdown callback, which
    fires within milliseconds of the server dying (kill -9 included); the
    callback only sets an event. While the server is away ``check`` tries a
    new client every ``RETRY_S`` (with JackNoStartServer: never starts one).
    On any other API than JACK there is no server to lose: always alive.
    """

    RETRY_S = 0.5

    def __init__(self, api: str | None = None) -> None:
        self.api = api if api is not None else choose_api()
        self._lib = _libjack() if self.api == "UNIX_JACK" else None
        self._client: int | None = None
        self._gone = threading.Event()
        self._callback = _ShutdownCallback(lambda _arg: self._gone.set())  # kept alive with self
        self._last_try = float("-inf")
        self.enabled = self._lib is not None
        self.alive = True if not self.enabled else self._connect()
        self.lost_at: float | None = None if self.alive else time.monotonic()

    def _connect(self) -> bool:
        self._last_try = time.monotonic()
        client = _open_client(self._lib, b"Composer Copilot watch")
        if not client:
            return False
        self._gone.clear()
        self._lib.jack_on_shutdown(client, self._callback, None)
        self._client = client
        return True

    def check(self) -> str | None:
        if not self.enabled:
            return None
        if self.alive:
            if not self._gone.is_set():
                return None
            self._drop_client()
            self.alive, self.lost_at = False, time.monotonic()
            return "lost"
        if time.monotonic() - self._last_try < self.RETRY_S or not self._connect():
            return None
        self.alive, self.lost_at = True, None
        return "back"

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client:
            try:
                self._lib.jack_client_close(client)  # libjack cleans up a dead server's client
            except Exception:
                pass

    def close(self) -> None:
        self._drop_client()


class LivePorts:
    """The listening loop's ports and the server under them (see module docstring).

    ``check()`` is called by the owner every ``CHECK_S``; it returns one
    line per change for the user. Named ports are looked for at most once a
    second (listing opens clients on the server).
    """

    CHECK_S = 0.25
    LIST_S = 1.0

    def __init__(self, keepers: list[PortKeeper], api: str | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
        self.keepers = keepers
        self.api = api if api is not None else choose_api()
        self.watch = ServerWatch(self.api)
        self.on_lost = on_lost  # e.g. the engine releases the keys it holds: their note-offs cannot come
        self._last_list = time.monotonic()
        self._port_down_since: float | None = None

    @property
    def healthy(self) -> bool:
        return self.watch.alive and all(k.connected for k in self.keepers)

    @property
    def down_since(self) -> float | None:
        """When the server, or else a port, went away (monotonic seconds); None while all is well."""
        if not self.watch.alive:
            return self.watch.lost_at
        return self._port_down_since if not self.healthy else None

    def check(self, report: Callable[[str], None] | None = None) -> list[str]:
        """One look at the server and the ports; the lines for the user, each also
        handed to ``report`` as soon as it is known (before the slow clean-up)."""
        lines: list[str] = []

        def say(line: str) -> None:
            lines.append(line)
            if report is not None:
                report(line)
        change = self.watch.check()
        if change == "lost":
            say("MIDI server (JACK) lost: nothing is sent until it is back; the session is kept")
            for keeper in self.keepers:
                keeper.suspend()
            if self.on_lost is not None:
                self.on_lost()
            return lines
        if not self.watch.alive:
            return lines
        if change == "back":
            back = [k.name for k in self.keepers if k.resume()]
            missing = [k.name for k in self.keepers if not k.connected]
            say("MIDI server (JACK) back: " + (f"reopened {', '.join(back)}" if back else "no port yet")
                         + (f"; waiting for {', '.join(missing)}" if missing else ""))
        now = time.monotonic()
        named = [k for k in self.keepers if not k.virtual]
        due = now - self._last_list >= self.LIST_S
        if due:
            self._last_list = now
        if due and change != "back":
            # A virtual port the server is back for but that would not pass MIDI yet.
            for keeper in self.keepers:
                if keeper.virtual and not keeper.connected and keeper.resume():
                    say(f"MIDI {keeper.kind} {keeper.name}: reopened")
        if named and due:
            try:
                inputs, outputs = list_ports(self.api)
            except MidiPortError:
                inputs = outputs = None
            if inputs is not None:
                for keeper in named:
                    was = keeper.connected
                    result = keeper.check(inputs if keeper.kind == "input" else outputs)
                    if result == "lost":
                        if self.on_lost is not None and keeper.kind == "input":
                            self.on_lost()
                        say(f"MIDI {keeper.kind} {keeper.name}: disconnected")
                    elif result == "back" or (not was and keeper.connected):
                        say(f"MIDI {keeper.kind} {keeper.name}: reconnected")
        if self.healthy:
            self._port_down_since = None
        elif self._port_down_since is None:
            self._port_down_since = now
        return lines

    def close(self) -> None:
        self.watch.close()
