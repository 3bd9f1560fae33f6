"""Keys the engine believes are down, and when to stop believing it.

A MIDI note-off can be lost: a flooded port, an unplugged keyboard, a DAW
that stops with All Notes Off (CC 123) instead of one note-off per note.
While the engine thinks a key is down the silence trigger waits for it, so
one lost note-off would keep the app from ever answering again. Three
defences, applied by ``LiveSession``:

* CC 123 All Notes Off and CC 120 All Sound Off release every held key;
  CC 121 Reset All Controllers lifts the sustain pedal (as CC 64 below 64
  does), which ends the notes the pedal was holding;
* a key held longer than ``held_bound_s`` with no other input at all no
  longer blocks the silence trigger (logged once per such key);
* ``release_held`` (the GUI's Clear command) releases them by hand.

``HeldNotes`` is the immutable picture the engine reports to its observers
(the GUI shows it so a stuck key is visible).
"""
from __future__ import annotations

from dataclasses import dataclass

ALL_SOUND_OFF_CC = 120
RESET_CONTROLLERS_CC = 121
ALL_NOTES_OFF_CC = 123
RELEASE_ALL_CCS = frozenset({ALL_SOUND_OFF_CC, ALL_NOTES_OFF_CC})

HELD_BOUND_S = 8.0      # a key held this long with no other input is taken as stuck ...
HELD_BOUND_BARS = 2.0   # ... or this many bars, whichever is longer (slow tempi hold longer)

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def held_bound_s(seconds_per_bar: float) -> float:
    """Seconds after which held keys with no other input stop blocking the trigger."""
    return max(HELD_BOUND_S, HELD_BOUND_BARS * seconds_per_bar)


def note_name(pitch: int) -> str:
    """MIDI note number -> name with octave, middle C = C4."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass(frozen=True)
class HeldNotes:
    """What the engine holds as down now (sent to observers when it changes)."""

    pitches: tuple[int, ...] = ()   # keys down, ascending
    stuck: tuple[int, ...] = ()     # those held past the bound with no other input
    pedal: bool = False             # sustain pedal down

    def __bool__(self) -> bool:
        return bool(self.pitches) or self.pedal

    def describe(self) -> str:
        """'C4 E4? + pedal' (? marks a stuck key), or '' when nothing is held."""
        parts = [note_name(p) + ("?" if p in self.stuck else "") for p in self.pitches]
        text = " ".join(parts)
        if self.pedal:
            text = f"{text} + pedal" if text else "pedal"
        return text
