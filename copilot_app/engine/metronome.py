"""Metronome and count-in clicks on the General MIDI drum channel.

Clicks are planned a little ahead on their own Player (so cancelling a take
never silences the click) as short notes: a high wood block on the bar line,
a low one on the other beats.
"""
from __future__ import annotations

import math

from copilot_app.engine.clock import InternalGrid, MidiClockGrid
from copilot_app.engine.player import PlannedNote, Player

DRUM_CHANNEL = 9
ACCENT, BEAT = 76, 77  # GM hi / low wood block
CLICK_S = 0.05
LOOKAHEAD_S = 0.5


class Metronome:
    def __init__(self, player: Player, grid: InternalGrid | MidiClockGrid, enabled: bool = False,
                 velocity: int = 90) -> None:
        self.player, self.grid = player, grid
        self.enabled = enabled
        self.velocity = velocity
        self._next_beat: int | None = None

    def _click(self, beat: int) -> PlannedNote:
        t = self.grid.time_at(beat)
        pitch = ACCENT if beat % self.grid.beats_per_bar == 0 else BEAT
        return PlannedNote(pitch, self.velocity, t, t + CLICK_S, DRUM_CHANNEL)

    def tick(self, now: float) -> int:
        """Plan the clicks due within the look-ahead; returns how many were added."""
        if not self.enabled:
            self._next_beat = None
            return 0
        first = math.ceil(self.grid.beat_at(now) - 1e-9)
        beat = first if self._next_beat is None else max(self._next_beat, first)
        clicks = []
        while self.grid.time_at(beat) <= now + LOOKAHEAD_S:
            clicks.append(self._click(beat))
            beat += 1
        self._next_beat = beat
        return self.player.schedule(clicks)

    def count_in(self, now: float, bars: int = 1) -> float:
        """Click ``bars`` bars from the next bar line; returns when playing should start."""
        start = self.grid.beat_at(self.grid.next_boundary(now, "bar"))
        beats = int(round(start))
        n = bars * self.grid.beats_per_bar
        self.player.schedule(self._click(b) for b in range(beats, beats + n))
        return self.grid.time_at(beats + n)
