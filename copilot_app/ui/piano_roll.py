"""The live piano roll: your notes and the continuation, bar lines and a playhead.

Time runs left to right in quarter notes of the session (the engine's grid);
pitch bottom to top. The view follows the playhead a page at a time and fits
its pitch range to what is on screen. Painted with QPainter on every timer
tick of the main window (about 30 per second); nothing here touches the engine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from copilot_app.engine.session_model import Notes, TakeView
from model.tokens.config import PITCH_RANGE

PLAYER_COLOUR = QColor("#4aa3f0")       # your notes
TAKE_COLOUR = QColor("#f0a030")         # the continuation
SELECTED_OUTLINE = QColor("#ffffff")    # the take selected in the list: same colour, white edge
ACCEPTED_COLOUR = QColor("#58c27d")
PLAYHEAD_COLOUR = QColor("#ff4d4d")
BACKGROUND = QColor("#1d1f24")
BLACK_KEY_LANE = QColor("#181a1e")
BAR_LINE = QColor("#6b7280")
BEAT_LINE = QColor("#30343b")
NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
BLACK = {1, 3, 6, 8, 10}
GUTTER = 34
MIN_BARS, MAX_BARS = 8, 16
IDLE_BARS = 2  # bars of silence after the last note before the view stops following the playhead
EMPTY_HINT = ("Play a phrase — on your MIDI keyboard, the keys below or your computer keyboard — and pause:\n"
              "the continuation appears here, and plays on your MIDI output.")


@dataclass
class RollNote:
    start: float            # quarters
    end: float | None       # None while the key is held
    pitch: int


@dataclass
class RollState:
    played: list[RollNote] = field(default_factory=list)  # your notes
    takes: list[TakeView] = field(default_factory=list)  # the takes of this timeline, as last sent


class PianoRoll(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = RollState()
        self.playhead = 0.0
        self.bar_quarters = 4.0
        self.beat_quarters = 1.0
        self.selected: int | None = None  # number of the take selected in the list
        self.setToolTip("Your notes (blue) and the answers (orange; accepted: green) on the bars")
        self.busy = False
        self.setMinimumSize(480, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setObjectName("pianoRoll")

    # -- data -------------------------------------------------------------------
    def note_on(self, quarters: float, pitch: int) -> None:
        self.close_note(quarters, pitch)  # a re-strike ends the previous one
        self.state.played.append(RollNote(quarters, None, pitch))
        self._trim()
        self.update()

    def note_off(self, quarters: float, pitch: int) -> None:
        self.close_note(quarters, pitch)
        self.update()

    def close_note(self, quarters: float, pitch: int) -> None:
        for note in reversed(self.state.played):
            if note.pitch == pitch and note.end is None:
                note.end = max(quarters, note.start + 1 / 24)
                return

    def release_all(self, quarters: float) -> None:
        for note in self.state.played:
            if note.end is None:
                note.end = max(quarters, note.start + 1 / 24)
        self.update()

    def add_phrase(self, notes: list[tuple[float, float, int]]) -> None:
        self.state.played.extend(RollNote(s, e, p) for s, e, p in notes)
        self.update()

    def show_takes(self, views: list[TakeView]) -> None:
        """The takes to draw, each with the variation auditioned last."""
        self.state.takes = list(views)
        self.update()

    def remove_take(self, number: int) -> None:
        self.state.takes = [t for t in self.state.takes if t.take.number != number]
        if self.selected == number:
            self.selected = None
        self.update()

    def clear(self) -> None:
        self.state = RollState()
        self.update()

    def set_meter(self, beats_per_bar: int, quarters_per_beat: float) -> None:
        self.bar_quarters = beats_per_bar * quarters_per_beat
        self.beat_quarters = quarters_per_beat
        self.update()

    def set_playhead(self, quarters: float) -> None:
        if abs(quarters - self.playhead) > 1e-4:
            self.playhead = quarters
            self.update()

    def _trim(self) -> None:
        # Keep a long session cheap to paint: the last few thousand notes are plenty.
        if len(self.state.played) > 4000:
            del self.state.played[:1000]

    # -- geometry ---------------------------------------------------------------
    def content_end(self) -> float:
        ends = [n.end if n.end is not None else self.playhead for n in self.state.played]
        for take in self.state.takes:
            ends += [(n.start + n.duration) / 24 for n in _shown(take)]
        return max(ends, default=0.0)

    def view_range(self) -> tuple[float, float]:
        """(left, right) in quarters, on bar lines.

        The view ends a bar after the playhead or the last note, whichever is
        later, and starts at the first bar of the notes still in reach (8 to
        16 bars wide), so a phrase and its answer are seen together. Once the
        playhead has run two bars past everything, the view stays on the last
        phrase and answer instead of scrolling on into emptiness.
        """
        bar = self.bar_quarters
        has_content = bool(self.state.played or self.state.takes)
        content = self.content_end()
        idle = has_content and self.playhead > content + IDLE_BARS * bar
        focus = content if idle else max(self.playhead, content)
        right_bar = math.floor(focus / bar + 1e-9) + 2
        reach = (right_bar - MAX_BARS) * bar
        starts = [n.start for n in self.state.played
                  if (n.end if n.end is not None else self.playhead) >= reach]
        starts += [n.start / 24 for t in self.state.takes for n in _shown(t) if (n.start + n.duration) / 24 >= reach]
        if not starts:  # nothing in reach: a plain page that follows the playhead
            left_bar = max(0, right_bar - MIN_BARS)
            return left_bar * bar, (left_bar + MIN_BARS) * bar
        first_bar = math.floor(min(starts) / bar + 1e-9)
        left_bar = min(max(first_bar, right_bar - MAX_BARS), right_bar - MIN_BARS)
        lower = min(0, first_bar)  # never show bars before the session (or a loaded file) began
        if left_bar < lower:
            left_bar = lower
            right_bar = max(right_bar, left_bar + MIN_BARS)
        return left_bar * bar, right_bar * bar

    def pitch_range(self, left: float, right: float) -> tuple[int, int]:
        pitches = [n.pitch for n in self.state.played
                   if (n.end if n.end is not None else self.playhead) >= left and n.start <= right]
        for take in self.state.takes:
            pitches += [n.pitch for n in _shown(take) if left <= n.start / 24 <= right]
        if not pitches:
            return 48, 84
        low, high = min(pitches) - 2, max(pitches) + 2
        if high - low < 24:
            pad = (24 - (high - low)) // 2
            low, high = low - pad, low - pad + 24
        return max(PITCH_RANGE[0], low), min(PITCH_RANGE[1], high)

    # -- painting ---------------------------------------------------------------
    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), BACKGROUND)
        left, right = self.view_range()
        low, high = self.pitch_range(left, right)
        lanes = high - low + 1
        lane_h = (h - 18) / lanes
        top = 18.0
        roll_w = w - GUTTER

        def x_of(q: float) -> float:
            return GUTTER + (q - left) / (right - left) * roll_w

        def y_of(pitch: int) -> float:
            return top + (high - pitch) * lane_h

        # pitch lanes and the gutter's names
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, min(8.0, lane_h * 0.8)))
        p.setFont(small)
        for pitch in range(low, high + 1):
            y = y_of(pitch)
            if pitch % 12 in BLACK:
                p.fillRect(QRectF(GUTTER, y, roll_w, lane_h), BLACK_KEY_LANE)
            if pitch % 12 == 0:
                p.setPen(QColor("#9aa1ab"))
                p.drawText(QRectF(2, y - 2, GUTTER - 4, lane_h + 4),
                           Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                           f"C{pitch // 12 - 1}")
                p.setPen(QPen(BEAT_LINE, 1))
                p.drawLine(int(GUTTER), int(y + lane_h), w, int(y + lane_h))

        # beat and bar lines, bar numbers on top
        beat = self.beat_quarters
        q = math.ceil(left / beat - 1e-9) * beat
        while q <= right:
            x = x_of(q)
            on_bar = abs(q / self.bar_quarters - round(q / self.bar_quarters)) < 1e-6
            p.setPen(QPen(BAR_LINE if on_bar else BEAT_LINE, 2 if on_bar else 1))
            p.drawLine(int(x), int(top), int(x), h)
            if on_bar:
                p.setPen(QColor("#c5cad3"))
                p.drawText(int(x) + 3, 13, str(int(round(q / self.bar_quarters)) + 1))
            q += beat

        # notes: yours, then the takes (the selected one on top)
        for note in self.state.played:
            end = note.end if note.end is not None else self.playhead
            if end < left or note.start > right or not low <= note.pitch <= high:
                continue
            self._note(p, x_of(note.start), x_of(end), y_of(note.pitch), lane_h, PLAYER_COLOUR,
                       held=note.end is None)
        takes = sorted(self.state.takes, key=lambda t: t.take.number == self.selected)
        for take in takes:
            selected = take.take.number == self.selected
            colour = ACCEPTED_COLOUR if take.accepted == take.auditioned else TAKE_COLOUR
            if self.selected is not None and not selected:
                colour = colour.darker(150)  # older takes step back
            outline = SELECTED_OUTLINE if selected else None
            for n in _shown(take):
                s, e = n.start / 24, (n.start + n.duration) / 24
                if e < left or s > right or not low <= n.pitch <= high:
                    continue
                self._note(p, x_of(s), x_of(e), y_of(n.pitch), lane_h, colour, outline=outline)

        if not self.state.played and not self.state.takes:
            p.setPen(QColor("#9aa1ab"))
            p.drawText(QRectF(GUTTER, top, roll_w, h - top), Qt.AlignmentFlag.AlignCenter, EMPTY_HINT)

        # playhead
        if left <= self.playhead <= right:
            x = x_of(self.playhead)
            p.setPen(QPen(PLAYHEAD_COLOUR, 2))
            p.drawLine(int(x), 0, int(x), h)
        elif self.playhead > right:  # parked on the last answer: say where the time is
            p.setPen(PLAYHEAD_COLOUR)
            p.drawText(QRectF(GUTTER, 2, roll_w - 6, 14), Qt.AlignmentFlag.AlignRight,
                       f"now: bar {int(self.playhead // self.bar_quarters) + 1} ▶")

        # legend
        p.setFont(self.font())
        self._legend(p, w)
        p.end()

    def _note(self, p: QPainter, x0: float, x1: float, y: float, lane_h: float, colour: QColor,
              held: bool = False, outline: QColor | None = None) -> None:
        rect = QRectF(x0, y + 1, max(3.0, x1 - x0 - 1), max(2.0, lane_h - 2))
        p.fillRect(rect, colour.lighter(125) if held else colour)
        p.setPen(QPen(outline or colour.darker(160), 1))
        p.drawRect(rect)

    def _legend(self, p: QPainter, w: int) -> None:
        items = [("You", PLAYER_COLOUR), ("Continuation", TAKE_COLOUR), ("Accepted", ACCEPTED_COLOUR)]
        if self.busy:
            items.insert(0, ("thinking…", PLAYHEAD_COLOUR))
        metrics = p.fontMetrics()
        total = sum(metrics.horizontalAdvance(label) + 26 for label, _ in items) + 6
        h = self.height()
        box = QRectF(w - total - 8, h - 24, total, 20)
        p.fillRect(box, QColor(29, 31, 36, 220))
        x = box.left() + 6
        for label, colour in items:
            p.fillRect(QRectF(x, box.top() + 5, 10, 10), colour)
            x += 14
            p.setPen(QColor("#e6e9ee"))
            p.drawText(int(x), int(box.top() + 15), label)
            x += metrics.horizontalAdvance(label) + 12


def _shown(view: TakeView) -> Notes:
    """The notes of a take the roll draws: the variation auditioned last."""
    return view.take.notes(view.auditioned)
