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
from copilot_app.engine.generation import ContextTrack, generate
from copilot_app.engine.midi_input import Routed
from copilot_app.engine.player import PlannedNote, Player
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
        self.logits: torch.Tensor | None = None

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
        self._accept(self.encoder.advance(self.quarters_at(now)))
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
            if self.takes:
                self.takes[-1].interrupted = True

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
        take = Take(len(self.takes) + 1, window[0] / TICKS_PER_QUARTER, variations, velocity,
                    first_note_latency_s=first_note[0] if first_note else None,
                    prepared=prepared is not None and variations is prepared.variations)
        self.takes.append(take)
        self.stats.takes += 1
        self._new_notes_since_take = False
        log.info("take %d: %s notes in %d variation(s)%s", take.number,
                 [len(v) for v in variations], len(variations), " (prepared)" if take.prepared else "")
        return take

    def _planned(self, note: DecodedNote, velocity: int, shift_q: float = 0.0) -> PlannedNote:
        start = self.time_at_quarters(note.start_beats + shift_q)
        end = self.time_at_quarters(note.start_beats + note.duration_beats + shift_q)
        return PlannedNote(note.pitch, velocity, start, end)

    def audition(self, index: int, now: float | None = None) -> None:
        """Play variation ``index`` of the last take from the next bar line."""
        if not self.takes:
            return
        take = self.takes[-1]
        take.chosen = index % len(take.variations)
        now = self.clock.now() if now is None else now
        start_q = self.quarters_at(self.grid.next_boundary(now, "bar"))
        shift = start_q - take.start_quarters
        self.player.replace([self._planned(n, take.velocity, shift) for n in take.notes()])

    def next_variation(self, now: float | None = None) -> None:
        if self.takes:
            self.audition(self.takes[-1].chosen + 1, now)

    def previous_variation(self, now: float | None = None) -> None:
        if self.takes:
            self.audition(self.takes[-1].chosen - 1, now)

    def accept(self) -> Take | None:
        """Mark the last take's current variation as the one to keep."""
        if not self.takes:
            return None
        self.takes[-1].accepted = True
        return self.takes[-1]

    def stop(self) -> None:
        """Stop playback; every note the Player started gets its note-off."""
        self.player.cancel()
