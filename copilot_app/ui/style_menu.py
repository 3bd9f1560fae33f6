"""The Style menu: no style, every learned style, learn a style, show the styles folder.

Choosing a style asks the bridge to use it (read and checked on a worker
thread; the engine re-primes its context from the style's state, so the next
answer is in it, without reloading the model). Styles learned for another
model are listed but disabled: a style is a starting state for one set of
weights. The menu is rebuilt when a model or style loads and when a style
has been learned, with the current one checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices
from PySide6.QtWidgets import QMenu, QWidget

from copilot_app.ui.models import same_path
from copilot_app.ui.styles import StyleEntry, user_styles

NO_STYLE = ""  # what styleRequested carries for "No style"


class StyleMenu(QObject):
    """See the module docstring. ``current`` gives the style path in use (None:
    none), ``fingerprint`` the loaded model's (None: no model yet)."""

    styleRequested = Signal(str)   # path of the style to use; NO_STYLE for none
    learnRequested = Signal()      # open the fine-tune dialog set to learn a style
    blendRequested = Signal()      # open the blend dialog
    message = Signal(str)          # for the status bar
    offered = Signal(list)         # the style paths usable with the loaded model, after each rebuild

    def __init__(self, menu: QMenu, window: QWidget, styles_dir: Path, current: Callable[[], str | None],
                 fingerprint: Callable[[], str | None]) -> None:
        super().__init__(window)
        self.menu = menu
        self.window = window
        self.styles_dir = styles_dir
        self._current = current
        self._fingerprint = fingerprint
        self.group = QActionGroup(self)
        self.act_learn = self._action("&Learn a style from my pieces…", self.learnRequested.emit)
        self.act_blend = self._action("&Blend two styles…", self.blendRequested.emit)
        self.act_folder = self._action("Show styles &folder", self.show_styles_folder)

    def _action(self, text: str, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self.window)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def entries(self) -> list[StyleEntry]:
        return user_styles(self.styles_dir)

    def rebuild(self) -> None:
        self.menu.clear()
        self.group = QActionGroup(self)
        self.group.setExclusive(True)
        current, fingerprint = self._current(), self._fingerprint()
        none = QAction("&No style", self.group)
        none.setCheckable(True)
        none.setData(NO_STYLE)
        none.setChecked(current is None)
        none.setStatusTip("Answers start from the model's own empty state")
        none.triggered.connect(lambda _c=False: self.styleRequested.emit(NO_STYLE))
        self.menu.addAction(none)
        entries = self.entries()
        if entries:
            self.menu.addSeparator()
        for entry in entries:
            fits = fingerprint is None or entry.base_fingerprint == fingerprint
            a = QAction(entry.name if fits else f"{entry.name} (for another model)", self.group)
            a.setCheckable(True)
            a.setData(str(entry.path))
            a.setEnabled(fits)
            a.setChecked(current is not None and same_path(entry.path, Path(current)))
            a.triggered.connect(lambda _c=False, p=str(entry.path): self.styleRequested.emit(p))
            self.menu.addAction(a)
        self.menu.addSeparator()
        for a in (self.act_learn, self.act_blend, self.act_folder):
            self.menu.addAction(a)
        if fingerprint is not None:
            self.offered.emit([p for p in self.enabled_paths() if p != NO_STYLE])

    def paths(self) -> list[str]:
        """The style paths offered, in menu order (NO_STYLE first)."""
        return [a.data() for a in self.group.actions()]

    def enabled_paths(self) -> list[str]:
        return [a.data() for a in self.group.actions() if a.isEnabled()]

    def show_styles_folder(self) -> bool:
        """Open the styles folder in the file manager; say so in the status bar when that fails."""
        try:
            self.styles_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.message.emit(f"Cannot create the styles folder {self.styles_dir}: {exc.strerror or exc}")
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.styles_dir))):
            self.message.emit(f"Could not open a file manager; the styles folder is {self.styles_dir}")
            return False
        return True
