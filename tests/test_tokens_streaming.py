"""Streaming REMI encoder/decoder against miditok, on random performances."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.tokens.grammar import RemiGrammar
from model.tokens.midi_io import decode_tokens, encode_piece
from model.tokens.performance import (
    METER,
    NOTE_OFF,
    NOTE_ON,
    PEDAL,
    PerfEvent,
    quantize_performance,
)
from model.tokens.streaming import StreamingDecoder, StreamingEncoder

METERS = [(4, 4), (3, 4), (2, 4), (6, 8), (9, 8), (5, 4), (2, 2), (3, 2), (7, 8), (12, 8)]
_ORDER = {NOTE_OFF: 0, PEDAL: 1, METER: 2, NOTE_ON: 3}


@st.composite
def performances(draw) -> list[PerfEvent]:
    """Chords, overlaps, long holds, pedal, jitter, silences and meter changes."""
    events: list[PerfEvent] = []
    if draw(st.booleans()):
        num, den = draw(st.sampled_from(METERS))
        events.append(PerfEvent(0.0, METER, num, den))
    t = draw(st.floats(0, 3))
    for _ in range(draw(st.integers(0, 14))):
        gap = draw(st.sampled_from([0.0, 0.01, 0.25, 0.5, 1.0, 1.5, 4.0, 13.0]))
        t += gap + draw(st.floats(-0.04, 0.04))  # jitter off the grid
        t = max(t, 0.0)
        if draw(st.integers(0, 6)) == 0:
            num, den = draw(st.sampled_from(METERS))
            events.append(PerfEvent(t, METER, num, den))
        chord = draw(st.lists(st.integers(18, 111), min_size=1, max_size=4))
        for pitch in chord:
            on = t + draw(st.floats(0, 0.05))
            length = draw(st.sampled_from([0.001, 0.1, 0.3, 0.5, 1.0, 2.0, 7.9, 9.0, 30.0]))
            length += draw(st.floats(0, 0.2))
            events.append(PerfEvent(on, NOTE_ON, pitch, draw(st.integers(1, 127))))
            events.append(PerfEvent(on + length, NOTE_OFF, pitch))
        if draw(st.integers(0, 3)) == 0:
            down = t + draw(st.floats(0, 1))
            events.append(PerfEvent(down, PEDAL, 127))
            events.append(PerfEvent(down + draw(st.floats(0.1, 6)), PEDAL, 0))
    keyed = sorted(enumerate(events), key=lambda ie: (ie[1].time, _ORDER[ie[1].kind], ie[0]))
    return [ev for _, ev in keyed]


def _stream(events: list[PerfEvent], rng: random.Random) -> tuple[StreamingEncoder, list[str]]:
    enc, out = StreamingEncoder(), []
    for ev in events:
        if rng.random() < 0.3:  # the clock ticks between events
            out += enc.advance(rng.uniform(enc.now, ev.time))
        out += enc.feed(ev)
    return enc, out


def _notes(score):
    return [(n.time, n.duration, n.pitch) for n in score.tracks[0].notes]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=performances(), seed=st.integers(0, 2**16), tail=st.floats(0, 20))
def test_streamed_tokens_equal_miditok(events, seed, tail):
    end = (events[-1].time if events else 0.0) + tail
    enc, out = _stream(events, random.Random(seed))
    out += enc.flush(end)
    expected = encode_piece(quantize_performance(events, release_at=end))
    assert out == expected
    # Decoding note by note gives miditok's decoding of the same tokens.
    decoded = StreamingDecoder().feed_many(out)
    assert [(n.start, n.duration, n.pitch) for n in decoded] == (
        _notes(decode_tokens(out)) if out else []
    )
    assert RemiGrammar().accepts(out)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=performances(), seed=st.integers(0, 2**16), data=st.data())
def test_flush_at_any_point_is_a_valid_prefix(events, seed, data):
    cut = data.draw(st.integers(0, len(events)))
    lo = events[cut - 1].time if cut else 0.0
    hi = events[cut].time if cut < len(events) else lo + 10
    at = data.draw(st.floats(lo, max(lo, hi)))
    rng = random.Random(seed)
    # Without a flush, what was emitted by the cut is a prefix of the whole.
    full_enc, full = _stream(events, random.Random(seed))
    full += full_enc.flush(full_enc.now)
    enc, before = _stream(events[:cut], rng)
    assert full[: len(before)] == before
    # The flush completes it into the encoding of the performance cut there.
    flushed = before + enc.flush(at)
    assert flushed == encode_piece(quantize_performance(events[:cut], release_at=at))
    assert RemiGrammar().accepts(flushed)


def test_playing_on_after_a_flush_stays_valid():
    enc = StreamingEncoder()
    out = enc.note_on(0.0, 60, 90) + enc.note_on(0.02, 64, 90)
    out += enc.flush(0.03)  # 64 is still held, its later note-off is ignored
    out += enc.note_on(0.04, 67, 90)  # rounds onto the onset already emitted
    out += enc.note_off(0.5, 67) + enc.note_off(1.0, 64) + enc.flush(2.0)
    assert out[:3] == ["Bar_None", "TimeSig_4/4", "Position_0"]
    assert "Position_1" in out  # the late note moved one grid step on
    assert RemiGrammar().accepts(out)


def test_held_note_commits_at_the_longest_duration():
    enc = StreamingEncoder()
    assert enc.note_on(0.0, 60, 90) == []
    assert enc.advance(7.0) == []  # a 7-beat note could still grow
    out = enc.advance(8.0)  # 8 beats is the longest Duration token
    assert out == ["Bar_None", "TimeSig_4/4", "Position_0", "Pitch_60", "Duration_8.0.4"]
    assert enc.note_off(9.0, 60) == [] and enc.flush(10.0) == []


def test_chord_waits_for_shortest_note_then_orders_by_duration():
    enc = StreamingEncoder()
    out = enc.note_on(0.0, 60, 80) + enc.note_on(0.01, 64, 80)
    out += enc.note_off(0.4, 64)  # known, but 60 may still end as short (and is lower)
    out += enc.advance(0.45)
    assert out == []
    out += enc.advance(0.5)  # now 60 is longer: 64 goes first
    assert out == ["Bar_None", "TimeSig_4/4", "Position_0", "Pitch_64", "Duration_0.5.12"]
    out += enc.note_off(1.0, 60)
    assert out[-2:] == ["Pitch_60", "Duration_1.0.12"]


@pytest.mark.parametrize("velocity", [1, 64, 127])
def test_decoder_gives_the_players_velocity(velocity):
    notes = StreamingDecoder(velocity).feed_many(
        ["Bar_None", "TimeSig_3/4", "Position_12", "Pitch_60", "Duration_1.0.12"]
    )
    assert [(n.start, n.duration, n.pitch, n.velocity) for n in notes] == [(24, 24, 60, velocity)]
    assert notes[0].start_quarters == 1.0


def test_meter_changes_apply_at_the_next_bar_line_and_the_last_one_wins():
    enc = StreamingEncoder()
    out = enc.note_on(0.0, 60, 80) + enc.note_off(1.0, 60)
    out += enc.meter(1.5, 3, 4)  # mid-bar: from bar 1 (beat 4) on
    out += enc.meter(2.0, 6, 8)  # same bar line, later call wins
    out += enc.note_on(4.0, 62, 80) + enc.note_off(5.0, 62) + enc.flush(6.0)
    assert out == [
        "Bar_None", "TimeSig_4/4", "Position_0", "Pitch_60", "Duration_1.0.12",
        "Bar_None", "TimeSig_6/8", "Position_0", "Pitch_62", "Duration_2.0.12",
    ]


def test_unsupported_meter_is_refused():
    from model.tokens.performance import UnsupportedMeterError

    with pytest.raises(UnsupportedMeterError, match="5/16"):
        StreamingEncoder().meter(0.0, 5, 16)


def test_open_bars_emits_each_passed_bar_line_once_and_changes_no_token():
    """Live use: empty bars go out as their bar lines pass; the whole stream is
    the same as when the next note brings them."""

    def play(open_bars: bool) -> tuple[list[str], list[list[str]]]:
        enc = StreamingEncoder()
        out = enc.note_on(0.0, 60, 90) + enc.note_off(1.0, 60)
        steps = [enc.advance(t, open_bars=open_bars) for t in (1.5, 3.9, 4.2, 7.0, 8.1, 9.0)]
        out += [tok for step in steps for tok in step]
        out += enc.note_on(9.5, 62, 90) + enc.note_off(10.0, 62) + enc.flush(11.0)
        return out, steps

    live, steps = play(True)
    offline, offline_steps = play(False)
    assert live == offline and RemiGrammar().accepts(live)
    assert steps[1:] == [[], ["Bar_None", "TimeSig_4/4"], [], ["Bar_None", "TimeSig_4/4"], []]
    assert offline_steps[1:] == [[]] * 5
    held = StreamingEncoder()
    held.note_on(0.0, 60, 90)
    assert held.advance(5.0, open_bars=True) == []  # a sounding note's onset comes first
