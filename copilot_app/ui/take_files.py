"""Takes as .mid files: written atomically in the background as soon as a take is complete.

A drag into a DAW must hand over a file URL the moment the mouse moves; the
file is written before that, on a worker thread, into a cache folder under
the system temp folder, so starting a drag only builds the mime data from a
path that exists. File > Export take… writes the same bytes where the user
says, on the same worker. Files are named after the take
(``copilot-take-3-v1.mid``), which is the clip name DAWs show; take numbers
never repeat within a session, and each app run gets its own folder. A take
is written in the tempo and meter it was made in (it carries them).
"""
from __future__ import annotations

import logging
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from copilot_app.engine.clock import Meter
from copilot_app.engine.session_model import Take
from copilot_app.engine.take_export import restrikes_end_notes
from model.tokens.config import TICKS_PER_QUARTER
from model.tokens.midi_io import write_notes
from model.tokens.performance import GridNote

log = logging.getLogger(__name__)

TRACK_NAME = "Composer Copilot"


def take_grid_notes(take: Take, index: int, meter: Meter | None = None) -> list[GridNote]:
    """A variation's notes shifted so the file starts on the bar line before the take."""
    meter = meter or take.meter
    bar_ticks = int(round(meter.numerator * meter.quarters_per_beat() * TICKS_PER_QUARTER))
    start_tick = int(round(take.start_quarters * TICKS_PER_QUARTER))
    origin = (start_tick // bar_ticks) * bar_ticks if bar_ticks > 0 else start_tick
    return restrikes_end_notes(sorted(GridNote(n.start - origin, n.duration, n.pitch, n.velocity)
                                       for n in take.variations[index] if n.start >= origin))


def write_take(path: str | Path, take: Take, index: int) -> Path:
    """Write one variation, in the take's tempo and meter, as a type-1 .mid (atomic: temp file + rename)."""
    path = Path(path)
    meter = take.meter
    write_notes(path, take_grid_notes(take, index), [(0, meter.numerator, meter.denominator)],
                take.tempo_bpm, name=f"{TRACK_NAME} take {take.number}")
    return path


def drag_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / "composer-copilot-takes"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def take_file_name(take: Take, index: int) -> str:
    return f"copilot-take-{take.number}-v{index + 1}.mid"


class TakeFiles:
    """Each take's variations written in the background (see module docstring).

    ``add`` may be called from any thread (the engine thread calls it when a
    take is complete); ``path`` and ``path_or_write`` from the GUI thread.
    Takes are known by number: numbers never repeat within a session.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._root = folder
        self._lock = threading.Lock()
        self._files: dict[int, dict[int, Future]] = {}  # take number -> {variation: future of the path}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copilot-files")

    def add(self, take: Take) -> None:
        """Queue every variation of a complete take for writing; returns at once."""
        with self._lock:
            if take.number in self._files:
                return
            futures: dict[int, Future] = {}
            self._files[take.number] = futures
            for index in range(len(take.variations)):
                try:
                    futures[index] = self._worker.submit(self._write, take, index)
                except RuntimeError:  # closed
                    return

    def path(self, take: Take | int, index: int) -> Path | None:
        """The written file, or None if it is not written (yet, or the write failed)."""
        number = take.number if isinstance(take, Take) else take
        with self._lock:
            future = self._files.get(number, {}).get(index)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    def ready(self, take: Take) -> bool:
        """Every variation of ``take`` has its file (tests, status)."""
        return all(self.path(take, i) is not None for i in range(len(take.variations)))

    def path_or_write(self, take: Take, index: int) -> Path:
        """The file for a drag: the one written in the background, else written now.

        The synchronous write is a fallback only: a drag that starts before
        the worker got to this take (within milliseconds of its arrival), a
        take that never went through ``add``, or a failed background write.
        QDrag needs its mime data before it starts, so the file must exist
        now; one small .mid is a millisecond or two.
        """
        ready = self.path(take, index)
        return ready if ready is not None else self._write(take, index)

    def export(self, path: str | Path, take: Take, index: int,
               done: Callable[[Path | None, str | None], None]) -> None:
        """Write a take where the user said, on the worker; ``done(path, error)`` is called there."""
        def work() -> None:
            try:
                written = write_take(path, take, index)
            except Exception as exc:
                done(None, str(exc) or type(exc).__name__)
                return
            done(written, None)
        try:
            self._worker.submit(work)
        except RuntimeError:
            done(None, "the app is closing")

    def forget(self, take: Take | int) -> None:
        """Stop tracking a discarded take (its files stay: a DAW may still read them)."""
        number = take.number if isinstance(take, Take) else take
        with self._lock:
            self._files.pop(number, None)

    def close(self) -> None:
        self._worker.shutdown(wait=False)

    # -- worker thread ---------------------------------------------------------
    def _folder(self) -> Path:
        with self._lock:  # the worker and a drag's fallback may both get here first
            if self._root is None:
                # One folder per app run: take numbers start again in the next run.
                self._root = Path(tempfile.mkdtemp(prefix="run-", dir=drag_folder()))
            return self._root

    def _write(self, take: Take, index: int) -> Path:
        try:
            return write_take(self._folder() / take_file_name(take, index), take, index)
        except Exception:
            log.exception("writing take %s", take.number)
            raise
