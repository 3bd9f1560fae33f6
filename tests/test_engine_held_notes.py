"""Held keys that lose their note-off must not silence the app for good (issue 21).

All Notes Off / All Sound Off release every held key, Reset All Controllers
and CC 64 going up lift the pedal, a key held past the bound with no other
input stops blocking the silence trigger (logged once), and the engine
reports what it holds so the GUI can show and clear it. Fake clock, no ports.
"""
from __future__ import annotations

import logging

import mido

from copilot_app.engine.held_notes import HeldNotes, held_bound_s, note_name
from copilot_app.engine.midi_input import Stamped, route
from tests.test_engine_session import make_session, play, tiny_model  # noqa: F401  (fixture)

# 0.5 s a beat at 120 BPM; the silence trigger waits 2 beats (1 s).
STUCK = [(0.0, "on", 60, 80), (0.45, "off", 60), (0.5, "on", 64, 90)]  # 64's note-off never comes


def cc(session, clock, t, control, value=0, channel=0):
    clock.set(t)
    session.handle(route(Stamped(t, mido.Message("control_change", channel=channel, control=control,
                                                 value=value))))


def test_a_lost_note_off_blocks_the_trigger_until_all_notes_off(tiny_model):  # noqa: F811
    session, player, port, clock = make_session(tiny_model)
    play(session, clock, STUCK)
    assert session.poll(3.0) is None                  # key 64 is still "down"
    assert session.held_notes(3.0) == HeldNotes((64,))
    cc(session, clock, 3.1, 123)                      # the DAW stops: All Notes Off
    assert session.held_notes(3.1) == HeldNotes()
    assert session.poll(3.5) is None                  # silence counts from the release
    take = session.poll(4.2)
    assert take is not None and take.notes()


def test_all_sound_off_releases_too_and_the_pedal_stays_until_reset(tiny_model):  # noqa: F811
    session, _player, _port, clock = make_session(tiny_model)
    play(session, clock, [(0.0, "on", 60, 80)])
    cc(session, clock, 0.2, 64, 127)                  # sustain down
    assert session.held_notes(0.2) == HeldNotes((60,), (), True)
    cc(session, clock, 0.4, 120)                      # All Sound Off: keys up, pedal untouched
    assert session.held_notes(0.4) == HeldNotes((), (), True)
    cc(session, clock, 0.5, 121)                      # Reset All Controllers: pedal up
    assert session.held_notes(0.5) == HeldNotes()
    cc(session, clock, 0.6, 64, 127)
    cc(session, clock, 0.7, 64, 0)                    # CC 64 going up
    assert not session.held_notes(0.7)
    assert session.poll(2.0) is not None              # nothing blocks the trigger


def test_a_stuck_key_past_the_bound_no_longer_blocks_the_trigger_and_is_logged_once(
        tiny_model, caplog):  # noqa: F811
    session, player, port, clock = make_session(tiny_model)
    play(session, clock, STUCK)
    bound = held_bound_s(2.0)                          # 2 s a 4/4 bar at 120 BPM
    assert bound >= 4.0
    assert session.poll(0.5 + bound - 0.1) is None
    assert session.held_notes(0.5 + bound - 0.1).stuck == ()
    with caplog.at_level(logging.WARNING, logger="copilot_app.engine.session"):
        assert session.held_notes(0.5 + bound + 0.01).stuck == (64,)   # the view marks it stuck
        take = session.poll(0.5 + bound + 0.01)
        assert take is not None and take.notes()
        # The answer starts after the moment it was asked for, not back when the key went down.
        assert take.start_quarters * 0.5 >= 0.5 + bound
        session.poll(0.5 + bound + 0.5)
    stuck_lines = [r for r in caplog.records if "stuck" in r.getMessage()]
    assert len(stuck_lines) == 1 and "[64]" in stuck_lines[0].getMessage()


def test_release_held_is_the_clear_command(tiny_model):  # noqa: F811
    session, _player, _port, clock = make_session(tiny_model)
    play(session, clock, [(0.0, "on", 60, 80), (0.1, "on", 67, 80)])
    cc(session, clock, 0.2, 64, 127)
    assert session.release_held(0.3) == [60, 67]
    assert session.held_notes(0.3) == HeldNotes()
    assert session.release_held(0.4) == []


def test_held_notes_describe_themselves():
    assert note_name(60) == "C4" and note_name(61) == "C#4" and note_name(21) == "A0"
    assert HeldNotes((60, 64), (64,), True).describe() == "C4 E4? + pedal"
    assert HeldNotes().describe() == "" and not HeldNotes()
