"""The live session: the player's notes in, continuations out, no threads.

``LiveSession`` is driven by calls (``handle`` each routed MIDI message,
``poll`` as time passes), so the same code runs under the engine thread and
under a fake clock in tests. Each note goes through the streaming REMI
encoder; every token that becomes final is stepped into the model's
recurrent state at once, so when the player stops the state already holds the
whole phrase and the answer costs only the continuation's own tokens.

Triggers: silence for N beats, a chosen key, a chosen controller (rising past
64), or ``trigger()``. A take samples K variations in one batch; row 0's notes
go to the Player as each is decoded. Barge-in: a new note while a take plays
cancels it (the Player sends the note-offs) and joins the context.

What the answers continue can also be notes that were not just played: a
file (``open_phrase``: a new timeline in the file's tempo and meter) or an
accepted variation (``accept``: the take's bars and that variation). Both
rebuild the context from notes (``_load_notes``): the encoder and the model
state then hold them exactly as if they had been played, so Continue, the
silence trigger and further playing all go on from there.

Every context starts from the runner's initial state: the zero state, or a
style's learned one (model/style.py). ``set_style`` swaps it and rebuilds
the recent bars from it (as ``set_model`` does for new weights), so the next
answer is in the new style.

Takes, phrases, the accepted variation and take numbers belong to the
``SessionModel`` (session_model.py), which outlives timelines and models:
a take made before a meter change or by a model since replaced still
auditions, and numbers never repeat. ``set_tempo`` re-anchors the grid so
the current beat stays put; ``set_grid`` starts a new timeline.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import torch

from copilot_app.engine.clock import Clock, InternalGrid, MidiClockGrid, MonotonicClock
from copilot_app.engine.held_notes import RELEASE_ALL_CCS, RESET_CONTROLLERS_CC, HeldNotes, held_bound_s
from copilot_app.engine.dynamics import phrase_dynamics
from copilot_app.engine.midi_input import Routed
from copilot_app.engine.phrase_file import CONTEXT_BARS, MAX_BPM, MIN_BPM, FilePhrase
from copilot_app.engine.player import PlannedNote, Player
from copilot_app.engine.model_runner import ModelRunner
from copilot_app.engine.session_model import (Phrase, SessionEvent, SessionModel, SessionSnapshot, Take,
                                              TimelineView, quarters_to_ticks)
from copilot_app.engine.session_store import SavedSession, SessionStore, load_or_fresh
from copilot_app.engine.take_forks import ForkCache, TakeForks
from model.generation import ContextTrack, Fork, generate
from model.style import Style, StyleError, model_fingerprint
from model.defaults import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from model.sampling import SamplingParams
from model.scales import estimate_key, key_name
from model.steering import Steer, Steering
from model.tokens.config import TICKS_PER_QUARTER, build_tokenizer
from model.tokens.streaming import DecodedNote, StreamingEncoder

log = logging.getLogger(__name__)

START_MODES = ("bar", "beat", "now")
RECENT_NOTES = 4096  # context notes kept to rebuild the state (model switch, accept)


class NoModelError(RuntimeError):
    """An answer was asked for before any model was loaded."""


@dataclass
class SessionSettings:
    bars: int = 2                   # length of a continuation
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = 0
    repetition_penalty: float = 1.0
    variations: int = 1             # K rows sampled in one batch
    trigger_beats: float = 2.0      # answer after this much silence (0: never)
    trigger_key: int | None = None  # a key that asks for an answer instead of sounding
    trigger_cc: int | None = None   # a controller (e.g. 67, soft pedal) that asks for one
    start_on: str = "bar"           # the answer starts on the next "bar", "beat" or "now"
    seed: int | None = None
    # One velocity for every answer note (1-127); None: the answer follows the
    # player's dynamics (level, contour and accents of the last bars, dynamics.py).
    fixed_velocity: int | None = None
    # Sample the answer during the pause, before the silence trigger fires, so
    # it starts playing the moment the trigger comes (see LiveSession.poll).
    prepare_ahead: bool = True
    # Steering (model/steering.py): key/scale lock ("off", "auto" or e.g.
    # "D dorian"), register (None: the phrase's range widened a little),
    # density and texture (-1 ... +1, 0 = as the model hears the phrase).
    key: str = "off"
    register_low: int | None = None
    register_high: int | None = None
    density: float = 0.0
    texture: float = 0.0

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p,
                              top_k=self.top_k, repetition_penalty=self.repetition_penalty)

    def steering(self) -> Steering:
        """The steering controls (ValueError, one line, on a bad key or range)."""
        return Steering(self.key, self.register_low, self.register_high, self.density, self.texture)


@dataclass
class _Prepared:
    """A take sampled ahead of the silence trigger, valid for one context."""

    version: int
    window: tuple[int, int]
    settings: SessionSettings
    variations: list[list[DecodedNote]]
    initial: Fork                     # the context's state it was sampled from
    bars: list[dict[int, int]]        # per row: bar-line tick -> ids up to it
    states: list[dict[int, Fork]]     # per row: bar-line tick -> the state there
    tokens: list[list[int]]


@dataclass
class SessionStats:
    tokens_in: int = 0
    notes_in: int = 0
    takes: int = 0
    ignored: dict = field(default_factory=dict)


class LiveSession:
    """Encoder + model state + triggers + Player (see module docstring)."""

    def __init__(self, model: torch.nn.Module | None, player: Player,
                 grid: InternalGrid | MidiClockGrid | None = None,
                 clock: Clock | None = None, settings: SessionSettings | None = None, *,
                 model_name: str = "", library: SessionModel | None = None,
                 input_counter: Callable[[], int] | None = None) -> None:
        self.clock = clock or MonotonicClock()
        self.grid = grid or InternalGrid(origin=self.clock.now())
        self.player = player
        self.settings = settings or SessionSettings()
        self.vocab = build_tokenizer().vocab
        self.runner = ModelRunner(model) if model is not None else None
        self.model_name = model_name
        self.style: Style | None = None  # the initial state every context starts from (None: zero)
        self._ready_styles: list[Style] = []  # kept primed beside the context (ready_styles.py)
        self.library = library or SessionModel()
        self.track = ContextTrack.fresh()
        self.encoder = StreamingEncoder()
        self.stats = SessionStats()
        self._held: set[int] = set()
        # (session tick, velocity) of the notes played or opened: the answer's dynamics.
        self._velocities: deque[tuple[int, int]] = deque(maxlen=512)
        self._last_activity: float | None = None
        self._new_notes_since_take = False
        self._trigger_cc_down = False
        self._pedal_down = False
        self._stuck_logged: frozenset[int] = frozenset()  # keys already logged as stuck
        # Set from any thread (panic, stop) to end a take being sampled now.
        self.cancel_take = threading.Event()
        # How many note/pedal messages have arrived (counted by the engine as
        # they come in): a take being prepared ahead stops as soon as the player plays again.
        self.input_counter: Callable[[], int] = input_counter or (lambda: 0)
        self._context_version = 0
        self._prepared: _Prepared | None = None
        self._prepare_tried: int | None = None
        # The encoder's time 0 in session quarters (a bar line): 0 unless the
        # context was rebuilt from notes part-way through a timeline.
        self._origin_q = 0.0
        # Answers start no earlier than this (the end of a loaded or accepted context).
        self._answer_floor_q = float("-inf")
        self._timeline = 0
        # The context's notes as they became final, in session ticks (for rebuilding it).
        self._context_notes: deque[DecodedNote] = deque(maxlen=RECENT_NOTES)
        self._notes_heard = 0  # notes that entered the context so far: what steering was resolved against
        self._start_context(self.quarters_at(self.clock.now()))
        self._start_played_phrase()
        self.store: SessionStore | None = None  # where the session is saved (session_store.py)
        self.forks = ForkCache()  # where recent takes can be sampled again (take_forks.py)
        self._steer_cache: tuple[tuple, Steer] | None = None

    # -- compatibility views of the session model -------------------------------
    @property
    def takes(self) -> list[Take]:
        return self.library.takes()

    @property
    def playing(self) -> Take | None:
        """The take whose notes the Player holds now (trigger or audition)."""
        return self.library.find(self.library.playing) if self.library.playing is not None else None

    def snapshot(self, event: SessionEvent, metronome: bool = False) -> SessionSnapshot:
        """An immutable picture of the session for other threads (the GUI)."""
        steer = self._steer()
        return SessionSnapshot(event, self.library.views(), self.library.playing, self.library.phrase,
                               TimelineView.of(self.grid, self.clock.now(), self._timeline), replace(self.settings),
                               (self.model_name or "model") if self.runner is not None else None, metronome,
                               tuple(v.number for v in self.library.discarded_views()),
                               self._heard_key(), (steer.low, steer.high),
                               self.style.name if self.style is not None else None)

    # -- steering -------------------------------------------------------------
    def _steer(self, before_tick: int | None = None) -> Steer:
        """The controls against the last bars heard; kept while neither changes
        (a trigger flushes the phrase's last tokens, rarely a new note)."""
        key = (self._notes_heard, before_tick, self.settings.steering())
        if self._steer_cache is None or self._steer_cache[0] != key:
            self._steer_cache = (key, key[2].resolve(self._recent_notes(before_tick)))
        return self._steer_cache[1]

    def _heard_key(self) -> str | None:
        """The key the last bars suggest (what "auto" locks to), as "A minor"."""
        heard = [n.pitch for n in self._recent_notes()]
        return key_name(*estimate_key(heard)) if heard else None

    # -- context ------------------------------------------------------------
    def _start_context(self, at_q: float = 0.0) -> None:
        """BOS, and the grid's meter unless it is the tokenizer's default 4/4."""
        self._accept(["BOS_None"])
        meter = self.grid.meter
        if (meter.numerator, meter.denominator) != (4, 4):
            self._accept(self.encoder.meter(max(0.0, at_q - self._origin_q), meter.numerator, meter.denominator))

    def _ending_by_now(self, notes: list, now: float | None) -> list:
        """Notes from another timeline moved by whole bars to end by now."""
        bar_ticks = self._bar_ticks()
        now_tick = int(self.quarters_at(self.clock.now() if now is None else now) * TICKS_PER_QUARTER)
        end = max(n.start + n.duration for n in notes)
        shift = math.floor((now_tick - end) / bar_ticks) * bar_ticks
        return [n._replace(start=n.start + shift) for n in notes]

    def _restart_context(self, origin_q: float) -> None:
        """An empty context whose encoder time 0 is ``origin_q`` (a bar line)."""
        if self.runner is not None:
            self.runner.reset()
        self.track = ContextTrack.fresh()
        self.encoder = StreamingEncoder()
        self._origin_q = origin_q
        self._answer_floor_q = float("-inf")
        self._context_notes.clear()
        self._notes_heard += 1  # a new context: what was heard changed even without a new note
        self._held.clear()
        self._pedal_down = False
        self._last_activity = None
        self._new_notes_since_take = False
        self._trigger_cc_down = False
        self._prepared = None
        self._prepare_tried = None
        self._start_context(origin_q)

    def _load_notes(self, notes: Sequence[DecodedNote]) -> None:
        """Notes (session ticks, none before the origin) into the context as if played.

        Their tokens are the encoder's, so what follows them live is encoded
        exactly as if they had been played; the model takes them in one
        parallel pass. Answers start after their end.
        """
        if not notes:
            return
        origin = self._origin_q
        events = []
        for n in notes:
            events.append((n.start / TICKS_PER_QUARTER - origin, 1, n.pitch, n.velocity))
            events.append(((n.start + n.duration) / TICKS_PER_QUARTER - origin, 0, n.pitch, 0))
        tokens: list[str] = []
        for q, on, pitch, velocity in sorted(events):  # offs before ons at the same time
            tokens += self.encoder.note_on(q, pitch, velocity) if on else self.encoder.note_off(q, pitch)
        end_q = max(q for q, *_ in events)
        tokens += self.encoder.flush(end_q)
        self._accept(tokens, block=True)
        self._answer_floor_q = end_q + origin

    def _recent_notes(self, before_tick: int | None = None) -> list[DecodedNote]:
        """The context notes of the last CONTEXT_BARS bars (before ``before_tick``)."""
        # The notes arrive in onset order (the tokens' order), so the last bars
        # are read from the end: a trigger asks for them (steering), and a long
        # session holds thousands of notes.
        bar_ticks = self._bar_ticks()
        recent: list[DecodedNote] = []
        first_bar = None
        for n in reversed(self._context_notes):
            if before_tick is not None and n.start >= before_tick:
                continue
            if first_bar is None:
                first_bar = (n.start // bar_ticks - CONTEXT_BARS + 1) * bar_ticks
            if n.start < first_bar:
                break
            recent.append(n)
        recent.reverse()
        return recent

    def _start_played_phrase(self) -> Phrase:
        return self.library.start_phrase("played", "played", self.grid.bpm, self.grid.meter)

    def open_phrase(self, phrase: FilePhrase, now: float | None = None) -> Phrase:
        """Make a file the context: a new timeline in its tempo and meter, the file
        placed so it ends now (as if it had just been played). Under MIDI clock
        the DAW keeps the tempo and bars; the file ends on the last bar line."""
        now = self.clock.now() if now is None else now
        self.player.cancel()
        self.cancel_take.clear()
        end_q = phrase.end_tick / TICKS_PER_QUARTER
        if isinstance(self.grid, MidiClockGrid):
            self.grid.meter = phrase.meter
        else:
            self.grid = InternalGrid(phrase.tempo_bpm, phrase.meter, origin=now - end_q * 60.0 / phrase.tempo_bpm)
        self._timeline += 1
        bar_q = self._bar_quarters()
        place_q = math.floor((self.quarters_at(now) - end_q) / bar_q + 1e-9) * bar_q
        shift = int(round(place_q * TICKS_PER_QUARTER))
        notes = [DecodedNote(n.start + shift, n.duration, n.pitch, n.velocity) for n in phrase.notes]
        self._restart_context(place_q)
        self._load_notes(notes)
        self._velocities.clear()
        self._velocities.extend((n.start, n.velocity) for n in notes)
        return self.library.start_phrase("file", phrase.name, self.grid.bpm, self.grid.meter, notes)

    def set_model(self, model: torch.nn.Module | None, name: str = "") -> str | None:
        """Another model on the same timeline: the recent context is rebuilt in its state.

        The style stays if it was learned for the new model; otherwise it is
        dropped and the one-line reason returned.
        """
        self.cancel_take.set()  # a take being prepared by the old model stops
        dropped = None
        if self.style is not None and model is not None:
            try:
                self.style.check_model(model)
            except StyleError as exc:
                dropped, self.style = f"{exc}; playing without a style", None
        self.runner = ModelRunner(model, self.style) if model is not None else None
        self.model_name = name
        if self.runner is not None and self._ready_styles:
            fingerprint = model_fingerprint(model)
            self.runner.keep_ready([None] + [s for s in self._ready_styles if s.base_fingerprint == fingerprint])
        self._rebuild_recent_context()
        return dropped

    def keep_styles_ready(self, styles: Sequence[Style]) -> None:
        """Keep these styles of the loaded model (and no style) primed with the
        context, so switching to one of them is a copy (ready_styles.py). The
        caller checked that they belong to the model; an empty list keeps none."""
        self._ready_styles = list(styles)
        if self.runner is not None:
            self.runner.keep_ready([None] + self._ready_styles if styles else [])

    def set_style(self, style: Style | None) -> None:
        """Another initial state on the same model (None: no style), so the next
        answer speaks in it: a style kept ready takes over the whole context
        at once; any other re-primes the recent bars from its state. The
        caller checked that the style belongs to the model (``Style.check_model``)."""
        self.cancel_take.set()  # a take being prepared from the old state stops
        self.style = style
        if self.runner is not None and self.runner.switch(style):
            self._context_version += 1  # what was prepared came from the old state: prepare again
            self._prepared = None
            return
        if self.runner is not None:
            self.runner.set_style(style)
        self._rebuild_recent_context()

    def _rebuild_recent_context(self) -> None:
        """The recent notes again, in a context started from the runner's initial state."""
        notes = self._recent_notes()
        now_q = self.quarters_at(self.clock.now())
        first_q = min([n.start / TICKS_PER_QUARTER for n in notes] + [now_q])
        bar_q = self._bar_quarters()
        self._restart_context(math.floor(first_q / bar_q + 1e-9) * bar_q)
        self._load_notes(notes)

    # -- time -------------------------------------------------------------
    def quarters_at(self, t: float) -> float:
        return self.grid.beat_at(t) * self.grid.meter.quarters_per_beat()

    def time_at_quarters(self, q: float) -> float:
        return self.grid.time_at(q / self.grid.meter.quarters_per_beat())

    def _enc_q(self, t: float) -> float:
        """Session time -> the encoder's quarters."""
        return self.quarters_at(t) - self._origin_q

    def _bar_quarters(self) -> float:
        return self.grid.beats_per_bar * self.grid.meter.quarters_per_beat()

    def _bar_ticks(self) -> int:
        return int(round(self._bar_quarters() * TICKS_PER_QUARTER))

    def set_tempo(self, bpm: float, now: float | None = None) -> None:
        """A new internal tempo; the grid is re-anchored so the beat at ``now`` stays put.

        Quarters already played keep their place, so the encoder never sees
        time run backwards. Under MIDI clock the DAW sets the tempo: this only
        changes the fallback used before its clock arrives.
        """
        if not MIN_BPM <= bpm <= MAX_BPM:
            raise ValueError(f"tempo {bpm} BPM is outside {MIN_BPM:g}-{MAX_BPM:g}")
        grid = self.grid
        if isinstance(grid, MidiClockGrid):
            grid.fallback_bpm = float(bpm)
            return
        now = self.clock.now() if now is None else now
        beat = grid.beat_at(now)
        grid.bpm = float(bpm)
        grid.origin = now - beat * grid.seconds_per_beat

    def set_grid(self, grid: InternalGrid | MidiClockGrid) -> None:
        """A new timeline (meter or clock source changed) on the same model.

        The phrase so far was tokenized on the old grid's bars, so the context
        starts over (fresh encoder and model state, the new meter's TimeSig);
        playback stops with its note-offs. Takes are kept and can still be
        auditioned; their numbers go on counting.
        """
        self.player.cancel()
        self.grid = grid
        self._timeline += 1
        self._velocities.clear()  # their ticks were on the old grid's bars
        self.library.playing = None
        self._restart_context(0.0)
        self._start_played_phrase()

    # -- input ------------------------------------------------------------
    def handle(self, event: Routed) -> Take | None:
        """Take one routed message; returns a take if it triggered one."""
        kind, t = event.kind, event.time
        if kind == "note_on":
            if self.settings.trigger_key is not None and event.pitch == self.settings.trigger_key:
                return self.trigger(t)
            self._barge_in()
            self._held.add(event.pitch)
            self._stuck_logged -= {event.pitch}  # pressed again: a new key, logged anew if it sticks
            self._velocities.append((int(round(self.quarters_at(t) * TICKS_PER_QUARTER)), event.velocity))
            self._last_activity = t
            self._new_notes_since_take = True
            self.stats.notes_in += 1
            self._accept(self.encoder.note_on(self._enc_q(t), event.pitch, event.velocity))
        elif kind == "note_off":
            if event.pitch == self.settings.trigger_key:
                return None
            self._held.discard(event.pitch)
            self._stuck_logged = self._stuck_logged & frozenset(self._held)
            self._last_activity = t
            self._accept(self.encoder.note_off(self._enc_q(t), event.pitch))
        elif kind == "pedal":
            self._pedal_down = event.value >= 64
            self._accept(self.encoder.pedal(self._enc_q(t), event.value))
        elif kind == "control" and event.control == self.settings.trigger_cc:
            down = event.value >= 64
            rising = down and not self._trigger_cc_down
            self._trigger_cc_down = down
            if rising:
                return self.trigger(t)
        elif kind == "control" and event.control in RELEASE_ALL_CCS:
            self.release_held(t, pedal=False)  # All Notes/Sound Off: every key up (the pedal stays)
        elif kind == "control" and event.control == RESET_CONTROLLERS_CC:
            self._trigger_cc_down = False
            if self._pedal_down:  # Reset All Controllers lifts the sustain pedal
                self._pedal_down = False
                self._accept(self.encoder.pedal(self._enc_q(t), 0))
        elif kind == "realtime" and isinstance(self.grid, MidiClockGrid) and event.msg is not None:
            self.grid.handle(event.msg.type, t, getattr(event.msg, "pos", None))
        elif kind == "ignored":
            self.stats.ignored[event.reason] = self.stats.ignored.get(event.reason, 0) + 1
        return None

    def poll(self, now: float | None = None) -> Take | None:
        """Let time pass: commit held notes, prepare the answer during a pause,
        and fire the silence trigger when due."""
        now = self.clock.now() if now is None else now
        # Empty bars go into the state as their bar lines pass, so an answer
        # asked for after a pause starts from the current bar instead of
        # sampling its way there (4 of the 6 steps before the first note).
        # Not while a silence trigger is pending: its answer, prepared during
        # the pause, was sampled from the context as it was.
        silence_pending = self.next_silence_deadline() is not None
        self._accept(self.encoder.advance(self._enc_q(now), open_bars=not silence_pending))
        if self.silence_trigger_due(now):
            # The trigger time is the moment the silence reached N beats, so
            # the answer's start matches the one prepared for it; past keys
            # taken as stuck, it is now (that moment is long gone).
            return self.trigger(now if self._held else (self.next_silence_deadline() or now))
        self._prepare_ahead(now)
        self._catch_up_ready_styles(now)
        return None

    def _catch_up_ready_styles(self, now: float) -> None:
        """The ready styles hear what the live state heard, a chunk per poll (a
        few ms, so the engine thread is never held up long): whenever the player
        pauses (after the prepared answer), and while they play on once a
        chunk has piled up, so a switch finds them current."""
        if self.runner is None or not self.runner.ready.backlog:
            return
        last = self._last_activity
        quiet = not self._held and (last is None or now - last >= self.grid.seconds_per_beat / 8)
        ready = self.runner.ready
        if quiet or len(ready.backlog) >= ready.chunk:
            ready.catch_up(ready.chunk)

    def _prepare_ahead(self, now: float) -> None:
        """Sample the take the silence trigger will ask for, while nobody plays.

        Runs once per context, after every key is up and the phrase's tokens
        are final (1/8 beat of silence); stops early if the player plays again.
        The trigger then only has to hand the notes to the Player.
        """
        s = self.settings
        deadline = self.next_silence_deadline()
        if (not s.prepare_ahead or self.runner is None or deadline is None or self._held
                or self._prepare_tried == self._context_version
                or now - (self._last_activity or now) < self.grid.seconds_per_beat / 8):
            return
        self._prepare_tried = self._context_version
        window = self._take_window(deadline)
        inputs = self.input_counter()
        self.cancel_take.clear()
        bars: list[dict[int, int]] = []
        states: list[dict[int, Fork]] = []
        tokens: list[list[int]] = []
        variations = generate(self.runner.model, self.runner.state, self.runner.logits[0],
                              self.track, *window, max(1, s.variations), s.sampling(), seed=s.seed,
                              should_stop=lambda: self.input_counter() != inputs or self.cancel_take.is_set(),
                              steer=self._steer(), bars_out=bars, forks_out=states, tokens_out=tokens)
        if self.input_counter() == inputs and not self.cancel_take.is_set():
            self._prepared = _Prepared(self._context_version, window, s, variations, self._context_fork(),
                                       bars, states, tokens)

    def _context_fork(self) -> Fork:
        """A copy of the context's state (what a take was sampled from)."""
        assert self.runner is not None and self.runner.logits is not None
        return Fork(self.runner.state.clone(), self.runner.logits[0].clone(), self.track.fork())

    def silence_trigger_due(self, now: float) -> bool:
        s = self.settings
        if s.trigger_beats <= 0 or not self._new_notes_since_take:
            return False
        assert self._last_activity is not None
        if self._held and not self._held_past_bound(now):
            return False
        return now - self._last_activity >= s.trigger_beats * self.grid.seconds_per_beat

    # -- held keys (see held_notes.py) ---------------------------------------
    def _held_past_bound(self, now: float) -> bool:
        """Whether the held keys have gone so long without any other input that
        they are taken as stuck (a lost note-off); logged once per key."""
        if not self._held or self._last_activity is None:
            return False
        held_s = now - self._last_activity
        if held_s < held_bound_s(self.grid.seconds_per_beat * self.grid.beats_per_bar):
            return False
        new = frozenset(self._held) - self._stuck_logged
        if new:
            self._stuck_logged |= new
            log.warning("key(s) %s held for %.0f s with no other input: taken as stuck "
                        "(a lost note-off?); the silence trigger no longer waits for them",
                        sorted(new), held_s)
        return True

    def held_notes(self, now: float | None = None) -> HeldNotes:
        """The keys (and pedal) the session holds as down, those past the bound marked stuck."""
        pitches = tuple(sorted(self._held))
        stuck = ()
        if pitches and self._last_activity is not None:
            now = self.clock.now() if now is None else now
            if now - self._last_activity >= held_bound_s(self.grid.seconds_per_beat * self.grid.beats_per_bar):
                stuck = pitches
        return HeldNotes(pitches, stuck, self._pedal_down)

    def release_held(self, now: float | None = None, pedal: bool = True) -> list[int]:
        """Every held key up at ``now`` (All Notes Off, the GUI's Clear, a lost input);
        with ``pedal`` the sustain pedal too. Returns the keys released."""
        now = self.clock.now() if now is None else now
        released = sorted(self._held)
        q = self._enc_q(now)
        tokens: list[str] = []
        for pitch in released:
            tokens += self.encoder.note_off(q, pitch)
        self._held.clear()
        if pedal and self._pedal_down:
            self._pedal_down = False
            tokens += self.encoder.pedal(q, 0)
        self._accept(tokens)
        if released:
            self._last_activity = now  # as their note-offs would have: the silence counts from here
            self._stuck_logged = frozenset()
            log.info("released held key(s) %s", released)
        return released

    def next_silence_deadline(self) -> float | None:
        """When the silence trigger would fire if nothing else happens."""
        if self.settings.trigger_beats <= 0 or not self._new_notes_since_take or self._last_activity is None:
            return None
        return self._last_activity + self.settings.trigger_beats * self.grid.seconds_per_beat

    def _accept(self, tokens: list[str], block: bool = False) -> None:
        if not tokens:
            return
        self._context_version += 1
        self._prepared = None
        ids = [self.vocab[t] for t in tokens]
        origin_ticks = int(round(self._origin_q * TICKS_PER_QUARTER))
        for token in ids:
            note = self.track.update(token)
            if note is not None:
                self._context_notes.append(note._replace(start=note.start + origin_ticks))
                self._notes_heard += 1
        if self.runner is not None:
            (self.runner.prefill if block else self.runner.feed)(ids)
        self.stats.tokens_in += len(ids)

    def _barge_in(self) -> None:
        if self.player.pending or self.player.open_notes:
            self.player.cancel()
            self.library.interrupt(self.library.playing)

    # -- takes ------------------------------------------------------------
    def _start_quarters(self, now: float) -> float:
        mode = self.settings.start_on
        if mode not in START_MODES:
            raise ValueError(f"start_on must be one of {START_MODES}, not {mode!r}")
        start = self.quarters_at(now) if mode == "now" else self.quarters_at(self.grid.next_boundary(now, mode))
        if start < self._answer_floor_q - 1e-9:
            # The context (an accepted take still playing) ends later: the next bar line after it.
            bar_q = self._bar_quarters()
            start = self._origin_q + math.ceil((self._answer_floor_q - self._origin_q) / bar_q - 1e-9) * bar_q
        return start

    def _take_window(self, now: float) -> tuple[int, int]:
        """(start, end) ticks, on the encoder's time line, of a take triggered at ``now``."""
        # Ticks on the REMI grid; round up so the answer never starts early.
        start_tick = quarters_to_ticks(self._start_quarters(now) - self._origin_q)
        return start_tick, start_tick + int(round(self.settings.bars * self._bar_quarters() * TICKS_PER_QUARTER))

    def trigger(self, now: float | None = None) -> Take:
        """Answer now: flush the context, sample K variations, play the first.

        A take prepared during the pause for exactly this context, window and
        settings is played as it is; otherwise row 0's notes go to the Player
        as each is sampled.
        """
        if self.runner is None:
            raise NoModelError("cannot continue: no model loaded (Model menu)")
        t0 = time.perf_counter()
        now = self.clock.now() if now is None else now
        s = self.settings
        self._held.clear()  # the flush below ends whatever is held, stuck keys included
        self._stuck_logged = frozenset()
        self._accept(self.encoder.flush(self._enc_q(now)))
        window = self._take_window(now)
        origin_q = self._origin_q
        origin_ticks = int(round(origin_q * TICKS_PER_QUARTER))
        start_tick = window[0] + origin_ticks
        # The answer's dynamics: the player's notes before it (session ticks, bar 0 at tick 0).
        dynamics = phrase_dynamics([(t, v) for t, v in self._velocities if t < start_tick], self._bar_ticks(),
                                   fixed=s.fixed_velocity)
        velocity = int(round(dynamics.level)) if s.fixed_velocity is None else dynamics.velocity(start_tick)

        def loud(note: DecodedNote) -> int:
            return dynamics.velocity(note.start + origin_ticks, start_tick)

        self.player.cancel()
        self.cancel_take.clear()
        first_note: list[float] = []

        def play(note: DecodedNote) -> None:
            if self.cancel_take.is_set():
                return
            self.player.schedule([self._planned(note, loud(note), origin_q)])
            if not first_note:
                first_note.append(time.perf_counter() - t0)

        prepared, self._prepared = self._prepared, None
        if (prepared is not None and prepared.version == self._context_version
                and prepared.window == window and prepared.settings == s):
            variations = prepared.variations
            self.player.schedule(self._planned(n, loud(n), origin_q) for n in variations[0])
            if variations[0]:
                first_note.append(time.perf_counter() - t0)
            initial, bars, states, tokens = prepared.initial, prepared.bars, prepared.states, prepared.tokens
        else:
            assert self.runner.logits is not None
            bars, states, tokens = [], [], []
            variations = generate(self.runner.model, self.runner.state, self.runner.logits[0],
                                  self.track, *window, max(1, s.variations),
                                  s.sampling(), seed=s.seed, on_note=play,
                                  should_stop=self.cancel_take.is_set,
                                  steer=self._steer(), bars_out=bars, forks_out=states, tokens_out=tokens)
            initial = self._context_fork()  # after the first note: the state is not changed by sampling
        take = self.record_take(start_tick / TICKS_PER_QUARTER,
                                [[n._replace(start=n.start + origin_ticks, velocity=loud(n)) for n in row]
                                 for row in variations],
                                velocity, context=self._recent_notes(before_tick=start_tick),
                                first_note_latency_s=first_note[0] if first_note else None,
                                prepared=prepared is not None and variations is prepared.variations)
        self._new_notes_since_take = False
        self.forks.put(take.number, TakeForks(self.runner.model, *window, origin_ticks, initial, bars, states, tokens,
                                              loud))
        log.info("take %d: %s notes in %d variation(s)%s", take.number,
                 [len(v) for v in variations], len(variations), " (prepared)" if take.prepared else "")
        return take

    def _planned(self, note: DecodedNote, velocity: int, shift_q: float = 0.0) -> PlannedNote:
        start = self.time_at_quarters(note.start_quarters + shift_q)
        end = self.time_at_quarters(note.start_quarters + note.duration_quarters + shift_q)
        return PlannedNote(note.pitch, velocity, start, end)

    def record_take(self, start_quarters: float, variations: Sequence[Sequence[DecodedNote]], velocity: int,
                    **extra: object) -> Take:
        """Number a new take and keep it; it is the one playing from now on.

        The take remembers the tempo, meter, model and timeline it was made
        with; numbers come from the session model's counter, never reused.
        """
        self.stats.takes += 1
        return self.library.add_take(start_quarters, variations, velocity, tempo_bpm=self.grid.bpm,
                                     meter=self.grid.meter, model=self.model_name, timeline=self._timeline,
                                     **extra)

    def find_take(self, take: Take | int | None) -> Take | None:
        """A take of this session by object or number; None means the last one."""
        return self.library.find(take)

    def audition(self, index: int, now: float | None = None, take: Take | int | None = None) -> Take | None:
        """Play variation ``index`` of ``take`` (default: the last) from the next bar line.

        Whatever was playing stops first (the Player sends its note-offs). A
        take from an earlier timeline or model plays the same: it is notes.
        Returns the take, or None when there is no such take.
        """
        target = self.library.audition(take, index)
        if target is None:
            return None
        now = self.clock.now() if now is None else now
        start_q = self.quarters_at(self.grid.next_boundary(now, "bar"))
        shift = start_q - target.start_quarters
        notes = target.notes(self.library.auditioned(target))
        self.player.replace([self._planned(n, n.velocity, shift) for n in notes])
        return target

    def next_variation(self, now: float | None = None, take: Take | int | None = None) -> Take | None:
        target = self.library.find(take)
        return None if target is None else self.audition(self.library.auditioned(target) + 1, now, target)

    def previous_variation(self, now: float | None = None, take: Take | int | None = None) -> Take | None:
        target = self.library.find(take)
        return None if target is None else self.audition(self.library.auditioned(target) - 1, now, target)

    def discard(self, take: Take | int) -> Take | None:
        """Forget a take; if its notes are playing, stop them (with their note-offs)."""
        playing = self.library.playing
        target = self.library.discard(take)
        if target is not None and playing == target.number:
            self.player.cancel()
        return target

    def accept(self, take: Take | int | None = None, index: int | None = None,
               now: float | None = None) -> Take | None:
        """Accept variation ``index`` (default: the one auditioned last) of a take (default: the last).

        The accepted variation, after the bars the take answered, becomes the
        context: the next answer continues it, and so does further playing.
        Playback goes on.
        """
        target = self.library.accept(take, index)
        if target is None:
            return None
        chosen = self.library.view(target).accepted
        notes = list(target.context) + list(target.notes(chosen))
        if target.timeline != self._timeline and notes:
            # Made on another timeline: placed, bar-aligned, to end by now.
            notes = self._ending_by_now(notes, now)
        if notes:
            bar_q = self._bar_quarters()
            first_q = min(n.start for n in notes) / TICKS_PER_QUARTER
            self._restart_context(math.floor(first_q / bar_q + 1e-9) * bar_q)
            self._load_notes(notes)
        self.library.start_phrase("accepted", f"take {target.number} variation {chosen + 1}",
                                  self.grid.bpm, self.grid.meter)
        return target

    # -- sampling a take again ------------------------------------------------
    def regenerate(self, take: Take | int | None = None, variation: int | None = None, bar: int = 2,
                   now: float | None = None) -> Take:
        """A new take: variation ``variation`` (default: the one auditioned last)
        of ``take`` (default: the last) kept up to bar ``bar``, the rest sampled
        again as K variations, from the state the take had at that bar line,
        with the current settings. It auditions from the next bar line."""
        target, forks = self._forked(take)
        v = self.library.auditioned(target) if variation is None else variation
        t0 = time.perf_counter()  # the state is rebuilt on demand: part of the time to the first new note
        tick, count, fork = forks.fork_at(v, bar)
        kept = [n for n in target.notes(v) if n.start < forks.heard_tick(tick)]
        return self._sample_again(target, forks, fork, tick, kept, f"take {target.number} variation {v + 1} "
                                  f"from bar {bar}", lambda rows, copies, ids: forks.regenerated(v, tick, count, rows, copies, ids),
                                  now, t0)

    def more_like_this(self, take: Take | int | None = None, variation: int | None = None,
                       now: float | None = None) -> Take:
        """A new take of K variations for the same bars, sampled from the state
        after variation ``variation`` of the take (default: its accepted one, else
        the one auditioned last): the model has just heard it, so the new ones
        vary it rather than start afresh."""
        target, forks = self._forked(take)
        view = self.library.view(target)
        assert view is not None
        if variation is None:
            variation = view.accepted if view.accepted is not None else view.auditioned
        if not 0 <= variation < len(target.variations):
            raise ValueError(f"no variation {variation + 1} (take {target.number} has {len(target.variations)})")
        t0 = time.perf_counter()
        frame = forks.following(variation)
        return self._sample_again(target, frame, frame.initial, frame.start, [], f"more like take {target.number}",
                                  lambda rows, copies, ids: replace(frame, bars=rows, states=copies, tokens=ids),
                                  now, t0)

    def _forked(self, take: Take | int | None) -> tuple[Take, TakeForks]:
        target = self.library.find(take)
        if target is None:
            raise ValueError("no such take")
        if self.runner is None:
            raise NoModelError("cannot continue: no model loaded (Model menu)")
        return target, self.forks.get(target.number, self.runner.model)

    def _sample_again(self, target: Take, frame: TakeForks, fork: Fork, tick: int, kept: list[DecodedNote],
                      label: str, forks_of: Callable[[list, list, list], TakeForks], now: float | None,
                      t0: float) -> Take:
        """Sample ``frame``'s bars from ``tick`` on (state ``fork``), after the
        ``kept`` notes, as a new take in ``target``'s place; audition it.
        ``t0``: when the command came (the first new note is timed from it)."""
        assert self.runner is not None
        s = self.settings
        first_note: list[float] = []
        rows_bars: list[dict[int, int]] = []
        rows_states: list[dict[int, Fork]] = []
        ids: list[list[int]] = []
        steer = s.steering().resolve(target.context) if target.context else self._steer()
        self.cancel_take.clear()
        rows = generate(self.runner.model, fork.state, fork.logits, fork.track, tick, frame.end,
                        max(1, s.variations), s.sampling(), seed=s.seed, should_stop=self.cancel_take.is_set,
                        steer=steer, on_note=lambda _n: first_note or first_note.append(time.perf_counter() - t0),
                        bars_out=rows_bars, forks_out=rows_states, tokens_out=ids)
        heard = [[n._replace(start=frame.heard_tick(n.start)) for n in row] for row in rows]
        variations = [kept + [n._replace(velocity=frame.loud(n._replace(start=n.start - frame.origin_ticks)))
                              for n in row] for row in heard]
        self.stats.takes += 1
        new = self.library.add_take(target.start_quarters, variations, target.velocity, tempo_bpm=target.tempo_bpm,
                                    meter=target.meter, model=self.model_name, timeline=target.timeline,
                                    context=target.context, first_note_latency_s=first_note[0] if first_note else None,
                                    derived_from=label)
        self.forks.put(new.number, forks_of(rows_bars, rows_states, ids))
        log.info("take %d (%s): %s notes", new.number, label, [len(v) for v in variations])
        self.audition(0, now, new)
        return new

    def stop(self) -> None:
        """Stop playback; every note the Player started gets its note-off."""
        self.player.cancel()
        self.library.playing = None

    # -- the session on disk (session_store.py) -----------------------------------
    def undo_discard(self) -> Take | None:
        """Bring back the take discarded last (its variations, its accepted mark)."""
        return self.library.undo_discard()

    def saved(self) -> SavedSession:
        """The session as immutable values for its file (the writer thread encodes them)."""
        lib = self.library
        return SavedSession(lib.views(), tuple(lib.phrases), lib.last_number, self._timeline,
                            asdict(self.settings), lib.discarded_views(), tuple(self._recent_notes()))

    def save(self) -> None:
        """Hand the session to its store (written in the background); nothing without one."""
        if self.store is not None:
            self.store.save(self.saved())

    def new_session(self, now: float | None = None) -> None:
        """No takes, no phrases, numbers from 1 again; the timeline and settings stay."""
        self.player.cancel()
        self.library = SessionModel()
        self.forks.clear()  # take numbers start again from 1
        self._velocities.clear()
        self._restart_context(self._bar_floor(now))
        self._start_played_phrase()

    def load_saved(self, saved: SavedSession, apply_settings: bool = True, now: float | None = None) -> None:
        """A saved session's takes, phrases and numbering; the context is re-primed
        from its saved notes (placed, bar-aligned, to end by now) as if just played."""
        self.player.cancel()
        self.library.restore(saved.takes, saved.phrases, saved.last_number, saved.discarded)
        self.forks.clear()
        if apply_settings and saved.settings:
            self.settings = replace(self.settings, **saved.settings)
        # Its ticks belong to the timelines it was saved on, not to this one.
        self._timeline = max([self._timeline, saved.timeline, *(v.take.timeline for v in saved.takes)]) + 1
        self._velocities.clear()
        notes = list(saved.context)
        if notes:
            notes = self._ending_by_now(notes, now)
            bar_q = self._bar_quarters()
            self._restart_context(math.floor(min(n.start for n in notes) / TICKS_PER_QUARTER / bar_q + 1e-9) * bar_q)
            self._load_notes(notes)
            self._velocities.extend((n.start, n.velocity) for n in notes)
        else:
            self._restart_context(self._bar_floor(now))
        if not self.library.phrases:
            self._start_played_phrase()

    def use_store(self, store: SessionStore | None, load: bool = True,
                  apply_settings: bool = True) -> str | None:
        """Save into ``store`` from now on (the previous store is flushed and closed).

        With ``load`` its file is the session: restored if it is there, a new
        session if not; a bad file is kept aside (one line returned) and a
        new session starts. Without ``load`` the session as it is goes there.
        """
        if self.store is not None and self.store is not store:
            self.store.close()
        self.store = store
        message = None
        if store is not None and load:
            found = load_or_fresh(store.path)
            message = found.message
            if found.session is not None:
                self.load_saved(found.session, apply_settings)
            else:
                self.new_session()
            if not found.writable:
                self.store = None  # a file we could neither read nor move: never overwrite it
                return message
        self.save()
        return message

    def close_store(self) -> None:
        """The last state written, the writer stopped (the app is closing)."""
        if self.store is not None:
            self.save()
            self.store.close()

    def _bar_floor(self, now: float | None = None) -> float:
        """The bar line at or before ``now``, in session quarters."""
        bar_q = self._bar_quarters()
        return math.floor(self.quarters_at(self.clock.now() if now is None else now) / bar_q + 1e-9) * bar_q
