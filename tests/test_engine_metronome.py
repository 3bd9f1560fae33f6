from __future__ import annotations

from copilot_app.engine.clock import FakeClock, InternalGrid, Meter
from copilot_app.engine.metronome import ACCENT, BEAT, DRUM_CHANNEL, Metronome
from copilot_app.engine.player import Player
from tests.test_engine_player import RecordingPort, balance


def test_clicks_on_every_beat_with_accent_on_the_bar():
    clock, port = FakeClock(), RecordingPort()
    player = Player(port, clock)
    player.sent_log = []
    metro = Metronome(player, InternalGrid(120, Meter(3, 4)), enabled=True)
    t = 0.0
    while t < 3.0:  # 6 beats = 2 bars of 3/4
        clock.set(t)
        metro.tick(t)
        player.pump(t)
        t = round(t + 0.01, 2)
    ons = [(round(ts, 2), m.note) for ts, m in player.sent_log if m.type == "note_on"]
    assert ons == [(0.0, ACCENT), (0.5, BEAT), (1.0, BEAT), (1.5, ACCENT), (2.0, BEAT), (2.5, BEAT)]
    assert all(m.channel == DRUM_CHANNEL for m in port.messages)
    player.pump(10)
    assert balance(port.messages) == {}


def test_disabled_metronome_is_silent():
    player = Player(RecordingPort(), FakeClock())
    metro = Metronome(player, InternalGrid(120), enabled=False)
    assert metro.tick(0.0) == 0 and player.pending == 0

