"""The takes list: audition, accept, discard, export and drag a take into a DAW.

A drag carries a ``file://`` URL to a .mid written atomically (tempo, time
signature, track name) in the app's temp folder, which is what DAWs and file
managers accept; File > Export take… writes the same file where the user says.
The files are written in the background when a take arrives
(copilot_app/ui/take_files.py); a drag only wraps an existing path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDrag, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget, QApplication)

from copilot_app.engine.session import Take


@dataclass(frozen=True)
class TakeRef:
    """One row of the list: a take and one of its variations."""

    take: Take
    index: int

    @property
    def notes(self):
        return self.take.variations[self.index]


def file_mime_data(path: str | Path) -> QMimeData:
    """Mime data for a drag: a file URL (and the path as text) to a .mid that exists."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    mime.setText(str(path))
    return mime


def describe(ref: TakeRef) -> str:
    take = ref.take
    n = len(ref.notes)
    text = f"Take {take.number} · var {ref.index + 1}/{len(take.variations)} · {n} note{'s' * (n != 1)}"
    marks = []
    if take.chosen == ref.index:
        marks.append("▶" if not take.accepted else "✓ accepted")
    if take.interrupted and take.chosen == ref.index:
        marks.append("cut")
    return text + ("  " + " ".join(marks) if marks else "")


class TakeList(QListWidget):
    """Rows of (take, variation); dragging a row drags its .mid file."""

    def __init__(self, mime_for, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mime_for = mime_for  # TakeRef -> QMimeData
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)

    def startDrag(self, supported) -> None:  # noqa: N802 (Qt name)
        item = self.currentItem()
        if item is None:
            return
        ref = item.data(Qt.ItemDataRole.UserRole)
        drag = QDrag(self)
        drag.setMimeData(self._mime_for(ref))
        drag.setPixmap(_drag_pixmap(describe(ref)))
        drag.exec(Qt.DropAction.CopyAction)


class DragHandle(QLabel):
    """A grip that drags the selected take, for DAWs that prefer a big target."""

    def __init__(self, mime_for, parent: QWidget | None = None) -> None:
        super().__init__("⠿ Drag take to your DAW", parent)
        self._mime_for = mime_for  # () -> QMimeData | None
        self._press: QPoint | None = None
        self.setObjectName("dragHandle")
        self.setToolTip("Drag the selected take into a DAW or a folder as a .mid file")
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("#dragHandle { border: 1px dashed #8a8f98; border-radius: 4px; padding: 6px; }")

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self._press = event.position().toPoint()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._press is None:
            return
        if (event.position().toPoint() - self._press).manhattanLength() < QApplication.startDragDistance():
            return
        self._press = None
        mime = self._mime_for()
        if mime is None:
            return
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.setPixmap(_drag_pixmap(Path(mime.urls()[0].toLocalFile()).name))
        drag.exec(Qt.DropAction.CopyAction)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._press = None


def _drag_pixmap(text: str) -> QPixmap:
    pix = QPixmap(260, 28)
    pix.fill(QColor("#f0a030"))
    p = QPainter(pix)
    p.setPen(QColor("#1d1f24"))
    p.drawText(pix.rect().adjusted(8, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, "♪ " + text)
    p.end()
    return pix


class TakesPanel(QWidget):
    """The list plus its buttons; the main window connects the signals to the bridge."""

    auditionRequested = Signal(object)  # TakeRef
    acceptRequested = Signal(object)
    discardRequested = Signal(object)
    exportRequested = Signal(object)
    selectionChanged = Signal(object)   # TakeRef | None

    def __init__(self, mime_for, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mime_for = mime_for
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Takes</b>")
        layout.addWidget(title)
        self.list = TakeList(mime_for, self)
        self.list.setMinimumWidth(250)
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.audition_button = QPushButton("▶ Audition")
        self.accept_button = QPushButton("✓ Accept")
        self.discard_button = QPushButton("✕ Discard")
        for b in (self.audition_button, self.accept_button, self.discard_button):
            row.addWidget(b)
        layout.addLayout(row)
        self.export_button = QPushButton("Export take…")
        layout.addWidget(self.export_button)
        self.handle = DragHandle(self._selected_mime, self)
        layout.addWidget(self.handle)
        self.audition_button.clicked.connect(lambda: self._emit(self.auditionRequested))
        self.accept_button.clicked.connect(lambda: self._emit(self.acceptRequested))
        self.discard_button.clicked.connect(lambda: self._emit(self.discardRequested))
        self.export_button.clicked.connect(lambda: self._emit(self.exportRequested))
        self.list.itemDoubleClicked.connect(lambda _i: self._emit(self.auditionRequested))
        self.list.currentItemChanged.connect(lambda *_: self._selection_changed())
        self._update_buttons()

    # -- rows -------------------------------------------------------------------
    def refs(self) -> list[TakeRef]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def takes(self) -> list[Take]:
        seen: list[Take] = []
        for ref in self.refs():
            if not any(t is ref.take for t in seen):
                seen.append(ref.take)
        return seen

    def show_take(self, take: Take) -> None:
        """Add a new take's rows, or refresh the rows of one already listed."""
        rows = [i for i in range(self.list.count())
                if self.list.item(i).data(Qt.ItemDataRole.UserRole).take is take]
        if rows:
            for i in rows:
                item = self.list.item(i)
                item.setText(describe(item.data(Qt.ItemDataRole.UserRole)))
                _style(item)
            return
        first = None
        for index in range(len(take.variations)):
            ref = TakeRef(take, index)
            item = QListWidgetItem(describe(ref))
            item.setData(Qt.ItemDataRole.UserRole, ref)
            item.setToolTip("Double-click to audition; drag into a DAW")
            _style(item)
            self.list.insertItem(index, item)  # newest take on top
            first = first or item
        self.list.setCurrentItem(first)
        self._update_buttons()

    def remove_take(self, take: Take) -> None:
        for i in reversed(range(self.list.count())):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole).take is take:
                self.list.takeItem(i)
        self._update_buttons()

    def selected(self) -> TakeRef | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select(self, take: Take, index: int) -> None:
        for i in range(self.list.count()):
            ref = self.list.item(i).data(Qt.ItemDataRole.UserRole)
            if ref.take is take and ref.index == index:
                self.list.setCurrentRow(i)
                return

    def _selected_mime(self) -> QMimeData | None:
        ref = self.selected()
        return None if ref is None else self._mime_for(ref)

    def _emit(self, signal) -> None:
        ref = self.selected()
        if ref is not None:
            signal.emit(ref)

    def _selection_changed(self) -> None:
        self._update_buttons()
        self.selectionChanged.emit(self.selected())

    def _update_buttons(self) -> None:
        has = self.selected() is not None
        for b in (self.audition_button, self.accept_button, self.discard_button, self.export_button):
            b.setEnabled(has)
        self.handle.setEnabled(has)


def _style(item: QListWidgetItem) -> None:
    ref: TakeRef = item.data(Qt.ItemDataRole.UserRole)
    font = item.font()
    font.setBold(ref.take.chosen == ref.index)
    item.setFont(font)
    if ref.take.accepted and ref.take.chosen == ref.index:
        item.setForeground(QColor("#2e9d5b"))
