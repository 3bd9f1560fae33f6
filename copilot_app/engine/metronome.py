"""Metronome clicks on the General MIDI drum channel, one on every beat of the meter.

Clicks are planned a little ahead on their own Player (so cancelling a take
never silences the click) as short notes: a high wood block on the bar line,
a low one on the other beats.
"""
from __future__ import annotations

import math

from copilot_app.engine.clock import InternalGrid, MidiClockGrid
from copilot_app.engine.midi_input import DRUM_CHANNEL
from copilot_app.engine.player import PlannedNote, Player

ACCENT, BEAT = 76, 77  # GM hi wood block on the bar line, low on the other beats
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
