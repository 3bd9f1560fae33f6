"""REMI config, MIDI files in and out, on real pieces and broken files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from symusic import ControlChange, Note, Score, Tempo, TimeSignature, Track

from model.tokens.config import (
    TICKS_PER_QUARTER,
    TokenizerMismatchError,
    build_tokenizer,
    check_compatible,
    tokenizer_config,
)
from model.tokens.midi_io import (
    EmptyPieceError,
    MeterError,
    MidiError,
    MidiReadError,
    PieceTooLargeError,
    decode_tokens,
    encode_file,
    encode_piece,
    load_piano_piece,
    piano_piece,
    read_score,
    score_from_bytes,
    write_midi,
    write_notes,
)
from model.tokens.performance import GridNote
from model.tokens.streaming import StreamingDecoder, encode_events

DATA = Path(__file__).parent / "data"
REAL_FILES = sorted(DATA.glob("*.mid"))


def test_test_data_is_there():
    assert len(REAL_FILES) >= 5


# -- config ------------------------------------------------------------------
def test_vocabulary_and_grid():
    tok = build_tokenizer()
    kinds = {t.split("_")[0] for t in tok.vocab}
    assert kinds == {"PAD", "BOS", "EOS", "Bar", "TimeSig", "Position", "Pitch", "Duration"}
    assert tok.time_division == TICKS_PER_QUARTER
    assert len(tok.vocab) == 330


def test_sidecar_round_trip_rebuilds_the_same_tokenizer():
    sidecar = json.loads(json.dumps({"tokenizer": tokenizer_config()}))
    check_compatible(sidecar["tokenizer"])
    rebuilt = build_tokenizer(sidecar["tokenizer"])
    assert rebuilt.vocab == build_tokenizer().vocab


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: c.update(version=c["version"] + 1), "version"),
        (lambda c: c.update(use_velocities=True), "use_velocities"),
        (lambda c: c["beat_res"].update({"0-4": 8}), "beat_res"),
        (lambda c: c.update(name="other"), "not this app"),
    ],
)
def test_mismatched_tokenizer_is_refused_in_one_line(change, words):
    cfg = tokenizer_config()
    change(cfg)
    with pytest.raises(TokenizerMismatchError) as err:
        check_compatible(cfg)
    assert words in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TokenizerMismatchError):
        build_tokenizer(cfg)


def test_missing_tokenizer_is_refused():
    with pytest.raises(TokenizerMismatchError, match="no tokenizer"):
        check_compatible(None)


# -- real files ----------------------------------------------------------------
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.stem)
def test_real_file_round_trip(path, tmp_path):
    piece = load_piano_piece(path)
    tokens = encode_piece(piece.piece)
    _, num, den = piece.piece.meters[0]
    assert tokens[:2] == ["Bar_None", f"TimeSig_{num}/{den}"]
    # Replaying the file in time order through the streaming encoder agrees.
    assert encode_events(piece.events) == tokens
    # Decoding gives back the quantized notes, streamed or through miditok.
    decoded = StreamingDecoder().feed_many(tokens)
    want = [(n.start, n.duration, n.pitch) for n in piece.piece.notes]
    assert [(n.start, n.duration, n.pitch) for n in decoded] == want
    score = decode_tokens(tokens, tempo_qpm=96.0)
    assert [(n.time, n.duration, n.pitch) for n in score.tracks[0].notes] == want
    # Written out and read back: same tokens, with tempo, meter and a name.
    out = tmp_path / "out.mid"
    write_midi(score, out)
    back = read_score(out)
    assert back.tracks[0].name == "Piano"
    assert round(back.tempos[0].qpm) == 96
    assert (back.time_signatures[0].numerator, back.time_signatures[0].denominator) == (
        piece.piece.meters[0][1],
        piece.piece.meters[0][2],
    )
    assert encode_file(out) == tokens


def test_real_files_cover_several_meters():
    meters = {tuple(load_piano_piece(p).piece.meters[0][1:]) for p in REAL_FILES}
    assert {(4, 4), (9, 8)} <= meters and any(den == 2 for _, den in meters)


# -- merging, drums, pedal --------------------------------------------------------
def _score(tracks, tpq=480, ts=(4, 4)):
    score = Score(tpq)
    score.time_signatures.append(TimeSignature(0, *ts))
    score.tempos.append(Tempo(0, 100.0))
    score.tracks.extend(tracks)
    return score


def _track(notes, drum=False, program=0, pedals=()):
    track = Track("t", program, drum)
    for start, dur, pitch in notes:
        track.notes.append(Note(start, dur, pitch, 80))
    for tick, value in pedals:
        track.controls.append(ControlChange(tick, 64, value))
    return track


def _notes(score_or_piece):
    return [(n.start, n.duration, n.pitch) for n in score_or_piece.piece.notes]


def test_tracks_merge_drums_drop_and_grid_quantizes():
    rh = _track([(0, 480, 72), (490, 470, 74)])  # 10 ticks late: rounds onto beat 2
    lh = _track([(0, 960, 48)], program=32)  # any melodic program plays piano
    drums = _track([(0, 120, 36)], drum=True)
    piece = piano_piece(_score([rh, lh, drums]))
    assert _notes(piece) == [(0, 24, 72), (0, 48, 48), (24, 24, 74)]


def test_sustain_pedal_folds_into_durations_and_restrike_cuts():
    # Pedal down 0..4 beats; C is released at 1 beat, struck again at 3.
    track = _track([(0, 480, 60), (1440, 240, 60), (240, 240, 64)], pedals=[(0, 127), (1920, 0)])
    piece = piano_piece(_score([track]))
    # 64 rings to the pedal-up (4 beats); the first C to its re-strike at 3 beats.
    assert _notes(piece) == [(0, 72, 60), (12, 84, 64), (72, 24, 60)]
    assert piece.pedal_events == 2


def test_long_notes_clip_to_the_longest_duration_token():
    piece = piano_piece(_score([_track([(0, 480 * 20, 60)])]))
    assert encode_piece(piece.piece)[-1] == "Duration_8.0.4"


def test_meter_change_mid_bar_moves_to_the_next_bar_line():
    score = _score([_track([(0, 480, 60), (480 * 8, 480, 62)])])
    score.time_signatures.append(TimeSignature(480 * 2, 3, 4))  # mid-bar 1
    piece = piano_piece(score)
    assert piece.piece.meters == [(0, 4, 4), (96, 3, 4)]
    assert encode_piece(piece.piece) == [
        "Bar_None", "TimeSig_4/4", "Position_0", "Pitch_60", "Duration_1.0.12",
        "Bar_None", "TimeSig_3/4",
        "Bar_None", "TimeSig_3/4", "Position_12", "Pitch_62", "Duration_1.0.12",
    ]


def test_unsupported_meter_is_dropped_or_refused():
    score = _score([_track([(0, 480, 60)])], ts=(3, 16))
    assert piano_piece(score).dropped_meters == ["3/16"]
    with pytest.raises(MeterError, match="^odd.mid: unsupported time signature 3/16$"):
        piano_piece(score, "odd.mid", strict_meter=True)


def test_write_notes_is_atomic_and_replaces(tmp_path):
    out = tmp_path / "take.mid"
    out.write_bytes(b"old")
    write_notes(out, [GridNote(0, 24, 60, 90)], [(0, 3, 4)], tempo_qpm=72, name="Take 1")
    assert [p.name for p in tmp_path.iterdir()] == ["take.mid"]
    back = read_score(out)
    assert back.tracks[0].name == "Take 1" and round(back.tempos[0].qpm) == 72
    assert back.tracks[0].notes[0].velocity == 90


# -- broken files -------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack(">I", len(data)) + data


def _header(fmt=1, ntracks=1, division=480) -> bytes:
    return _chunk(b"MThd", struct.pack(">HHH", fmt, ntracks, division))


_EOT = bytes([0x00, 0xFF, 0x2F, 0x00])
_GOOD_TRACK = _chunk(b"MTrk", bytes([0x00, 0x90, 60, 100, 0x83, 0x60, 0x80, 60, 0]) + _EOT)
_HUGE_DELTA = bytes([0x8F, 0xFF, 0xFF, 0x7F])

BROKEN = {
    "truncated": ((_header() + _GOOD_TRACK)[:-6], MidiReadError),
    "wrong header": (b"RIFF" + (_header() + _GOOD_TRACK)[4:], MidiReadError),
    "empty file": (b"", MidiReadError),
    "zero tracks": (_header(1, 0), EmptyPieceError),
    "absurd delta times": (
        _header()
        + _chunk(b"MTrk", bytes([0, 0x90, 60, 100]) + _HUGE_DELTA + bytes([0x80, 60, 0]) + _EOT),
        PieceTooLargeError,
    ),
    "running status at start": (
        _header() + _chunk(b"MTrk", bytes([0x00, 60, 100, 0x10, 60, 0]) + _EOT),
        MidiReadError,
    ),
    "track length past the end": (
        _header() + b"MTrk" + struct.pack(">I", 1000) + bytes([0, 0x90, 60, 100]),
        MidiReadError,
    ),
    "drums only": (
        _header() + _chunk(b"MTrk", bytes([0, 0x99, 36, 100, 0x60, 0x89, 36, 0]) + _EOT),
        EmptyPieceError,
    ),
    "no notes": (_header() + _chunk(b"MTrk", _EOT), EmptyPieceError),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_give_one_clean_line(name, tmp_path):
    data, error = BROKEN[name]
    path = tmp_path / "broken.mid"
    path.write_bytes(data)
    with pytest.raises(error) as err:
        load_piano_piece(path)
    assert isinstance(err.value, MidiError)
    assert "\n" not in str(err.value) and str(err.value)


def test_type0_file_reads_like_type1(tmp_path):
    path = tmp_path / "t0.mid"
    path.write_bytes(_header(0, 1) + _GOOD_TRACK)
    assert _notes(load_piano_piece(path)) == [(0, 24, 60)]


def test_missing_file_is_a_clean_error(tmp_path):
    with pytest.raises(MidiReadError, match="cannot read"):
        read_score(tmp_path / "nope.mid")


def test_score_from_bytes_checks_the_magic():
    with pytest.raises(MidiReadError, match="MThd"):
        score_from_bytes(b"MTrk....")


def test_duration_bins_match_miditok():
    from model.tokens.performance import DURATION_TICKS, ticks_per_beat

    tok = build_tokenizer()
    for den, table in DURATION_TICKS.items():
        # miditok's own ticks-per-beat table (private, so checked here on upgrade).
        assert tok._tpb_tokens_to_ticks[ticks_per_beat(den)] == table
        assert all(f"Duration_{name}" in tok.vocab for name in table)
