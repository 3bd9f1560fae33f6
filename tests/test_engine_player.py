"""The Player on a fake clock: timing, re-strikes, cancel and panic."""
from __future__ import annotations

import threading
import time

import mido

from copilot_app.engine.clock import FakeClock
from copilot_app.engine.player import PlannedNote, Player


class RecordingPort:
    def __init__(self) -> None:
        self.messages: list[mido.Message] = []
        self.lock = threading.Lock()

    def send(self, msg: mido.Message) -> None:
        with self.lock:
            self.messages.append(msg)


def balance(messages: list[mido.Message]) -> dict[tuple[int, int], int]:
    """Open notes implied by a message stream (note-on +1, note-off -1)."""
    open_count: dict[tuple[int, int], int] = {}
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            open_count[(m.channel, m.note)] = open_count.get((m.channel, m.note), 0) + 1
        elif m.type in ("note_off", "note_on"):
            open_count[(m.channel, m.note)] = open_count.get((m.channel, m.note), 0) - 1
        elif m.type == "control_change" and m.control == 123:
            open_count = {k: v for k, v in open_count.items() if k[0] != m.channel}
    return {k: v for k, v in open_count.items() if v}


def test_notes_go_out_at_their_time():
    clock, port = FakeClock(), RecordingPort()
    player = Player(port, clock)
    player.sent_log = []
    player.schedule([PlannedNote(60, 90, 1.0, 1.5), PlannedNote(64, 80, 1.5, 2.0)])
    assert player.pump(0.99) == 0
    clock.set(1.0)
    assert player.pump() == 1 and player.open_notes == {(0, 60)}
    clock.set(1.5)
    player.pump()
    # note-off of 60 goes before the note-on of 64 at the same instant
    assert [(m.type, m.note) for m in port.messages] == [("note_on", 60), ("note_off", 60), ("note_on", 64)]
    clock.set(2.0)
    player.pump()
    assert player.open_notes == set() and balance(port.messages) == {}
    assert [t for t, _ in player.sent_log] == [1.0, 1.5, 1.5, 2.0]


def test_restrike_of_a_sounding_pitch_keeps_pairs_matched():
    clock, port = FakeClock(), RecordingPort()
    player = Player(port, clock)
    player.schedule([PlannedNote(60, 90, 0.0, 2.0), PlannedNote(60, 70, 1.0, 1.5)])
    for t in (0.0, 1.0, 1.5, 2.0):
        player.pump(t)
    assert [(m.type, m.velocity) for m in port.messages] == [
        ("note_on", 90), ("note_off", 0), ("note_on", 70), ("note_off", 0)]
    assert balance(port.messages) == {}


def test_cancel_ends_every_started_note_and_drops_the_rest():
    clock, port = FakeClock(), RecordingPort()
    player = Player(port, clock)
    player.schedule([PlannedNote(p, 90, 0.0, 4.0) for p in (60, 64, 67)] + [PlannedNote(72, 90, 3.0, 4.0)])
    player.pump(0.5)
    assert len(player.open_notes) == 3
    player.cancel()
    assert player.open_notes == set() and player.pending == 0
    player.pump(10.0)
    assert balance(port.messages) == {}
    assert not any(m.type == "note_on" and m.note == 72 for m in port.messages)


def test_panic_silences_all_channels():
    port = RecordingPort()
    player = Player(port, FakeClock())
    player.schedule([PlannedNote(60, 90, 0.0, 1.0, channel=3)])
    player.pump(0.0)
    player.panic()
    ccs = [(m.channel, m.control) for m in port.messages if m.type == "control_change"]
    assert {(c, 123) for c in range(16)} <= set(ccs) and {(c, 64) for c in range(16)} <= set(ccs)
    assert balance(port.messages) == {}


def test_replace_swaps_the_plan_while_playing():
    port = RecordingPort()
    player = Player(port, FakeClock())
    player.schedule([PlannedNote(60, 90, 0.0, 2.0), PlannedNote(62, 90, 1.0, 2.0)])
    player.pump(0.5)
    player.replace([PlannedNote(70, 90, 0.6, 0.9)])
    player.pump(1.0)
    notes_on = [m.note for m in port.messages if m.type == "note_on"]
    assert notes_on == [60, 70] and balance(port.messages) == {}


def test_failing_port_does_not_kill_the_player():
    class Broken:
        def send(self, msg):
            raise OSError("port vanished")

    errors = []
    player = Player(Broken(), FakeClock(), on_error=errors.append)
    player.schedule([PlannedNote(60, 90, 0.0, 1.0)])
    player.pump(1.0)
    assert len(errors) == 2 and player.open_notes == set()


def test_scheduler_thread_plays_in_real_time_and_close_leaves_nothing_open():
    port = RecordingPort()
    player = Player(port)
    player.start()
    t0 = time.monotonic()
    player.schedule([PlannedNote(60, 90, t0 + 0.05, t0 + 0.10), PlannedNote(67, 90, t0 + 0.08, t0 + 30)])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(port.messages) < 3:
        time.sleep(0.01)
    assert [m.type for m in port.messages[:3]] == ["note_on", "note_on", "note_off"]
    player.close()  # the 30 s note must be ended now
    assert balance(port.messages) == {}


def test_starting_the_scheduler_shortens_the_gil_switch_interval():
    """A due note must not wait the default 5 ms for a sampling thread's GIL."""
    import sys

    from copilot_app.engine.player import GIL_SWITCH_INTERVAL_S

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        player = Player(RecordingPort())
        player.start()
        assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S < 0.002
        player.close()
        sys.setswitchinterval(0.0001)
        other = Player(RecordingPort())
        other.start()  # never raised
        other.close()
        assert abs(sys.getswitchinterval() - 0.0001) < 1e-6
    finally:
        sys.setswitchinterval(before)


def test_starting_the_scheduler_takes_live_objects_out_of_the_collector():
    """A full GC pass over a loaded model would stall a due note (bench: 130 ms)."""
    import gc

    gc.unfreeze()
    keep = [object() for _ in range(1000)]  # noqa: F841 - alive when the Player starts
    player = Player(RecordingPort())
    try:
        player.start()
        assert gc.get_freeze_count() >= 1000
    finally:
        player.close()
        gc.unfreeze()
