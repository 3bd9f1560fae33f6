"""The window's file commands: the session on disk, Open phrase…, and exports.

A mixin of ``MainWindow`` (which owns ``bridge``, ``store``, ``takes``,
``sessions_dir``, the ``exported``/``notice`` signals and ``show_error``): each
command asks for a path when none is given and hands the work to the engine
bridge, whose workers read and write files off the GUI thread.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from copilot_app.engine.session_store import latest_session, new_session_path
from copilot_app.ui.engine_bridge import safe_emit
from copilot_app.ui.settings_store import Keys
from copilot_app.ui.take_files import take_file_name
from copilot_app.ui.takes_panel import TakeRef, file_mime_data

EXAMPLE_PHRASES = Path(__file__).resolve().parents[2] / "resources" / "phrases"


class FileCommands:
    """File menu commands of the main window (see module docstring)."""

    # -- the session on disk ------------------------------------------------------------
    def _resume_session(self) -> None:
        """The session saved last comes back (or a new one starts); the engine reads and writes it."""
        if self.sessions_dir is None:
            return
        self.session_path = latest_session(self.sessions_dir) or new_session_path(self.sessions_dir)
        self.bridge.use_session(self.session_path)

    def new_session(self) -> None:
        """File > New session: no takes, numbers from 1; the current session stays saved."""
        self.session_path = new_session_path(self.sessions_dir) if self.sessions_dir is not None else None
        self.bridge.new_session(self.session_path)

    def open_session(self, path: str | None = None) -> None:
        """File > Open session…: a saved session's takes, phrases and accepted variations."""
        if path is None:
            folder = self.sessions_dir if self.sessions_dir is not None and self.sessions_dir.is_dir() else Path.home()
            path, _ = QFileDialog.getOpenFileName(self, "Open a session", str(folder),
                                                  "Composer Copilot sessions (*.json)")
            if not path:
                return
        self.session_path = Path(path)
        self._adopt_session_settings = True
        self.bridge.use_session(self.session_path, apply_settings=True)

    def export_accepted(self, path: str | None = None) -> None:
        """File > Export all accepted takes…: one .mid, one track each, written off the GUI thread."""
        snap = self.bridge.snapshot
        if snap is None or not any(v.accepted is not None for v in snap.takes):
            self.show_error("No accepted takes to export yet: accept a take first.", dialog=False)
            return
        if path is None:
            suggestion = str(Path.home() / "copilot-accepted-takes.mid")
            path, _ = QFileDialog.getSaveFileName(self, "Export all accepted takes", suggestion,
                                                  "MIDI file (*.mid)")
            if not path:
                return
            if not path.lower().endswith((".mid", ".midi")):
                path += ".mid"
        bridge = self.bridge

        def done(written: Path | None, tracks: int, error: str | None) -> None:  # on the worker
            if written is None:
                safe_emit(bridge.errorOccurred, f"export failed: {error}")
                return
            safe_emit(self.exported, str(written))
            safe_emit(self.notice, f"Exported {tracks} accepted take{'s' if tracks != 1 else ''} to {written}")
        self.bridge.export_accepted(path, done)

    def open_phrase(self) -> None:
        folder = self.store.get(Keys.OPEN_DIR)
        if not folder or not Path(folder).is_dir():
            folder = str(EXAMPLE_PHRASES if EXAMPLE_PHRASES.is_dir() else Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open a phrase to continue", folder,
                                              "MIDI files (*.mid *.midi)")
        if path:
            self.store.put(Keys.OPEN_DIR, str(Path(path).parent))  # the next Open starts there
            self.continue_file(path)

    def continue_file(self, path: str) -> None:
        """The file becomes what Continue answers, in its tempo and meter; it is answered at once."""
        self.statusBar().showMessage(f"Continuing {Path(path).name}…")
        self.bridge.continue_file(path)

    def _mime_for_ref(self, ref: TakeRef):
        """The drag's mime data: the take's file, already written in the background."""
        try:
            path = self.bridge.take_file(ref.take, ref.index)
        except Exception as exc:
            self.show_error(f"cannot write the take for dragging: {exc}", dialog=False)
            return None
        return file_mime_data(path)

    def export_take(self, ref: TakeRef | None = None, path: str | None = None) -> None:
        """File > Export take…: a dialog (unless ``path`` is given), then an atomic write off the GUI thread."""
        ref = ref if isinstance(ref, TakeRef) else self.takes.selected()
        if ref is None:
            self.show_error("No take to export yet: play a phrase first.", dialog=False)
            return
        if path is None:
            suggestion = str(Path.home() / take_file_name(ref.take, ref.index))
            path, _ = QFileDialog.getSaveFileName(self, "Export take", suggestion, "MIDI file (*.mid)")
            if not path:
                return
            if not path.lower().endswith((".mid", ".midi")):
                path += ".mid"
        bridge, number = self.bridge, ref.number

        def done(written: Path | None, error: str | None) -> None:  # on the file worker
            if written is None:
                safe_emit(bridge.errorOccurred, f"export failed: {error}")  # -> the status bar
                return
            safe_emit(self.exported, str(written))
            safe_emit(self.notice, f"Exported take {number} to {written}")
        self.bridge.files.export(path, ref.take, ref.index, done)
