"""The session model: phrases, takes, variations, the accepted variation, take numbers.

One ``SessionModel`` lives as long as the app's engine, across model switches
and new timelines (meter or clock source changed), and only the engine
thread touches it. Everyone else sees it through immutable values:

* ``Take``: one answer, K variations of notes, with the tempo, meter and
  model it was made with (so its .mid file and its audition never depend on
  what the session does later);
* ``TakeView``: a take plus what the session did with it (which variation was
  auditioned last, which one was accepted, whether playback was cut);
* ``Phrase``: what an answer continues (played live, opened from a file, or a
  take's accepted variation joined to the bars before it);
* ``SessionSnapshot``: all of it plus the settings and the timeline, sent to
  the GUI after every change with the ``SessionEvent`` that caused it.

Take numbers come from a counter that never goes back within a session, so
two takes never share a number (list rows, exported file names), even after
discards, new timelines or a new model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from copilot_app.engine.clock import DEFAULT_BPM, InternalGrid, Meter, MidiClockGrid
from model.tokens.config import TICKS_PER_QUARTER
from model.tokens.streaming import DecodedNote

if TYPE_CHECKING:  # session.py imports this module
    from copilot_app.engine.session import SessionSettings

Notes = tuple[DecodedNote, ...]


@dataclass(frozen=True)
class Take:
    """One answer: K variations, notes in ticks on the timeline it was made on."""

    number: int
    start_quarters: float
    variations: tuple[Notes, ...]
    velocity: int
    tempo_bpm: float = DEFAULT_BPM    # quarters per minute when it was made
    meter: Meter = Meter()
    model: str = ""                   # the model that made it ("" unknown)
    timeline: int = 0                 # which timeline its ticks belong to
    context: Notes = ()               # the bars it answered, in the same ticks
    first_note_latency_s: float | None = None  # trigger -> first note handed to the Player
    prepared: bool = False            # sampled during the pause, before the trigger
    # How it was made when not as an answer: "take 3 variation 2 from bar 2"
    # (regenerated, the first bars kept) or "more like take 3" ("" otherwise).
    derived_from: str = ""

    def __post_init__(self) -> None:
        # Callers may pass lists; a take is frozen all the way down.
        object.__setattr__(self, "variations", tuple(tuple(v) for v in self.variations))
        object.__setattr__(self, "context", tuple(self.context))

    def notes(self, index: int = 0) -> Notes:
        return self.variations[index]


@dataclass(frozen=True)
class TakeView:
    """A take and what the session did with it (a row group of the takes list)."""

    take: Take
    auditioned: int = 0               # the variation played or auditioned last
    accepted: int | None = None       # the variation accepted, if any; auditioning never moves it
    interrupted: bool = False         # its playback was cut (barge-in)

    @property
    def number(self) -> int:
        return self.take.number


@dataclass(frozen=True)
class Phrase:
    """What answers continue: played, opened from a file, or an accepted take."""

    number: int
    source: str                       # "played", "file" or "accepted"
    name: str
    tempo_bpm: float
    meter: Meter
    notes: Notes = ()                 # as placed on the timeline (file and accepted phrases)


@dataclass(frozen=True)
class TimelineView:
    """Seconds -> quarters on the engine's grid, as a value the GUI can keep.

    A linear map from one anchor; an internal grid is exact, a MIDI-clock
    grid is re-sent as the DAW's clock moves (see ``LiveEngine``).
    """

    source: str = "internal"          # or "midi"
    bpm: float = DEFAULT_BPM          # quarters per minute
    meter: Meter = Meter()
    anchor_time: float = 0.0
    anchor_quarters: float = 0.0
    running: bool = True
    number: int = 0                   # which timeline (takes record theirs)

    @classmethod
    def of(cls, grid: InternalGrid | MidiClockGrid, now: float, number: int = 0) -> "TimelineView":
        if isinstance(grid, MidiClockGrid):
            return cls("midi", grid.bpm, grid.meter, now,
                       grid.beat_at(now) * grid.meter.quarters_per_beat(), grid.running, number)
        return cls("internal", grid.bpm, grid.meter, grid.origin, 0.0, True, number)

    def quarters_at(self, t: float) -> float:
        if not self.running:
            return self.anchor_quarters
        return self.anchor_quarters + (t - self.anchor_time) * self.bpm / 60.0

    @property
    def bar_quarters(self) -> float:
        return self.meter.numerator * self.meter.quarters_per_beat()


@dataclass(frozen=True)
class PlayedNote:
    """A note played into the engine, placed on its timeline (for the piano roll)."""

    on: bool
    pitch: int
    quarters: float


@dataclass(frozen=True)
class SessionEvent:
    """Why a snapshot was sent: "take" (a new one), "audition", "accept",
    "discard", "stop", "phrase" (a file opened: a new timeline), "timeline"
    (meter or clock source: a new timeline), "tempo" (same timeline, new
    tempo or a DAW's clock moved), "model", "style", "settings", "start", "undo" (a
    discarded take is back), "session" (a new or opened session: all new)."""

    kind: str
    take: int | None = None           # the take concerned
    variation: int | None = None


@dataclass(frozen=True)
class SessionSnapshot:
    """Everything the GUI shows of the session, at one moment (immutable)."""

    event: SessionEvent
    takes: tuple[TakeView, ...]       # oldest first
    playing: int | None               # number of the take whose notes the Player holds
    phrase: Phrase | None             # what the next answer continues
    timeline: TimelineView
    settings: "SessionSettings"       # a copy: changing it changes nothing in the engine
    model: str | None                 # the loaded model's name; None: no model
    metronome: bool = False
    discarded: tuple[int, ...] = ()   # numbers of the takes Undo discard can bring back, last one last
    heard_key: str | None = None      # the key the last bars suggest (what "auto" locks to)
    register: tuple[int, int] | None = None  # the answer's lowest and highest pitch now
    style: str | None = None          # the style's name; None: no style (the zero initial state)

    def view(self, number: int) -> TakeView | None:
        return next((v for v in self.takes if v.take.number == number), None)


@dataclass
class _TakeState:
    take: Take
    auditioned: int = 0
    accepted: int | None = None
    interrupted: bool = False

    def view(self) -> TakeView:
        return TakeView(self.take, self.auditioned, self.accepted, self.interrupted)


@dataclass
class SessionModel:
    """The engine thread's record of phrases and takes (see module docstring)."""

    _takes: dict[int, _TakeState] = field(default_factory=dict)  # number -> state, in order made
    _last_number: int = 0
    phrases: list[Phrase] = field(default_factory=list)
    playing: int | None = None
    _discarded: list[_TakeState] = field(default_factory=list)  # most recent last (Undo discard)

    @property
    def last_number(self) -> int:
        """The highest take number given so far (the next take gets one more)."""
        return self._last_number

    # -- a saved session (session_store.py) ---------------------------------------
    def restore(self, views: Sequence[TakeView], phrases: Sequence[Phrase], last_number: int,
                discarded: Sequence[TakeView] = ()) -> None:
        """Replace everything with a saved session's takes and phrases; numbering
        goes on after ``last_number`` (and after every take's number)."""
        self._takes = {v.take.number: _TakeState(v.take, v.auditioned, v.accepted, v.interrupted)
                       for v in sorted(views, key=lambda v: v.take.number)}
        self._discarded = [_TakeState(v.take, v.auditioned, v.accepted, v.interrupted) for v in discarded
                           if v.take.number not in self._takes]
        numbers = [last_number, *self._takes, *(s.take.number for s in self._discarded)]
        self._last_number = max(numbers)
        self.phrases = list(phrases)
        self.playing = None

    def discarded_views(self) -> tuple[TakeView, ...]:
        """The takes Undo discard can bring back, oldest discard first."""
        return tuple(s.view() for s in self._discarded)

    # -- phrases --------------------------------------------------------------
    def start_phrase(self, source: str, name: str, tempo_bpm: float, meter: Meter,
                     notes: Sequence[DecodedNote] = ()) -> Phrase:
        """A new context for the answers that follow."""
        phrase = Phrase(len(self.phrases) + 1, source, name, tempo_bpm, meter, tuple(notes))
        self.phrases.append(phrase)
        return phrase

    @property
    def phrase(self) -> Phrase | None:
        return self.phrases[-1] if self.phrases else None

    # -- takes ------------------------------------------------------------------
    def add_take(self, start_quarters: float, variations: Sequence[Sequence[DecodedNote]],
                 velocity: int, **details: object) -> Take:
        """Number a new take (never a number given before) and keep it; it plays from now on."""
        self._last_number += 1
        take = Take(self._last_number, start_quarters, tuple(tuple(v) for v in variations), velocity,
                    **details)
        self._takes[take.number] = _TakeState(take)
        self.playing = take.number
        return take

    def takes(self) -> list[Take]:
        return [s.take for s in self._takes.values()]

    def find(self, ref: Take | int | None) -> Take | None:
        """A take by number or object; None means the latest."""
        if ref is None:
            return next(reversed(self._takes.values())).take if self._takes else None
        number = ref.number if isinstance(ref, Take) else int(ref)
        state = self._takes.get(number)
        return state.take if state is not None else None

    def view(self, ref: Take | int | None) -> TakeView | None:
        take = self.find(ref)
        return None if take is None else self._takes[take.number].view()

    def views(self) -> tuple[TakeView, ...]:
        return tuple(s.view() for s in self._takes.values())

    def auditioned(self, ref: Take | int | None) -> int:
        take = self.find(ref)
        return 0 if take is None else self._takes[take.number].auditioned

    def audition(self, ref: Take | int | None, index: int) -> Take | None:
        """Record that variation ``index`` (modulo K) of a take plays now; the accepted mark stays."""
        take = self.find(ref)
        if take is None:
            return None
        state = self._takes[take.number]
        state.auditioned = index % len(take.variations)
        state.interrupted = False
        self.playing = take.number
        return take

    def accept(self, ref: Take | int | None, index: int | None = None) -> Take | None:
        """Accept variation ``index`` of a take (default: the one auditioned last)."""
        take = self.find(ref)
        if take is None:
            return None
        state = self._takes[take.number]
        state.accepted = state.auditioned if index is None else index % len(take.variations)
        return take

    def interrupt(self, ref: Take | int | None) -> None:
        take = self.find(ref)
        if take is not None:
            self._takes[take.number].interrupted = True

    def discard(self, ref: Take | int) -> Take | None:
        take = self.find(ref)
        if take is None:
            return None
        self._discarded.append(self._takes.pop(take.number))
        if self.playing == take.number:
            self.playing = None
        return take

    def undo_discard(self) -> Take | None:
        """Bring back the take discarded last, in its place by number, as it was
        (its variations, the accepted one); None when nothing was discarded."""
        if not self._discarded:
            return None
        state = self._discarded.pop()
        state.interrupted = False
        self._takes[state.take.number] = state
        self._takes = dict(sorted(self._takes.items()))
        return state.take


def shift_notes(notes: Sequence[DecodedNote], ticks: int) -> Notes:
    return tuple(n._replace(start=n.start + ticks) for n in notes)


def quarters_to_ticks(q: float) -> int:
    """Quarters -> REMI ticks, rounded up so nothing lands early."""
    return -(-int(round(q * TICKS_PER_QUARTER * 1000)) // 1000)


__all__ = ["Take", "TakeView", "Phrase", "TimelineView", "PlayedNote", "SessionEvent",
           "SessionSnapshot", "SessionModel", "shift_notes", "quarters_to_ticks"]
