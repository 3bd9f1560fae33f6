"""The live engine: MIDI I/O, clock, session, player. No Qt in this package."""
