"""A session on disk: phrases, takes, accepted variations and settings, saved as they change.

One JSON document per session (``sessions/session-YYYYmmdd-HHMMSS.json`` in
the user's data folder, which the GUI decides and passes in as a path)::

    {"format": "composer-copilot-session", "version": 1,
     "last_number": 7,                 # take numbers go on after this one
     "timeline": 3,                    # the timeline live notes were on
     "settings": {...},                # SessionSettings fields
     "phrases": [{"number", "source", "name", "tempo_bpm", "meter": [n, d],
                  "notes": [[start, duration, pitch, velocity], ...]}],
     "takes": [{"number", "start_quarters", "velocity", "tempo_bpm", "meter",
                "model", "timeline", "variations": [[note, ...], ...],
                "context": [note, ...], "auditioned", "accepted", "interrupted", ...}],
     "discarded": [take, ...],         # what Edit > Undo discard can bring back
     "context": [note, ...]}           # the bars the next answer continues (session ticks)

Notes are ticks (``TICKS_PER_QUARTER``), pitches and velocities; the model's
recurrent state is not saved: on load the context is re-primed from the
saved notes. Every write is atomic (``model.atomic_io``): a crash mid-write
leaves the previous file. ``SessionStore`` writes on its own thread, so the
engine thread only hands over immutable values; the latest one wins.

Loading validates everything. A file that does not parse, breaks the schema
or comes from a newer version is moved aside (``NAME.json.unreadable-TIME``,
never overwritten) and the caller gets one line saying so and a fresh session.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from copilot_app.engine.clock import Meter
from copilot_app.engine.session_model import Phrase, Take, TakeView
from model.atomic_io import atomic_write_bytes, read_regular_file
from model.tokens.streaming import DecodedNote

log = logging.getLogger(__name__)

FORMAT = "composer-copilot-session"
VERSION = 1
SUFFIX = ".json"
READ_LIMIT = 256 * 1024 * 1024  # bytes: far above any real session, below a runaway file
MAX_DISCARDED = 50  # discards kept for Undo in the file


class SessionFileError(ValueError):
    """A session file that cannot be used; ``str()`` is one line naming it."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(reason)
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class SavedSession:
    """What a session file holds, validated (immutable values)."""

    takes: tuple[TakeView, ...] = ()
    phrases: tuple[Phrase, ...] = ()
    last_number: int = 0
    timeline: int = 0
    settings: dict | None = None          # SessionSettings fields (only known, well-typed ones)
    discarded: tuple[TakeView, ...] = ()
    context: tuple[DecodedNote, ...] = ()


# -- encoding --------------------------------------------------------------------------
def _notes_out(notes: Sequence[DecodedNote]) -> list[list[int]]:
    return [[int(n.start), int(n.duration), int(n.pitch), int(n.velocity)] for n in notes]


def _take_out(view: TakeView) -> dict:
    t = view.take
    return {"number": t.number, "start_quarters": t.start_quarters, "velocity": t.velocity,
            "tempo_bpm": t.tempo_bpm, "meter": [t.meter.numerator, t.meter.denominator], "model": t.model,
            "timeline": t.timeline, "variations": [_notes_out(v) for v in t.variations],
            "context": _notes_out(t.context), "first_note_latency_s": t.first_note_latency_s,
            "prepared": t.prepared, "derived_from": t.derived_from, "auditioned": view.auditioned, "accepted": view.accepted,
            "interrupted": view.interrupted}


def _phrase_out(p: Phrase) -> dict:
    return {"number": p.number, "source": p.source, "name": p.name, "tempo_bpm": p.tempo_bpm,
            "meter": [p.meter.numerator, p.meter.denominator], "notes": _notes_out(p.notes)}


def encode(session: SavedSession) -> bytes:
    """The session as the bytes of its file."""
    doc = {"format": FORMAT, "version": VERSION,
           "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "last_number": session.last_number, "timeline": session.timeline,
           "settings": dict(session.settings or {}),
           "phrases": [_phrase_out(p) for p in session.phrases],
           "takes": [_take_out(v) for v in session.takes],
           "discarded": [_take_out(v) for v in session.discarded[-MAX_DISCARDED:]],
           "context": _notes_out(session.context)}
    return (json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


# -- decoding (strict: anything off is a SessionFileError) ---------------------------------
class _Bad(Exception):
    pass


def _int(value: object, what: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{what} must be a whole number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Bad(f"{what} {value} is out of range")
    return value


def _float(value: object, what: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(f"{what} must be a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Bad(f"{what} {value} is out of range")
    return float(value)


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{what} must be text")
    return value


def _list(value: object, what: str) -> list:
    if not isinstance(value, list):
        raise _Bad(f"{what} must be a list")
    return value


def _dict(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be an object")
    return value


def _meter(value: object, what: str) -> Meter:
    pair = _list(value, what)
    if len(pair) != 2:
        raise _Bad(f"{what} must be [numerator, denominator]")
    try:
        return Meter(_int(pair[0], what, 1, 64), _int(pair[1], what))
    except ValueError as exc:
        raise _Bad(f"{what}: {exc}") from None


def _notes_in(value: object, what: str) -> tuple[DecodedNote, ...]:
    out = []
    for i, raw in enumerate(_list(value, what)):
        note = _list(raw, f"{what} note {i + 1}")
        if len(note) != 4:
            raise _Bad(f"{what} note {i + 1} must be [start, duration, pitch, velocity]")
        out.append(DecodedNote(_int(note[0], f"{what} note start"), _int(note[1], f"{what} note duration", 0),
                               _int(note[2], f"{what} note pitch", 0, 127),
                               _int(note[3], f"{what} note velocity", 1, 127)))
    return tuple(out)


def _take_in(raw: object, what: str) -> TakeView:
    d = _dict(raw, what)
    try:
        number = _int(d["number"], f"{what} number", 1)
        what = f"take {number}"
        variations = tuple(_notes_in(v, f"{what} variation") for v in _list(d["variations"], f"{what} variations"))
        if not variations:
            raise _Bad(f"{what} has no variations")
        latency = d.get("first_note_latency_s")
        take = Take(number, _float(d["start_quarters"], f"{what} start"), variations,
                    _int(d["velocity"], f"{what} velocity", 0, 127),
                    tempo_bpm=_float(d["tempo_bpm"], f"{what} tempo", 1.0, 1000.0),
                    meter=_meter(d["meter"], f"{what} meter"), model=_str(d.get("model", ""), f"{what} model"),
                    timeline=_int(d.get("timeline", 0), f"{what} timeline", 0),
                    context=_notes_in(d.get("context", []), f"{what} context"),
                    first_note_latency_s=None if latency is None else _float(latency, f"{what} latency", 0.0),
                    prepared=bool(d.get("prepared", False)),
                    derived_from=_str(d.get("derived_from", ""), f"{what} origin"))
        k = len(variations)
        auditioned = _int(d.get("auditioned", 0), f"{what} auditioned variation", 0, k - 1)
        accepted = d.get("accepted")
        accepted = None if accepted is None else _int(accepted, f"{what} accepted variation", 0, k - 1)
        return TakeView(take, auditioned, accepted, bool(d.get("interrupted", False)))
    except KeyError as exc:
        raise _Bad(f"{what} has no {exc.args[0]!r}") from None


def _phrase_in(raw: object, what: str) -> Phrase:
    d = _dict(raw, what)
    try:
        source = _str(d["source"], f"{what} source")
        if source not in ("played", "file", "accepted"):
            raise _Bad(f"{what} source {source!r} is unknown")
        return Phrase(_int(d["number"], f"{what} number", 1), source, _str(d["name"], f"{what} name"),
                      _float(d["tempo_bpm"], f"{what} tempo", 1.0, 1000.0), _meter(d["meter"], f"{what} meter"),
                      _notes_in(d.get("notes", []), f"{what} notes"))
    except KeyError as exc:
        raise _Bad(f"{what} has no {exc.args[0]!r}") from None


STEERING_FIELDS = ("key", "register_low", "register_high", "density", "texture")


def _settings_in(raw: object) -> dict:
    """The saved settings that are known and of the right type (others are dropped: a
    setting added or removed between versions must not lose the takes)."""
    from copilot_app.engine.session import SessionSettings  # session.py imports this module's users

    defaults = asdict(SessionSettings())
    out = {}
    for name, value in _dict(raw, "settings").items():
        if name not in defaults:
            continue
        default = defaults[name]
        if value is None or default is None:
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default)) and not isinstance(value, bool)
        if ok:
            out[name] = value
    try:
        replace(SessionSettings(), **out)
    except (TypeError, ValueError):
        return {}
    try:
        replace(SessionSettings(), **out).steering()
    except ValueError:  # e.g. a key no one can play in: the steering defaults, the rest kept
        out = {k: v for k, v in out.items() if k not in STEERING_FIELDS}
    return out


def decode(data: bytes, path: str | os.PathLike = "session") -> SavedSession:
    """Bytes of a session file -> ``SavedSession``; ``SessionFileError`` for anything off."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionFileError(path, f"not a session file (unreadable JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SessionFileError(path, "not a Composer Copilot session file")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SessionFileError(path, f"session format version {version!r} is not valid")
    if version > VERSION:
        raise SessionFileError(path, f"written by a newer Composer Copilot (session format {version}; "
                                     f"this version reads up to {VERSION})")
    try:
        takes = tuple(_take_in(t, f"take {i + 1}") for i, t in enumerate(_list(doc.get("takes", []), "takes")))
        numbers = [v.take.number for v in takes]
        if len(set(numbers)) != len(numbers):
            raise _Bad("two takes share a number")
        discarded = tuple(_take_in(t, f"discarded take {i + 1}")
                          for i, t in enumerate(_list(doc.get("discarded", []), "discarded")))
        phrases = tuple(_phrase_in(p, f"phrase {i + 1}")
                        for i, p in enumerate(_list(doc.get("phrases", []), "phrases")))
        return SavedSession(takes, phrases, _int(doc.get("last_number", 0), "last_number", 0),
                            _int(doc.get("timeline", 0), "timeline", 0), _settings_in(doc.get("settings", {})),
                            discarded, _notes_in(doc.get("context", []), "context"))
    except _Bad as exc:
        raise SessionFileError(path, f"damaged session file ({exc})") from None


# -- files ---------------------------------------------------------------------------------
def read_session(path: str | os.PathLike) -> SavedSession:
    """Read and validate one file; ``OSError`` or ``SessionFileError`` (one line each)."""
    return decode(read_regular_file(path, READ_LIMIT), path)


def write_session(path: str | os.PathLike, session: SavedSession) -> None:
    """Atomically: a reader (or the next start after a crash) sees the old file or the new one."""
    atomic_write_bytes(Path(path), encode(session))


def set_aside(path: str | os.PathLike) -> Path | None:
    """Move a bad file out of the way (kept, never overwritten); its new path, or None."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        aside = path.with_name(f"{path.name}.unreadable-{stamp}" + (f"-{i}" if i else ""))
        if aside.exists():
            continue
        try:
            os.rename(path, aside)
        except OSError:
            log.exception("cannot move %s aside", path)
            return None
        return aside
    return None


@dataclass(frozen=True)
class Loaded:
    """What ``load_or_fresh`` found: a session, or why not, and whether the path may be written."""

    session: SavedSession | None = None
    message: str | None = None       # one line when a file was there but could not be used
    writable: bool = True            # False: a file we could not read or move is still there


def load_or_fresh(path: str | os.PathLike) -> Loaded:
    """The saved session; nothing when there is no file yet; or one line when it
    could not be used: a bad file is moved aside first (kept, never overwritten)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return Loaded()
    try:
        return Loaded(read_session(path))
    except (SessionFileError, OSError) as exc:
        aside = set_aside(path)
        if aside is None:
            return Loaded(None, f"session not restored: {exc}; starting a new session", writable=False)
        return Loaded(None, f"session not restored: {exc}; kept as {aside.name}; starting a new session")


def new_session_path(folder: str | os.PathLike) -> Path:
    """A file name for a new session in ``folder`` that no session uses yet."""
    folder = Path(folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(10000):
        path = folder / (f"session-{stamp}" + (f"-{i}" if i else "") + SUFFIX)
        if not path.exists():
            return path
    raise FileExistsError(f"{folder}: no free session file name")


def latest_session(folder: str | os.PathLike) -> Path | None:
    """The session saved last in ``folder`` (by modification time), or None."""
    try:
        files = [p for p in Path(folder).glob("*" + SUFFIX) if p.is_file()]
    except OSError:
        return None
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name)) if files else None


class SessionStore:
    """One session file, written on a background thread as the session changes.

    ``save`` (engine thread) hands over a ``SavedSession`` (immutable) and
    returns at once; the writer encodes and writes the newest one it has.
    ``flush`` waits until what was handed over is on disk. A write that fails
    is reported once through ``on_error`` (one line) and tried again with the
    next change. ``background=False`` writes in ``save`` itself (tests, CLI).
    """

    def __init__(self, path: str | os.PathLike, on_error: Callable[[str], None] | None = None,
                 background: bool = True) -> None:
        self.path = Path(path)
        self.on_error = on_error
        self.background = background
        self.writes = 0
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._pending: SavedSession | None = None
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def save(self, session: SavedSession) -> None:
        if not self.background:
            self._write(session)
            return
        with self._cond:
            if self._closed:
                self._write(session)
                return
            self._pending = session
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="copilot-session-save", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every session handed over is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending, then stop the writer (later saves write at once)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                session, self._pending = self._pending, None
                self._busy = True
            try:
                self._write(session)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, session: SavedSession) -> None:
        try:
            write_session(self.path, session)
        except Exception as exc:  # a full disk must not stop the music
            message = f"session not saved: {exc}"
            if message != self.last_error:
                log.warning("%s", message)
                if self.on_error is not None:
                    self.on_error(message)
            self.last_error = message
            return
        self.writes += 1
        self.last_error = None


__all__ = ["FORMAT", "VERSION", "Loaded", "SavedSession", "SessionFileError", "SessionStore", "decode", "encode",
           "latest_session", "load_or_fresh", "new_session_path", "read_session", "set_aside",
           "write_session"]
