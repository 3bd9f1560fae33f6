"""Odd MIDI never crashes the input path; notes and pedal come through."""
from __future__ import annotations

import mido
import pytest

from copilot_app.engine.midi_input import Stamped, route

ODD_BYTES = [
    [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],  # sysex identity request
    [0x99, 36, 100],                         # drums on channel 10
    [0x90, 10, 100],                         # below the piano
    [0x90, 120, 100],                        # above the piano
    [0xA0, 60, 30],                          # poly aftertouch
    [0xE0, 0, 64],                           # pitch bend
    [0xC0, 5],                               # program change
    [0xF8], [0xFA], [0xFC], [0xFB], [0xF2, 0, 2],  # clock, start, stop, continue, SPP
    [0xFE],                                  # active sensing
]


def test_odd_messages_are_routed_not_raised():
    parser = mido.Parser()
    for data in ODD_BYTES:
        parser.feed(data)
    kinds = [route(Stamped(0.0, msg)).kind for msg in parser]
    assert kinds.count("realtime") == 5
    assert "note_on" not in kinds and "note_off" not in kinds


def test_running_status_and_velocity_zero_note_on():
    # rtmidi hands over whole messages (ALSA and JACK expand running status);
    # a raw running-status stream must still not break anything: the bytes
    # without a status are dropped, whole messages after them come through.
    parser = mido.Parser()
    parser.feed([0x90, 60, 100, 64, 90, 60, 0])
    parser.feed([0x90, 64, 90, 0x90, 60, 0])
    routed = [route(Stamped(0.1 * (i + 1), msg)) for i, msg in enumerate(parser)]
    assert [(r.kind, r.pitch) for r in routed] == [("note_on", 60), ("note_on", 64), ("note_off", 60)]
    assert [r.time for r in routed] == pytest.approx([0.1, 0.2, 0.3])


def test_sustain_pedal_is_kept():
    r = route(Stamped(1.0, mido.Message("control_change", control=64, value=127)))
    assert r.kind == "pedal" and r.value == 127
