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

Takes stay in ``takes`` until discarded: any of them can be auditioned again
from the next bar line. ``set_tempo`` re-anchors the grid so the current beat
stays put; ``set_grid`` starts a new timeline (meter or clock source changed)
on the same model, keeping the takes.
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from copilot_app.engine.clock import Clock, InternalGrid, MidiClockGrid, MonotonicClock
from model.generation import ContextTrack, generate
from copilot_app.engine.midi_input import Routed
from copilot_app.engine.player import PlannedNote, Player, freeze_gc_heap
from model.sampling import SamplingParams
from model.tokens.config import TICKS_PER_QUARTER, build_tokenizer
from model.tokens.streaming import DecodedNote, StreamingEncoder

log = logging.getLogger(__name__)

START_MODES = ("bar", "beat", "now")


@dataclass
class SessionSettings:
    bars: int = 2                   # length of a continuation
    temperature: float = 0.85
    top_p: float = 0.92
    top_k: int = 0
    repetition_penalty: float = 1.0
    variations: int = 1             # K rows sampled in one batch
    trigger_beats: float = 2.0      # answer after this much silence (0: never)
    trigger_key: int | None = None  # a key that asks for an answer instead of sounding
    trigger_cc: int | None = None   # a controller (e.g. 67, soft pedal) that asks for one
    start_on: str = "bar"           # the answer starts on the next "bar", "beat" or "now"
    seed: int | None = None
    # Sample the answer during the pause, before the silence trigger fires, so
    # it starts playing the moment the trigger comes (see LiveSession.poll).
    prepare_ahead: bool = True

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p,
                              top_k=self.top_k, repetition_penalty=self.repetition_penalty)


@dataclass
class Take:
    """One answer: K variations, notes in quarter notes from the session start."""

    number: int
    start_quarters: float
    variations: list[list[DecodedNote]]
    velocity: int
    chosen: int = 0
    accepted: bool = False
    interrupted: bool = False
    # Trigger -> first note-on handed to the Player, in seconds of compute.
    first_note_latency_s: float | None = None
    prepared: bool = False  # sampled during the pause, before the trigger

    def notes(self, index: int | None = None) -> list[DecodedNote]:
        return self.variations[self.chosen if index is None else index]


@dataclass
class _Prepared:
    """A take sampled ahead of the silence trigger, valid for one context."""

    version: int
    window: tuple[int, int]
    settings: SessionSettings
    variations: list[list[DecodedNote]]


@dataclass
class SessionStats:
    tokens_in: int = 0
    notes_in: int = 0
    takes: int = 0
    ignored: dict = field(default_factory=dict)


class ModelRunner:
    """The model and its recurrent state for one stream of tokens."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.state = model.init_state(1, device=self.device)
        freeze_gc_heap()  # a newly loaded model: keep full collections short (see player.py)
        self.logits: torch.Tensor | None = None

    def reset(self) -> None:
        """A fresh recurrent state (a new context on the same weights)."""
        self.state = self.model.init_state(1, device=self.device)
        self.logits = None

    def feed(self, ids: list[int]) -> None:
        for token in ids:
            x = torch.tensor([token], device=self.device)
            self.logits, self.state = self.model.step(x, self.state, inplace=True)


class LiveSession:
    """Encoder + model state + triggers + Player (see module docstring)."""

    def __init__(self, model: torch.nn.Module, player: Player,
                 grid: InternalGrid | MidiClockGrid | None = None,
                 clock: Clock | None = None, settings: SessionSettings | None = None) -> None:
        self.clock = clock or MonotonicClock()
        self.grid = grid or InternalGrid(origin=self.clock.now())
        self.player = player
        self.settings = settings or SessionSettings()
        self.vocab = build_tokenizer().vocab
        self.runner = ModelRunner(model)
        self.track = ContextTrack.fresh()
        self.encoder = StreamingEncoder()
        self.takes: list[Take] = []
        # The take whose notes the Player holds now (trigger or audition), so a
        # discard stops exactly that one.
        self.playing: Take | None = None
        self.stats = SessionStats()
        self._held: set[int] = set()
        self._velocities: deque[int] = deque(maxlen=16)
        self._last_activity: float | None = None
        self._new_notes_since_take = False
        self._trigger_cc_down = False
        # Set from any thread (panic, stop) to end a take being sampled now.
        self.cancel_take = threading.Event()
        # How many note/pedal messages have arrived (set by the engine): a
        # take being prepared ahead stops as soon as the player plays again.
        self.input_counter: Callable[[], int] = lambda: 0
        self._context_version = 0
        self._prepared: _Prepared | None = None
        self._prepare_tried: int | None = None
        self._start_context()

    def _start_context(self) -> None:
        """BOS, and the grid's meter unless it is the tokenizer's default 4/4."""
        self._accept(["BOS_None"])
        meter = self.grid.meter
        if (meter.numerator, meter.denominator) != (4, 4):
            self._accept(self.encoder.meter(self.quarters_at(self.clock.now()),
                                            meter.numerator, meter.denominator))

    # -- time -------------------------------------------------------------
    def quarters_at(self, t: float) -> float:
        return self.grid.beat_at(t) * self.grid.meter.quarters_per_beat()

    def time_at_quarters(self, q: float) -> float:
        return self.grid.time_at(q / self.grid.meter.quarters_per_beat())

    def set_tempo(self, bpm: float, now: float | None = None) -> None:
        """A new internal tempo; the grid is re-anchored so the beat at ``now`` stays put.

        Quarters already played keep their place, so the encoder never sees
        time run backwards. Under MIDI clock the DAW sets the tempo: this only
        changes the fallback used before its clock arrives.
        """
        if not 20.0 <= bpm <= 400.0:
            raise ValueError(f"tempo {bpm} BPM is outside 20-400")
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
        self.runner.reset()
        self.track = ContextTrack.fresh()
        self.encoder = StreamingEncoder()
        self._held.clear()
        self._last_activity = None
        self._new_notes_since_take = False
        self._trigger_cc_down = False
        self._prepared = None
        self._prepare_tried = None
        self.playing = None
        self._start_context()

    # -- input ------------------------------------------------------------
    def handle(self, event: Routed) -> Take | None:
        """Take one routed message; returns a take if it triggered one."""
        kind, t = event.kind, event.time
        if kind == "note_on":
            if self.settings.trigger_key is not None and event.pitch == self.settings.trigger_key:
                return self.trigger(t)
            self._barge_in()
            self._held.add(event.pitch)
            self._velocities.append(event.velocity)
            self._last_activity = t
            self._new_notes_since_take = True
            self.stats.notes_in += 1
            self._accept(self.encoder.note_on(self.quarters_at(t), event.pitch, event.velocity))
        elif kind == "note_off":
            if event.pitch == self.settings.trigger_key:
                return None
            self._held.discard(event.pitch)
            self._last_activity = t
            self._accept(self.encoder.note_off(self.quarters_at(t), event.pitch))
        elif kind == "pedal":
            self._accept(self.encoder.pedal(self.quarters_at(t), event.value))
        elif kind == "control" and event.control == self.settings.trigger_cc:
            down = event.value >= 64
            rising = down and not self._trigger_cc_down
            self._trigger_cc_down = down
            if rising:
                return self.trigger(t)
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
        self._accept(self.encoder.advance(self.quarters_at(now), open_bars=not silence_pending))
        if self.silence_trigger_due(now):
            # The trigger time is the moment the silence reached N beats, so
            # the answer's start matches the one prepared for it.
            return self.trigger(self.next_silence_deadline() or now)
        self._prepare_ahead(now)
        return None

    def _prepare_ahead(self, now: float) -> None:
        """Sample the take the silence trigger will ask for, while nobody plays.

        Runs once per context, after every key is up and the phrase's tokens
        are final (1/8 beat of silence); stops early if the player plays again.
        The trigger then only has to hand the notes to the Player.
        """
        s = self.settings
        deadline = self.next_silence_deadline()
        if (not s.prepare_ahead or deadline is None or self._held
                or self._prepare_tried == self._context_version
                or now - (self._last_activity or now) < self.grid.seconds_per_beat / 8):
            return
        self._prepare_tried = self._context_version
        window = self._take_window(deadline)
        inputs = self.input_counter()
        self.cancel_take.clear()
        variations = generate(self.runner.model, self.runner.state, self.runner.logits[0],
                              self.track, *window, max(1, s.variations), s.sampling(), seed=s.seed,
                              should_stop=lambda: self.input_counter() != inputs or self.cancel_take.is_set())
        if self.input_counter() == inputs and not self.cancel_take.is_set():
            self._prepared = _Prepared(self._context_version, window, s, variations)

    def silence_trigger_due(self, now: float) -> bool:
        s = self.settings
        if s.trigger_beats <= 0 or not self._new_notes_since_take or self._held:
            return False
        assert self._last_activity is not None
        return now - self._last_activity >= s.trigger_beats * self.grid.seconds_per_beat

    def next_silence_deadline(self) -> float | None:
        """When the silence trigger would fire if nothing else happens."""
        if self.settings.trigger_beats <= 0 or not self._new_notes_since_take or self._last_activity is None:
            return None
        return self._last_activity + self.settings.trigger_beats * self.grid.seconds_per_beat

    def _accept(self, tokens: list[str]) -> None:
        if not tokens:
            return
        self._context_version += 1
        self._prepared = None
        ids = [self.vocab[t] for t in tokens]
        for token in ids:
            self.track.update(token)
        self.runner.feed(ids)
        self.stats.tokens_in += len(ids)

    def _barge_in(self) -> None:
        if self.player.pending or self.player.open_notes:
            self.player.cancel()
            if self.playing is not None:
                self.playing.interrupted = True

    # -- takes ------------------------------------------------------------
    def _start_quarters(self, now: float) -> float:
        mode = self.settings.start_on
        if mode not in START_MODES:
            raise ValueError(f"start_on must be one of {START_MODES}, not {mode!r}")
        if mode == "now":
            return self.quarters_at(now)
        return self.quarters_at(self.grid.next_boundary(now, mode))

    def _take_window(self, now: float) -> tuple[int, int]:
        """(start, end) ticks of a take triggered at ``now``."""
        start_q = self._start_quarters(now)
        # Ticks on the REMI grid; round up so the answer never starts early.
        start_tick = -(-int(round(start_q * TICKS_PER_QUARTER * 1000)) // 1000)
        bar_quarters = self.grid.beats_per_bar * self.grid.meter.quarters_per_beat()
        return start_tick, start_tick + int(round(self.settings.bars * bar_quarters * TICKS_PER_QUARTER))

    def trigger(self, now: float | None = None) -> Take:
        """Answer now: flush the context, sample K variations, play the first.

        A take prepared during the pause for exactly this context, window and
        settings is played as it is; otherwise row 0's notes go to the Player
        as each is sampled.
        """
        t0 = time.perf_counter()
        now = self.clock.now() if now is None else now
        s = self.settings
        self._held.clear()
        self._accept(self.encoder.flush(self.quarters_at(now)))
        window = self._take_window(now)
        velocity = int(statistics.median(self._velocities)) if self._velocities else 80
        self.player.cancel()
        self.cancel_take.clear()
        first_note: list[float] = []

        def play(note: DecodedNote) -> None:
            if self.cancel_take.is_set():
                return
            self.player.schedule([self._planned(note, velocity)])
            if not first_note:
                first_note.append(time.perf_counter() - t0)

        prepared, self._prepared = self._prepared, None
        if (prepared is not None and prepared.version == self._context_version
                and prepared.window == window and prepared.settings == s):
            variations = prepared.variations
            self.player.schedule(self._planned(n, velocity) for n in variations[0])
            if variations[0]:
                first_note.append(time.perf_counter() - t0)
        else:
            assert self.runner.logits is not None
            variations = generate(self.runner.model, self.runner.state, self.runner.logits[0],
                                  self.track, *window, max(1, s.variations),
                                  s.sampling(), seed=s.seed, on_note=play,
                                  should_stop=self.cancel_take.is_set)
        take = self.record_take(window[0] / TICKS_PER_QUARTER, variations, velocity,
                                first_note_latency_s=first_note[0] if first_note else None,
                                prepared=prepared is not None and variations is prepared.variations)
        self._new_notes_since_take = False
        log.info("take %d: %s notes in %d variation(s)%s", take.number,
                 [len(v) for v in variations], len(variations), " (prepared)" if take.prepared else "")
        return take

    def _planned(self, note: DecodedNote, velocity: int, shift_q: float = 0.0) -> PlannedNote:
        start = self.time_at_quarters(note.start_beats + shift_q)
        end = self.time_at_quarters(note.start_beats + note.duration_beats + shift_q)
        return PlannedNote(note.pitch, velocity, start, end)

    def record_take(self, start_quarters: float, variations: list[list[DecodedNote]], velocity: int,
                    **extra: object) -> Take:
        """Number a new take and keep it; it is the one playing from now on.

        Numbers come from a counter, not ``len(takes)``: a discarded take's
        number is never given again (drag files are named after it).
        """
        self.stats.takes += 1
        take = Take(self.stats.takes, start_quarters, variations, velocity, **extra)
        self.takes.append(take)
        self.playing = take
        return take

    def find_take(self, take: Take | int | None) -> Take | None:
        """A take of this session by object or number; None means the last one."""
        if take is None:
            return self.takes[-1] if self.takes else None
        for t in self.takes:
            if t is take or (isinstance(take, int) and t.number == take):
                return t
        return None

    def audition(self, index: int, now: float | None = None, take: Take | int | None = None) -> Take | None:
        """Play variation ``index`` of ``take`` (default: the last) from the next bar line.

        Whatever was playing stops first (the Player sends its note-offs).
        Returns the take, or None when there is no such take.
        """
        target = self.find_take(take)
        if target is None:
            return None
        target.chosen = index % len(target.variations)
        now = self.clock.now() if now is None else now
        start_q = self.quarters_at(self.grid.next_boundary(now, "bar"))
        shift = start_q - target.start_quarters
        self.player.replace([self._planned(n, target.velocity, shift) for n in target.notes()])
        self.playing = target
        return target

    def next_variation(self, now: float | None = None, take: Take | int | None = None) -> Take | None:
        target = self.find_take(take)
        return None if target is None else self.audition(target.chosen + 1, now, target)

    def previous_variation(self, now: float | None = None, take: Take | int | None = None) -> Take | None:
        target = self.find_take(take)
        return None if target is None else self.audition(target.chosen - 1, now, target)

    def discard(self, take: Take | int) -> Take | None:
        """Forget a take; if its notes are playing, stop them (with their note-offs)."""
        target = self.find_take(take)
        if target is None:
            return None
        self.takes = [t for t in self.takes if t is not target]
        if self.playing is target:
            self.player.cancel()
            self.playing = None
        return target

    def accept(self, take: Take | int | None = None, index: int | None = None) -> Take | None:
        """Mark a take (default: the last) as kept, with variation ``index`` (default: its current one)."""
        target = self.find_take(take)
        if target is None:
            return None
        if index is not None:
            target.chosen = index % len(target.variations)
        target.accepted = True
        return target

    def stop(self) -> None:
        """Stop playback; every note the Player started gets its note-off."""
        self.player.cancel()
        self.playing = None
