"""Crash-safe file writes: temp file in the same folder, fsync, rename, fsync dir.

A reader (or a resume after kill -9) sees the old file or the new one, never
half. Every file the project writes for keeps (checkpoints, sidecars, resume
state, exported .mid takes) goes through here.

A failure (a full disk, no permission, a folder where the file should be)
raises ``WriteError``: an ``OSError`` whose message is one line naming the
file the caller asked for, never the temp file's name.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Callable


class WriteError(OSError):
    """A file could not be written; ``str()`` is one line naming it."""

    def __init__(self, path: str | os.PathLike, reason: str, code: int = 0) -> None:
        super().__init__(code, reason)
        self.path = Path(path)
        self.reason = " ".join(reason.split())

    def __str__(self) -> str:
        return f"{self.path}: cannot write ({self.reason})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(path, exc.strerror or str(exc), exc.errno or 0)


def _check_target(path: Path) -> None:
    # os.replace onto a folder fails with both names in the message; the
    # temp one means nothing to the user, so say it before writing anything.
    if path.is_dir():
        raise WriteError(path, "it is a folder; give a file name", errno.EISDIR)


def _stage(path: Path, data: bytes) -> Path:
    """``data`` in a fsynced temp file beside ``path``; the temp file's path."""
    _check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise
    return Path(tmp)


def _sync_dir(folder: Path) -> None:
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write_many([(Path(path), data)])


def atomic_write_many(items: Sequence[tuple[str | os.PathLike, bytes]]) -> None:
    """Write several files all or none: every one is staged in a temp file
    first, and only when all are on disk are they renamed into place.

    On a failure while staging (a full disk after two of three takes) the temp
    files are removed and no target is touched.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in items:
            path = Path(path)
            staged.append((_stage(path, data), path))
        while staged:
            tmp, path = staged[0]
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _write_error(path, exc) from None
            staged.pop(0)
            _sync_dir(path.parent)
    finally:
        for tmp, _path in staged:
            tmp.unlink(missing_ok=True)


# -- reading: only regular files, never more than a bound ------------------------
class ReadRefused(OSError):
    """A file that is not read (not a regular file, or over the size bound);
    ``str()`` is one line naming it."""

    def __init__(self, path: str | os.PathLike, reason: str, too_large: bool = False) -> None:
        super().__init__(errno.EINVAL, reason)
        self.path = Path(path)
        self.reason = reason
        self.too_large = too_large

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words for a one-line refusal."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((word for test, word in kinds if test(mode)), "not a plain file")


def read_regular_file(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of regular file ``path`` of at most ``limit`` bytes.

    Special files get past a size check (/dev/zero reports 0 bytes and never
    ends; a FIFO blocks its reader until a writer comes), so only regular
    files are opened - judged after symlinks are resolved, and again on the
    open descriptor in case the path was swapped in between - and the read
    stops one byte past the bound whatever the file claims. Raises
    ``ReadRefused`` for those, and the usual ``OSError`` for a missing or
    unreadable file.
    """
    path = Path(path)
    mode = os.stat(path).st_mode  # follows symlinks: judge what would be read
    if not stat.S_ISREG(mode):
        raise ReadRefused(path, f"not a regular file ({file_kind(mode)})")
    # O_NONBLOCK: should a FIFO replace the file after the check, opening it
    # must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReadRefused(path, f"not a regular file ({file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise ReadRefused(path, f"file is {info.st_size // 1024} KiB, over the {limit // 1024} KiB limit",
                              too_large=True)
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after fstat
        raise ReadRefused(path, f"file is over the {limit // 1024} KiB limit", too_large=True)
    return data


def read_file_or_say(path: Path, limit: int, what: str, error: Callable[[Path, str], Exception],
                     missing: str | None = None) -> bytes:
    """``read_regular_file``, every refusal turned into ``error(path, one line)``:
    "<what> not found" (or ``missing``), "unreadable <what> (why)"."""
    try:
        return read_regular_file(path, limit)
    except FileNotFoundError:
        raise error(path, missing or f"{what} not found") from None
    except ReadRefused as e:
        raise error(path, f"unreadable {what} ({e.reason})") from None
    except OSError as e:
        raise error(path, f"unreadable {what} ({e.strerror or e})") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
