"""How loud the answer plays: the player's own dynamics, not one flat velocity.

The model has no Velocity tokens (the score corpus it learned from is flat),
so every sampled note comes out at one velocity. The answer instead takes its
dynamics from the phrase it answers, read off the last bars the player played:

- level:   the mean velocity of the last ``CONTOUR_BARS`` bars (where the
           player is now, not where they started), pulled toward the whole
           phrase's mean when those bars hold few notes (one loud chord is
           not a new level);
- contour: each of those bars' deviation from that level, echoed bar by bar
           over the answer (a call that swells is answered by a swell);
- accents: the mean deviation, at each eighth-note position of the bar, of
           the notes there from their bar's mean, over the last
           ``ACCENT_BARS`` bars (a strong first beat, an off-beat push),
           shrunk toward 0 where few notes showed it;
- range:   the result is kept within the quietest and loudest note of those
           bars, so a soft phrase is never answered loudly and the reverse.

Or a fixed velocity (``fixed``), as a setting for players who want one.

Pure functions on (tick, velocity) pairs and tick positions, no clock, no
MIDI: ``phrase_dynamics`` reads the phrase once per take, ``Dynamics.velocity``
gives each answer note its velocity as it is decoded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from model.tokens.config import TICKS_PER_QUARTER

DEFAULT_VELOCITY = 80          # with nothing played yet
CONTOUR_BARS = 2               # bars whose level and shape the answer echoes
ACCENT_BARS = 4                # bars the accent profile is read from
SLOT_TICKS = TICKS_PER_QUARTER // 2  # accents per eighth-note position
SHRINK = 1.0                   # pseudo-count pulling thin evidence toward 0
LEVEL_SHRINK = 4.0             # pseudo-notes at the phrase's mean in the recent level


def _clamp(v: float, low: int, high: int) -> int:
    return int(max(low, min(high, round(v))))


@dataclass(frozen=True)
class Dynamics:
    """A phrase's dynamics, ready to give answer notes their velocities."""

    level: float                       # mean velocity of the last bars
    low: int                           # quietest note of the phrase's last bars
    high: int                          # loudest
    contour: tuple[float, ...] = ()    # per-bar deviation from level, oldest bar first
    accents: tuple[float, ...] = ()    # per-slot deviation from the bar's mean
    bar_ticks: int = 4 * TICKS_PER_QUARTER
    fixed: int | None = None           # one velocity for every note instead

    def velocity(self, tick: int, answer_start: int = 0) -> int:
        """The velocity of an answer note starting at ``tick`` (session ticks).

        ``answer_start`` is the tick the answer starts at: its bar is the
        first bar of the echoed contour.
        """
        if self.fixed is not None:
            return _clamp(self.fixed, 1, 127)
        bar_ticks = max(1, self.bar_ticks)
        v = self.level
        if self.contour:
            bar = max(0, (tick - (answer_start // bar_ticks) * bar_ticks) // bar_ticks)
            v += self.contour[bar % len(self.contour)]
        if self.accents:
            v += self.accents[min(len(self.accents) - 1, (tick % bar_ticks) // SLOT_TICKS)]
        return _clamp(v, max(1, self.low), min(127, self.high))

    def velocities(self, ticks: Iterable[int], answer_start: int = 0) -> list[int]:
        return [self.velocity(t, answer_start) for t in ticks]


def phrase_dynamics(notes: Sequence[tuple[int, int]], bar_ticks: int, *,
                    fixed: int | None = None) -> Dynamics:
    """Read the dynamics of a phrase: ``notes`` are (start tick, velocity) pairs on
    a time line whose tick 0 is a bar line; ``bar_ticks`` is the bar's length."""
    bar_ticks = max(1, int(bar_ticks))
    played = [(int(t), int(v)) for t, v in notes if v > 0]
    if not played:
        return Dynamics(DEFAULT_VELOCITY, 1, 127, bar_ticks=bar_ticks, fixed=fixed)
    last_bar = max(t for t, _ in played) // bar_ticks
    by_bar: dict[int, list[tuple[int, int]]] = {}
    for t, v in played:
        bar = t // bar_ticks
        if bar > last_bar - ACCENT_BARS:
            by_bar.setdefault(bar, []).append((t, v))
    recent = [v for bar in range(last_bar - CONTOUR_BARS + 1, last_bar + 1) for _, v in by_bar.get(bar, [])]
    every = [v for bar_notes in by_bar.values() for _, v in bar_notes]
    level = (sum(recent) + LEVEL_SHRINK * sum(every) / len(every)) / (len(recent) + LEVEL_SHRINK)
    low, high = min(every), max(every)

    contour = []
    for bar in range(last_bar - CONTOUR_BARS + 1, last_bar + 1):
        vs = [v for _, v in by_bar.get(bar, [])]
        # A bar the player left empty (or nearly) says little about its level.
        contour.append(sum(v - level for v in vs) / (len(vs) + SHRINK) if vs else 0.0)

    slots = -(-bar_ticks // SLOT_TICKS)
    sums, counts = [0.0] * slots, [0] * slots
    for bar_notes in by_bar.values():
        mean = sum(v for _, v in bar_notes) / len(bar_notes)
        for t, v in bar_notes:
            slot = min(slots - 1, (t % bar_ticks) // SLOT_TICKS)
            sums[slot] += v - mean
            counts[slot] += 1
    accents = tuple(s / (c + SHRINK) for s, c in zip(sums, counts))
    return Dynamics(level, low, high, tuple(contour), accents, bar_ticks, fixed)


def flat_velocity(notes: Sequence[tuple[int, int]]) -> int:
    """The old behaviour, for comparison: the median velocity, one for every note."""
    vs = sorted(v for _, v in notes if v > 0)
    return vs[len(vs) // 2] if vs else DEFAULT_VELOCITY
