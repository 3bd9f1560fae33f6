"""The takes list: audition, accept, discard, sample again, export and drag a take into a DAW.

The list renders the engine's snapshots (``render``): one row per variation
of each take, newest take on top, "▶" on the variation auditioned last and
"✓ accepted" on the accepted one (the two are independent: auditioning
another variation never moves the accepted mark). Rows know takes by their
number, which never repeats within a session. A take made by "Regenerate
from bar N" or "More like this" says so on a second line of its rows
(``Take.derived_from``).

Regenerate keeps the selected variation's bars before bar N and samples the
rest again; its spin box offers bars 1 to ``take_bars``: the bars the take's
notes reach, or the current Length setting if that is more (a take whose
last bars are silent still has them; the engine answers in one line when a
bar is past the take's end). More like this samples new variations of the
take's bars after hearing the selected variation.

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
from PySide6.QtGui import QBrush, QColor, QDrag, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget, QApplication)

from copilot_app.engine.session_model import Take, TakeView
from model.tokens.config import TICKS_PER_QUARTER


@dataclass(frozen=True)
class TakeRef:
    """One row of the list: a take and one of its variations."""

    take: Take
    index: int

    @property
    def notes(self):
        return self.take.variations[self.index]

    @property
    def number(self) -> int:
        return self.take.number


def file_mime_data(path: str | Path) -> QMimeData:
    """Mime data for a drag: a file URL (and the path as text) to a .mid that exists."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    mime.setText(str(path))
    return mime


def take_bars(take: Take, at_least: int = 1) -> int:
    """How many bars ``take`` spans: from its first bar to the bar of its last note
    onset (in any variation), or ``at_least`` if that is more."""
    meter = take.meter
    bar = max(1, round(meter.numerator * meter.quarters_per_beat() * TICKS_PER_QUARTER))
    first = round(take.start_quarters * TICKS_PER_QUARTER) // bar
    last = max((n.start for row in take.variations for n in row), default=first * bar) // bar
    return max(at_least, last - first + 1, 1)


def describe(view: TakeView, index: int) -> str:
    take = view.take
    n = len(take.variations[index])
    text = f"Take {take.number} · var {index + 1}/{len(take.variations)} · {n} note{'s' * (n != 1)}"
    marks = []
    if view.auditioned == index:
        marks.append("▶")
        if view.interrupted:
            marks.append("cut")
    if view.accepted == index:
        marks.append("✓ accepted")
    text += "  " + " ".join(marks) if marks else ""
    return text + (f"\n    ↳ {take.derived_from}" if take.derived_from else "")


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
        drag.setPixmap(_drag_pixmap(item.text()))
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
    regenerateRequested = Signal(object, int)  # TakeRef, the first bar sampled again
    moreLikeRequested = Signal(object)         # TakeRef: the variation the new ones follow
    selectionChanged = Signal(object)   # TakeRef | None

    def __init__(self, mime_for, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mime_for = mime_for
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Takes</b>")
        layout.addWidget(title)
        self.list = TakeList(mime_for, self)
        self.list.setToolTip("Your takes, newest last: click a variation to select it, double-click to hear it, "
                             "drag it into a DAW")
        self.list.setMinimumWidth(250)
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.audition_button = QPushButton("▶ Audition")
        self.accept_button = QPushButton("✓ Accept")
        self.discard_button = QPushButton("✕ Discard")
        self.audition_button.setToolTip("Play the selected variation again (from the next bar)")
        self.accept_button.setToolTip("Keep the selected variation: the next answer continues it")
        self.discard_button.setToolTip("Forget the selected take")
        for b in (self.audition_button, self.accept_button, self.discard_button):
            row.addWidget(b)
        layout.addLayout(row)
        again = QHBoxLayout()
        self.regenerate_button = QPushButton("↻ Regenerate from bar")
        self.regenerate_button.setToolTip("Keep the selected variation before this bar and sample the rest "
                                          "again as a new take (bar 1: the whole take again)")
        self.regenerate_bar = QSpinBox()
        self.regenerate_bar.setRange(1, 2)
        self.regenerate_bar.setValue(2)
        self.regenerate_bar.setToolTip("The first bar sampled again; the bars before it are kept")
        self.more_button = QPushButton("More like this")
        self.more_button.setToolTip("New variations of the selected take's bars, sampled after the model has "
                                    "heard the selected variation")
        again.addWidget(self.regenerate_button)
        again.addWidget(self.regenerate_bar)
        again.addWidget(self.more_button, 1)
        layout.addLayout(again)
        self.bars_hint = 1  # the Length setting now: a take has at least these bars (take_bars)
        self.export_button = QPushButton("Export take…")
        self.export_button.setToolTip("Save the selected variation as a .mid file (Ctrl+E)")
        layout.addWidget(self.export_button)
        self.handle = DragHandle(self._selected_mime, self)
        layout.addWidget(self.handle)
        self.audition_button.clicked.connect(lambda: self._emit(self.auditionRequested))
        self.accept_button.clicked.connect(lambda: self._emit(self.acceptRequested))
        self.discard_button.clicked.connect(lambda: self._emit(self.discardRequested))
        self.export_button.clicked.connect(lambda: self._emit(self.exportRequested))
        self.regenerate_button.clicked.connect(self._regenerate)
        self.more_button.clicked.connect(lambda: self._emit(self.moreLikeRequested))
        self.list.itemDoubleClicked.connect(lambda _i: self._emit(self.auditionRequested))
        self.list.currentItemChanged.connect(lambda *_: self._selection_changed())
        self._views: dict[int, TakeView] = {}   # take number -> as the last snapshot had it
        self._discarded: set[int] = set()
        self._update_buttons()

    # -- rows ----------------------------------------------------------------------
    def refs(self) -> list[TakeRef]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def takes(self) -> list[Take]:
        """The takes listed, newest first."""
        seen: dict[int, Take] = {}
        for ref in self.refs():
            seen.setdefault(ref.take.number, ref.take)
        return list(seen.values())

    def view(self, number: int) -> TakeView | None:
        return self._views.get(number)

    def render(self, views: tuple[TakeView, ...], bars: int | None = None) -> list[Take]:
        """Show the session's takes as the snapshot has them (``bars``: its Length
        setting, see ``take_bars``); returns the takes new to the list."""
        if bars is not None:
            self.bars_hint = bars
        wanted = {v.take.number: v for v in views if v.take.number not in self._discarded}
        for i in reversed(range(self.list.count())):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole).number not in wanted:
                self.list.takeItem(i)
        new = []
        for number, view in wanted.items():
            if number in self._views:
                self._views[number] = view
                continue
            self._views[number] = view
            new.append(view.take)
            for index in range(len(view.take.variations)):
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, TakeRef(view.take, index))
                tip = "Double-click to audition; drag into a DAW"
                if view.take.derived_from:
                    tip += f"\nMade from {view.take.derived_from}"
                item.setToolTip(tip)
                self.list.insertItem(index, item)  # newest take on top
        for number in list(self._views):
            if number not in wanted:
                del self._views[number]
        for i in range(self.list.count()):
            item = self.list.item(i)
            ref = item.data(Qt.ItemDataRole.UserRole)
            view = self._views[ref.number]
            item.setText(describe(view, ref.index))
            _style(item, view, ref.index)
        self._update_buttons()
        return new

    def remove_take(self, take: Take | int) -> None:
        """Drop a take's rows now (discarded: a snapshot sent before the discard must not bring them back)."""
        number = take.number if isinstance(take, Take) else take
        self._discarded.add(number)
        self._views.pop(number, None)
        for i in reversed(range(self.list.count())):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole).number == number:
                self.list.takeItem(i)
        self._update_buttons()

    def restore_take(self, take: Take | int) -> None:
        """A discarded take came back (Undo discard): the next snapshot lists it again."""
        self._discarded.discard(take.number if isinstance(take, Take) else take)

    def clear(self) -> None:
        """No rows at all (another session: its take numbers start over)."""
        self.list.clear()
        self._views.clear()
        self._discarded.clear()
        self._update_buttons()

    def selected(self) -> TakeRef | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select(self, take: Take | int, index: int) -> None:
        number = take.number if isinstance(take, Take) else take
        for i in range(self.list.count()):
            ref = self.list.item(i).data(Qt.ItemDataRole.UserRole)
            if ref.number == number and ref.index == index:
                self.list.setCurrentRow(i)
                return

    def _selected_mime(self) -> QMimeData | None:
        ref = self.selected()
        return None if ref is None else self._mime_for(ref)

    def _emit(self, signal) -> None:
        ref = self.selected()
        if ref is not None:
            signal.emit(ref)

    def _regenerate(self) -> None:
        ref = self.selected()
        if ref is not None:
            self.regenerateRequested.emit(ref, self.regenerate_bar.value())

    def _selection_changed(self) -> None:
        self._update_buttons()
        self.selectionChanged.emit(self.selected())

    def _update_buttons(self) -> None:
        has = self.selected() is not None
        for b in (self.audition_button, self.accept_button, self.discard_button, self.export_button,
                  self.regenerate_button, self.regenerate_bar, self.more_button):
            b.setEnabled(has)
        self.handle.setEnabled(has)
        ref = self.selected()
        if ref is not None:
            self.regenerate_bar.setMaximum(take_bars(ref.take, self.bars_hint))
            view = self._views.get(ref.number)
            if view is not None:
                used, why = ((view.accepted, "accepted") if view.accepted is not None
                             else (view.auditioned, "auditioned last"))
                self.more_button.setToolTip(f"New variations of take {ref.number}'s bars, sampled after the "
                                            f"model has heard variation {used + 1} ({why})")


def _style(item: QListWidgetItem, view: TakeView, index: int) -> None:
    font = item.font()
    font.setBold(view.auditioned == index)
    item.setFont(font)
    # An empty brush: the palette's text colour again once the mark moves away.
    item.setForeground(QBrush(QColor("#2e9d5b")) if view.accepted == index else QBrush())
