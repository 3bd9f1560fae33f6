"""The canonical note form: every real file's notes become tokens the grammar
accepts, the same way in the file codec and the live encoder.

Each test reproduces a failure seen on real piano files with a small made-up
file or performance."""
from __future__ import annotations

import random
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from model.tokens.grammar import RemiGrammar
from model.tokens.midi_io import encode_piece, load_piano_piece
from model.tokens.performance import (METER, NOTE_OFF, NOTE_ON, PerfEvent, fold_stray_final_meter,
                                      quantize_performance)
from model.tokens.streaming import StreamingEncoder

TPQ = 480


def _file(tmp_path: Path, notes: list[tuple[float, float, int]], meters=((0, 4, 4),), name="x.mid") -> Path:
    """A one-track file of (start, end, pitch) in quarter notes."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, 104.0))
    for q, num, den in meters:
        score.time_signatures.append(TimeSignature(int(q * TPQ), num, den))
    track = Track("piano", 0, False)
    for s, e, p in notes:
        track.notes.append(Note(int(round(s * TPQ)), int(round((e - s) * TPQ)), p, 80))
    score.tracks.append(track)
    path = tmp_path / name
    path.write_bytes(score.dumps_midi())
    return path


def _accepted(tokens: list[str]) -> bool:
    return RemiGrammar().accepts(tokens)


def test_same_pitch_at_the_same_onset_is_one_note(tmp_path):
    # Two tracks doubling a melody (MELODY + PIANO in a pop arrangement), one a bit early.
    path = _file(tmp_path, [(0, 1, 60), (0.02, 0.9, 60), (1, 2, 64), (0.99, 3, 64)])
    piece = load_piano_piece(path).piece
    assert [(n.start, n.pitch) for n in piece.notes] == [(0, 60), (24, 64)]
    # One keyboard: a re-strike ends the sounding note, and the two notes that
    # land on one onset merge into the longer (60: 0.02-0.9; 64: 1-2).
    assert [n.duration for n in piece.notes] == [22, 24]
    assert _accepted(encode_piece(piece))


def test_overlapping_repeats_are_cut_before_the_next_onset():
    """Performance-timed repeats of one key: a note never sounds past the
    quantized onset of its own repeat, whatever the rounding does."""
    rng = random.Random(0)
    for _ in range(300):
        events, t = [], 0.0
        for _ in range(rng.randint(2, 30)):
            t += rng.uniform(0.02, 1.3)
            end = t + rng.uniform(0.01, 9.0)
            pitch = rng.choice([60, 61, 62])
            events += [PerfEvent(t, NOTE_ON, pitch, 90), PerfEvent(end, NOTE_OFF, pitch)]
        events.sort(key=lambda e: (e.time, e.kind == NOTE_ON))
        piece = quantize_performance(events)
        by_pitch: dict[int, list] = {}
        for n in piece.notes:
            by_pitch.setdefault(n.pitch, []).append(n)
        for notes in by_pitch.values():
            for a, b in zip(notes, notes[1:]):
                assert a.start + a.duration <= b.start, (a, b)
        assert _accepted(encode_piece(piece))


def test_notes_across_bar_lines_and_a_meter_change_keep_the_grammar(tmp_path):
    notes = [(0, 7.5, 48), (3.5, 5, 72), (7.75, 11, 60), (9, 9.5, 64), (11.5, 14, 62), (12, 13, 67)]
    path = _file(tmp_path, notes, meters=((0, 4, 4), (8, 6, 8)))
    piece = load_piano_piece(path).piece
    tokens = encode_piece(piece)
    assert "TimeSig_6/8" in tokens and _accepted(tokens)
    # The live encoder gives the same tokens for the same performance.
    enc = StreamingEncoder()
    out: list[str] = []
    events = [PerfEvent(0, METER, 4, 4), PerfEvent(8, METER, 6, 8)]
    for s, e, p in notes:
        events += [PerfEvent(s, NOTE_ON, p, 80), PerfEvent(e, NOTE_OFF, p)]
    for ev in sorted(events, key=lambda e: (e.time, {NOTE_OFF: 0, METER: 2, NOTE_ON: 3}[e.kind])):
        out += enc.feed(ev)
    out += enc.flush(14)
    assert out == tokens


def test_a_stray_short_bar_at_the_end_folds_into_the_previous_meter(tmp_path):
    """A 2/4 file ending on a 1/4 bar: the continuation must keep 2/4, not 1/4."""
    notes = [(q, q + 0.5, 60 + q % 5) for q in range(8)] + [(8, 9, 67)]
    path = _file(tmp_path, notes, meters=((0, 2, 4), (8, 1, 4)))
    piece = load_piano_piece(path).piece
    assert piece.meters == [(0, 2, 4)]
    tokens = encode_piece(piece)
    assert "TimeSig_1/4" not in tokens and _accepted(tokens)
    # A real meter change with several bars after it stays.
    assert fold_stray_final_meter([(0, 4, 4), (8, 3, 4)], 20) == [(0, 4, 4), (8, 3, 4)]
    assert fold_stray_final_meter([(0, 4, 4), (8, 1, 4)], 8) == [(0, 4, 4)]
    assert fold_stray_final_meter([(0, 3, 4), (9, 4, 4)], 9) == [(0, 3, 4), (9, 4, 4)]  # longer: kept


def test_random_dense_piano_files_always_satisfy_the_grammar(tmp_path):
    rng = random.Random(1)
    for k in range(25):
        notes = []
        for _ in range(rng.randint(5, 120)):
            s = rng.uniform(0, 40)
            notes.append((s, s + rng.choice([0.01, 0.1, 0.5, 1, 3, 9, 20]), rng.randint(21, 108)))
        meters = [(0, *rng.choice([(4, 4), (3, 4), (6, 8), (2, 2)]))]
        if rng.random() < 0.5:
            meters.append((rng.uniform(1, 30), *rng.choice([(5, 4), (7, 8), (2, 4), (1, 4)])))
        path = _file(tmp_path, notes, meters, name=f"f{k}.mid")
        assert _accepted(encode_piece(load_piano_piece(path).piece)), path


def test_meter_map_lookups_match_a_linear_scan_after_many_changes():
    """The bisection index kept beside the sections (flat cost per note in a
    long session) answers exactly what scanning the sections would."""
    from model.tokens.performance import MeterMap

    rng = random.Random(3)
    meters = MeterMap()
    q = 0.0
    for _ in range(300):
        q += rng.choice([0.0, 1.0, 2.5, 4.0, 7.0])
        if rng.random() < 0.2:
            q = max(0.0, q - rng.uniform(0, 10))  # a later change replacing bars already set
        meters.change(q, *rng.choice([(4, 4), (3, 4), (6, 8), (2, 2), (5, 4)]))
        assert meters._starts == [s.start for s in meters.sections]
        for tick in (rng.uniform(0, q * 24 + 100) for _ in range(5)):
            linear = [s for s in meters.sections if s.start <= tick][-1]
            assert meters.section_at(tick) is linear
        for bar in range(0, meters.sections[-1].first_bar + 3, 7):
            linear = [s for s in meters.sections if s.first_bar <= bar][-1]
            assert meters.bar_start(bar)[1] is linear
