"""The Model menu: the bundled model and the user's fine-tunes, open a model file,
fine-tune on my pieces, show the models folder.

Choosing a model asks the bridge to load it (on a worker thread; the engine
swaps it in when it is ready, keeping the takes and the timeline). The menu
is rebuilt when a model loads or a fine-tune finishes, with the current one
checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from copilot_app.ui.finetune import FineTuneDialog
from copilot_app.ui.models import ModelEntry, all_models, same_path


class ModelMenu(QObject):
    """The menu and the fine-tune dialog it opens (see module docstring)."""

    switchRequested = Signal(str)   # path of the model to load
    styleCreated = Signal(str)      # path of a style the fine-tune dialog learned
    styleRequested = Signal(str)    # the user wants to use that style now
    message = Signal(str)           # for the status bar

    def __init__(self, menu: QMenu, window: QWidget, models_dir: Path, current: Callable[[], str | None],
                 extra_model: Path | None = None) -> None:
        super().__init__(window)
        self.menu = menu
        self.window = window
        self.models_dir = models_dir
        self._current = current          # the model path the bridge loaded last
        self.extra_model = extra_model   # a --model file or one opened from the menu
        self.finetune_dialog: FineTuneDialog | None = None
        self.group = QActionGroup(self)
        self.act_open_model = self._action("Open model &file…", self.open_model_file)
        self.act_finetune = self._action("&Fine-tune on my pieces…", self.open_finetune)
        self.act_models_folder = self._action("Show models &folder", self.show_models_folder)

    def _action(self, text: str, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self.window)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def entries(self) -> list[ModelEntry]:
        current = self._current()
        return all_models(self.models_dir, self.extra_model or (Path(current) if current else None))

    def rebuild(self) -> None:
        self.menu.clear()
        self.group = QActionGroup(self)
        self.group.setExclusive(True)
        current = self._current()
        entries = self.entries()
        if not entries:
            self.menu.addAction("(no models yet)").setEnabled(False)
        for entry in entries:
            a = QAction(entry.label, self.group)
            a.setCheckable(True)
            a.setData(str(entry.path))
            a.setChecked(current is not None and same_path(entry.path, Path(current)))
            a.triggered.connect(lambda _c=False, p=str(entry.path): self.switchRequested.emit(p))
            self.menu.addAction(a)
        self.menu.addSeparator()
        for a in (self.act_open_model, self.act_finetune, self.act_models_folder):
            self.menu.addAction(a)

    def paths(self) -> list[str]:
        return [a.data() for a in self.group.actions()]

    def open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open a model", str(self.models_dir),
                                              "Checkpoints (*.safetensors)")
        if path:
            self.extra_model = Path(path)
            self.switchRequested.emit(path)

    def show_models_folder(self) -> bool:
        """Open the models folder in the file manager; say so in the status bar when that fails."""
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.message.emit(f"Cannot create the models folder {self.models_dir}: {exc.strerror or exc}")
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.models_dir))):
            self.message.emit(f"Could not open a file manager; the models folder is {self.models_dir}")
            return False
        return True

    def open_finetune(self, kind: str | None = None) -> FineTuneDialog:
        """The dialog; ``kind`` ("model" or "style") sets what it learns unless a run is going."""
        if self.finetune_dialog is None:
            current = self._current()
            dialog = FineTuneDialog(self.models_dir, self.entries(), Path(current) if current else None,
                                    self.window)
            dialog.modelCreated.connect(self._model_created)
            dialog.switchRequested.connect(self.switchRequested.emit)
            dialog.runFailed.connect(self.message.emit)
            dialog.styleCreated.connect(self._style_created)
            dialog.styleRequested.connect(self.styleRequested.emit)
            self.finetune_dialog = dialog
        if kind is not None and self.finetune_dialog.state != "running":
            self.finetune_dialog.set_kind(kind)
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        return self.finetune_dialog

    def _model_created(self, path: str) -> None:
        self.rebuild()
        if self.finetune_dialog is not None:
            self.finetune_dialog.add_bases(self.entries())
        self.message.emit(f"New model ready: {Path(path).parent.name} (Model menu)")

    def _style_created(self, path: str) -> None:
        self.styleCreated.emit(path)
        self.message.emit(f"New style ready: {Path(path).parent.name} (Style menu)")

    def close(self) -> None:
        if self.finetune_dialog is not None:
            self.finetune_dialog.stop_and_wait()
