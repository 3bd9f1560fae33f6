"""Incoming MIDI: timestamp in the rtmidi callback, sort out on the engine thread.

The rtmidi callback only stamps the message with the engine clock and puts it
on the live engine's inbox (it runs on rtmidi's own thread and must never
block; see ``live.LiveEngine.midi_callback``). The engine thread drains the
inbox and ``route``s each message: notes and pedal become
performance events for the streaming encoder, real-time messages go to the
MIDI-clock grid, and everything a piano continuation has no use for is
dropped with a reason that can be logged at debug level (sysex, drums on
channel 10, pitches off the piano, aftertouch, ...). Odd input never raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import mido

from model.tokens.config import PITCH_RANGE

PIANO_LOW, PIANO_HIGH = PITCH_RANGE  # what the tokenizer knows: the 88 keys
DRUM_CHANNEL = 9  # "channel 10" in MIDI's 1-based numbering
SUSTAIN_CC = 64
REALTIME = frozenset({"clock", "start", "stop", "continue", "songpos"})


class Stamped(NamedTuple):
    time: float  # seconds on the engine clock
    msg: mido.Message


@dataclass(frozen=True)
class Routed:
    """What one message means to the engine; exactly one of the kinds is set."""

    kind: str  # "note_on", "note_off", "pedal", "control", "realtime" or "ignored"
    time: float
    pitch: int = 0
    velocity: int = 0
    value: int = 0
    control: int = 0
    reason: str = ""
    msg: mido.Message | None = None


def route(stamped: Stamped) -> Routed:
    """Classify one stamped message (see module docstring)."""
    t, msg = stamped
    kind = msg.type
    if kind in REALTIME:
        return Routed("realtime", t, msg=msg)
    channel = getattr(msg, "channel", None)
    if channel == DRUM_CHANNEL:
        return Routed("ignored", t, reason="drum channel 10")
    if kind in ("note_on", "note_off"):
        if not PIANO_LOW <= msg.note <= PIANO_HIGH:
            return Routed("ignored", t, reason=f"pitch {msg.note} is off the piano")
        if kind == "note_on" and msg.velocity > 0:
            return Routed("note_on", t, pitch=msg.note, velocity=msg.velocity)
        return Routed("note_off", t, pitch=msg.note)  # includes velocity-0 note-on
    if kind == "control_change":
        if msg.control == SUSTAIN_CC:
            return Routed("pedal", t, value=msg.value)
        return Routed("control", t, control=msg.control, value=msg.value)
    if kind == "sysex":
        return Routed("ignored", t, reason="system exclusive")
    return Routed("ignored", t, reason=f"{kind} is not used")
