"""Steering an answer while it is sampled: key/scale lock, register, density, texture.

``Steering`` is what the composer set (saved with the session, given as
flags); ``Steering.resolve(heard)`` turns it into a ``Steer`` for one take,
against the notes of the phrase it answers: the key ("auto" follows the
key those pitches suggest), the register (by default the phrase's range
widened by ``REGISTER_MARGIN``). The generator asks the ``Steer`` at every
step for

* a hard mask: pitches outside the scale or the register are never sampled,
  so 100% of the answer's notes obey them (the grammar still has Position
  and Bar to go on with, and a fresh onset always has an allowed pitch);
* a soft bias on the logits. Density sets a pace, the phrase's notes per
  quarter note times 2**density (half as busy ... twice as busy), and steers
  toward it: a row behind the pace is nudged toward nearer next onsets, a row
  ahead toward farther ones and the bar line, in proportion to how far off it
  is (a small tilt alone barely moves a model whose rhythm is confident, a
  large one flips it to extremes; following a pace moves notes per bar
  smoothly). Texture sets the notes struck together: from the phrase's own
  notes per onset toward one (single line, which -1 enforces) or toward
  ``CHORD_NOTES`` (+1); at each onset another note is favoured while the
  onset has fewer than that and disfavoured once it has as many. The model
  still chooses; bar lines and the grammar are untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np

from model.scales import estimate_key, parse_key, scale_pitch_classes, tonic_of
from model.tokens.config import PITCH_RANGE, TICKS_PER_QUARTER
from model.tokens.grammar import token_roles
from model.tokens.performance import GridNote, grid_step, ticks_per_beat

if TYPE_CHECKING:
    from model.generation import ContextTrack

# The auto register: the phrase's lowest and highest notes widened by a fourth.
# Measured on held-out 4-bar contexts: 99.5% of the real next 2 bars' notes
# fall inside (POP909 0.9949, music21 0.9944; 0.97 / 0.91 with no margin).
REGISTER_MARGIN = 5
MIN_REGISTER = 12  # a register narrower than an octave is widened around its middle
# Logit tilt per doubling of the gap to the next onset, per quarter note a row
# is behind (or ahead of) its pace (bench/steering_bench.py measures the result).
PACE_GAIN = 3.0
MIN_GAP_Q = 1 / 12  # the finest grid step, in quarter notes
# Notes per onset texture +1 aims at (a four-note chord), and the logit bias
# on another note at an onset per note it is short of (or past) that aim.
CHORD_NOTES = 4.0
TEXTURE_GAIN = 3.0
KEY_MODES = ("off", "auto")


def check_key(text: str) -> str:
    """``text`` if it is "off", "auto" or "<tonic> <scale>"; ValueError (one line) if not."""
    if text.strip().lower() in KEY_MODES:
        return text.strip().lower()
    parse_key(text)
    return text.strip()


def parse_pitch(text: str) -> int:
    """A MIDI note number or a note name with octave ("C4" = 60, "F#2", "Bb5")."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        value = int(text)
    else:
        i = next((k for k, ch in enumerate(text) if ch.isdigit() or ch == "-"), len(text))
        if i == 0 or i == len(text):
            raise ValueError(f"not a pitch: {text!r} (a MIDI number or a name like C4)")
        value = tonic_of(text[:i]) + 12 * (int(text[i:]) + 1)
    if not PITCH_RANGE[0] <= value <= PITCH_RANGE[1]:
        raise ValueError(f"pitch {text} is outside the piano range {PITCH_RANGE[0]}-{PITCH_RANGE[1]}")
    return value


def parse_register(text: str) -> tuple[int | None, int | None]:
    """(low, high) of "auto" (None, None), "off" (the whole piano) or "LOW-HIGH"
    ("48-84", "C3-C6"; either side may be "auto")."""
    t = text.strip().lower()
    if t == "auto":
        return None, None
    if t == "off":
        return PITCH_RANGE
    low, sep, high = text.strip().partition("-") if not text.strip().startswith("-") else ("", "", "")
    if not sep:
        raise ValueError(f"register {text!r}: use auto, off or LOW-HIGH (e.g. 48-84 or C3-C6)")
    lo = None if low.strip().lower() == "auto" else parse_pitch(low)
    hi = None if high.strip().lower() == "auto" else parse_pitch(high)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"register {text!r}: the lowest pitch is above the highest")
    return lo, hi


@dataclass(frozen=True)
class Steering:
    """The composer's controls. Neutral by default except the auto register."""

    key: str = "off"                  # "off", "auto" or "<tonic> <scale>"
    register_low: int | None = None   # None: the phrase's lowest note - REGISTER_MARGIN
    register_high: int | None = None  # None: the phrase's highest note + REGISTER_MARGIN
    density: float = 0.0              # -1 sparser ... 0 as the model hears it ... +1 busier
    texture: float = 0.0              # -1 single line ... 0 as played ... +1 chords

    def __post_init__(self) -> None:
        check_key(self.key)
        for name in ("density", "texture"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between -1 and 1, not {getattr(self, name)}")

    def heard_key(self, heard: Sequence[int]) -> tuple[int, str] | None:
        """The key the lock uses against these pitches (None: no lock)."""
        mode = self.key.strip().lower()
        if mode == "off":
            return None
        if mode == "auto":
            return estimate_key(heard) if len(heard) else None
        return parse_key(self.key)

    def register(self, heard: Sequence[int]) -> tuple[int, int]:
        lo_p, hi_p = PITCH_RANGE
        if len(heard):
            lo_p, hi_p = max(lo_p, min(heard) - REGISTER_MARGIN), min(hi_p, max(heard) + REGISTER_MARGIN)
        lo = self.register_low if self.register_low is not None else lo_p
        hi = self.register_high if self.register_high is not None else hi_p
        if hi < lo:  # one bound fixed, the other from the phrase: the fixed one wins
            lo, hi = (lo, lo) if self.register_low is not None else (hi, hi)
        if hi - lo < MIN_REGISTER:
            mid = (lo + hi) / 2
            lo = max(PITCH_RANGE[0], int(round(mid - MIN_REGISTER / 2)))
            hi = min(PITCH_RANGE[1], lo + MIN_REGISTER)
        return lo, hi

    def resolve(self, heard: Sequence[GridNote]) -> "Steer":
        """The controls against the notes of the phrase answered (its last bars):
        its key, range, pace and notes per onset."""
        pitches = [n.pitch for n in heard]
        pace = phrase_pace(heard) if self.density != 0.0 else None
        chord = None
        if -1.0 < self.texture != 0.0 and heard:
            own = len(heard) / len({n.start for n in heard})
            chord = own + self.texture * ((own - 1.0) if self.texture < 0 else (max(CHORD_NOTES, own) - own))
        return Steer.build(self.heard_key(pitches), self.register(pitches), self.density, self.texture,
                           None if pace is None else pace * 2.0 ** self.density, chord)


def phrase_pace(notes: Sequence[GridNote]) -> float | None:
    """Notes per quarter note of a phrase, from its first onset to its last
    note's end (None without notes)."""
    if not notes:
        return None
    first = min(n.start for n in notes)
    end = max(n.start + n.duration for n in notes)
    return len(notes) / max((end - first) / TICKS_PER_QUARTER, 1.0)


def steering_from_args(args: object) -> Steering:
    """The controls given as --key/--register/--density/--texture (absent: the defaults)."""
    low, high = getattr(args, "register", (None, None))
    return Steering(getattr(args, "key", Steering.key), low, high,
                    getattr(args, "density", Steering.density), getattr(args, "texture", Steering.texture))


@dataclass(frozen=True)
class Steer:
    """A ``Steering`` made concrete for one take (see the module docstring)."""

    key: tuple[int, str] | None
    low: int
    high: int
    density: float
    texture: float
    pitch_ok: np.ndarray  # [V] bool: False on the pitches the mask forbids
    pace: float | None = None  # notes per quarter note density steers toward (None: off)
    chord: float | None = None  # notes per onset texture steers toward (None: off)

    @classmethod
    def build(cls, key: tuple[int, str] | None, register: tuple[int, int],
              density: float = 0.0, texture: float = 0.0, pace: float | None = None,
              chord: float | None = None) -> "Steer":
        # The mask is cached: a trigger with the same key and register reuses
        # it (building it is most of what steering adds to the first note).
        ok = _pitch_mask(key, (int(register[0]), int(register[1])))
        return cls(key, int(register[0]), int(register[1]), float(density), float(texture), ok, pace, chord)

    @property
    def soft(self) -> bool:
        return self.pace is not None or self.chord is not None

    def allows(self, pitch: int) -> bool:
        v = token_roles()
        return bool(self.pitch_ok[v.pitch_ids[v.pitch_index[pitch]]])

    def apply(self, allowed: np.ndarray, track: "ContextTrack", bias: np.ndarray | None,
              logits: np.ndarray | None = None, temperature: float = 1.0, start_tick: int = 0) -> bool:
        """Narrow ``allowed`` [V] for ``track``'s next token and, where ``bias``
        [V] is given, add the soft controls' logit bias to it (in place).
        ``logits`` [V] (the model's, for this row) let density move the next
        onset without changing how likely another note at this onset is;
        ``start_tick``: where the answer began (its pace is counted from there).
        Returns whether it added any bias."""
        v = track.grammar.v
        allowed &= self.pitch_ok
        after_note = allowed[v.bar] and track.grammar.last_note is not None
        if not after_note:
            # The first onset of a bar stays the model's choice: a sparser
            # setting must not empty whole bars.
            return False
        if self.texture <= -1.0:
            allowed[v.pitch_ids] = False  # single line: one note per onset
        if bias is None:
            return False
        if self.chord is not None:
            here = len(track.grammar.pitches_here)  # notes struck at this onset so far
            bias[v.pitch_ids] += TEXTURE_GAIN * (self.chord - here - 0.5)
        if self.pace is not None:
            self._tilt_next_onset(allowed, track, bias, logits, temperature, start_tick)
        return self.chord is not None or self.pace is not None

    def _tilt_next_onset(self, allowed: np.ndarray, track: "ContextTrack", bias: np.ndarray,
                         logits: np.ndarray | None, temperature: float, start_tick: int) -> None:
        """Behind the pace: the nearer next onsets gain; ahead of it: the farther
        ones and the bar line. Renormalised over the onset choices, so the
        chance of another note at this onset stays the model's."""
        assert self.pace is not None
        here = track.decoder.position_tick
        notes = track.decoder.notes
        before = len(notes)
        while before and notes[before - 1].start >= here:  # the notes of this onset do not count yet
            before -= 1
        behind_q = (here - start_tick) / TICKS_PER_QUARTER - before / self.pace
        num, den = track.meter
        ids, offsets = _onset_choices(num, den)
        gaps_q = (offsets + (track.bar_start_tick - here)) / TICKS_PER_QUARTER
        # On the log of the gap: a sixteenth against an eighth weighs as much
        # as a half bar against a bar (rhythm is felt in ratios).
        tilt = np.log2(np.maximum(gaps_q, MIN_GAP_Q)) * (-PACE_GAIN * behind_q)
        ok = allowed[ids]
        if logits is not None and ok.any():
            t = max(temperature, 1e-3)
            lp = logits[ids][ok] / t
            tilt -= t * (_logsumexp(lp + tilt[ok] / t) - _logsumexp(lp))
        bias[ids] += tilt


@lru_cache(maxsize=256)
def _pitch_mask(key: tuple[int, str] | None, register: tuple[int, int]) -> np.ndarray:
    v = token_roles()
    ok = np.ones(v.size, dtype=bool)
    values = v.pitch_values
    inside = (values >= register[0]) & (values <= register[1])
    if key is not None:
        locked = inside & np.isin(values % 12, sorted(scale_pitch_classes(*key)))
        if locked.any():  # else a scale with no note in the register: the register alone
            inside = locked
    ok[v.pitch_ids] = inside
    ok.flags.writeable = False  # shared between takes
    return ok


@lru_cache(maxsize=32)
def _onset_choices(num: int, den: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, tick offsets from the bar line) of every Position and of the next Bar."""
    v = token_roles()
    ids = np.append(v.pos_ids, v.bar)
    offsets = np.append(np.arange(len(v.pos_ids)) * grid_step(den), num * ticks_per_beat(den))
    return ids, offsets


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + float(np.log(np.exp(x - m).sum()))
