"""The POP909 source: bar lines from the annotated beats, not the file's ticks.

Songs are made up here in POP909's layout (NNN/NNN.mid with MELODY, BRIDGE and
PIANO tracks played off the file's tempo grid, beat/chord/key annotations);
the real data set is never needed by the tests."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from symusic import ControlChange, Note, Score, Tempo, TimeSignature, Track

from model.tokens.grammar import RemiGrammar
from model.tokens.midi_io import encode_piece
from trainer import pop909
from trainer.corpus import add_corpus_args, run_corpus
from trainer.evaluate import eval_sets

BEAT_S = 0.6  # the song's real beat: 100 BPM
FIRST_DOWNBEAT_S = 1.9  # bar 1 starts here, after a one-beat pickup


def _beat_time(q: float) -> float:
    """Seconds of quarter ``q`` counted from the pickup beat (q=0 at 1.3 s)."""
    return FIRST_DOWNBEAT_S - BEAT_S + q * BEAT_S


def make_song(root: Path, number: str, gaps: list[int] | None = None) -> Path:
    """A song whose file claims 120 BPM 4/4 from tick 0 while the music runs at
    100 BPM with a pickup: only the annotations put the bar lines right."""
    folder = root / number
    folder.mkdir(parents=True)
    gaps = gaps or [4] * 6
    n_beats = 1 + sum(gaps) + 4
    rows, beat = [], 0
    downs = {1}
    acc = 1
    for g in gaps:
        acc += g
        downs.add(acc)
    for beat in range(n_beats):
        flag = 1 if beat in downs else 0
        rows.append(f"{_beat_time(beat):.6f} {flag:.1f} {flag:.1f}")
    (folder / pop909.BEAT_FILE).write_text("\n".join(rows) + "\n")
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    tracks = {name: Track(name, 0, False) for name in ("MELODY", "BRIDGE", "PIANO")}
    sec_to_tick = lambda s: int(round(s * 960))  # noqa: E731 -- 120 BPM, 480 tpq
    # A C-major chord on every downbeat (PIANO, pedalled), a melody on the beats
    # in between, both a few ms off the beat as a player would be.
    for k, q in enumerate(sorted(downs)):
        t = _beat_time(q) + (0.012 if k % 2 else -0.009)
        for p in (48, 52, 55):
            tracks["PIANO"].notes.append(Note(sec_to_tick(t), sec_to_tick(0.3), p, 70))
        tracks["PIANO"].controls.append(ControlChange(sec_to_tick(t), 64, 127))
        tracks["PIANO"].controls.append(ControlChange(sec_to_tick(t + 1.5), 64, 0))
        tracks["MELODY"].notes.append(Note(sec_to_tick(_beat_time(q + 1) + 0.01), sec_to_tick(0.5), 72, 90))
    tracks["BRIDGE"].notes.append(Note(sec_to_tick(_beat_time(0)), sec_to_tick(0.5), 67, 60))  # pickup
    score.tracks.extend(tracks.values())
    (folder / f"{number}.mid").write_bytes(score.dumps_midi())
    chords = [f"{_beat_time(0):.3f}\t{_beat_time(1):.3f}\tN"]
    chords += [f"{_beat_time(1):.3f}\t{_beat_time(n_beats):.3f}\tC:maj"]
    (folder / pop909.CHORD_FILE).write_text("\n".join(chords) + "\n")
    (folder / pop909.KEY_FILE).write_text(f"0.0\t{_beat_time(n_beats):.3f}\tC:maj\n")
    return folder


def test_chord_and_key_labels():
    assert pop909.chord_mask("C:maj") == (1 << 0) | (1 << 4) | (1 << 7)
    assert pop909.chord_mask("A:min7") == (1 << 9) | (1 << 0) | (1 << 4) | (1 << 7)
    assert pop909.chord_mask("F#:maj/3") == (1 << 6) | (1 << 10) | (1 << 1)
    assert pop909.chord_mask("G:sus4(b7)") == (1 << 7) | (1 << 0) | (1 << 2) | (1 << 5)
    assert pop909.chord_mask("N") == 0
    assert pop909.key_of("Gb:maj") == (6, "maj") and pop909.key_of("C#:min") == (1, "min")


def test_bars_come_from_the_downbeats_not_the_file_ticks(tmp_path):
    piano, notes = pop909.load_song(make_song(tmp_path, "001"))
    tokens = encode_piece(piano.piece)
    assert RemiGrammar().accepts(tokens)
    # Pickup bar, then every chord on Position_0 of its bar, melody on beat 2.
    bars = " ".join(tokens).split("Bar_None")[1:]
    assert "Pitch_67" in bars[0] and "Pitch_48" not in bars[0]
    for bar in bars[1:7]:
        assert bar.split()[1:3] == ["Position_0", "Pitch_48"], bar
        # Pedal held 1.5 s = 2.5 beats of the song (not 3 beats of the file's 120 BPM).
        assert bar.split()[3] == "Duration_2.6.12", bar
        assert "Position_12" in bar and "Pitch_72" in bar
    assert piano.tempo_qpm == pytest.approx(100.0, abs=0.5)
    # Annotations on the same grid: the chord starts on bar 1's line (tick 96).
    assert notes["chords"][0][0] == 96 and notes["chords"][0][2] == pop909.chord_mask("C:maj")
    assert notes["keys"][0][2:] == [0, "maj"]


def test_odd_gaps_become_bars_of_their_length_and_a_stray_beat_joins_its_bar(tmp_path):
    piano, _ = pop909.load_song(make_song(tmp_path, "002", gaps=[4, 4, 2, 4, 1, 4, 4]))
    meters = [(num, den) for _, num, den in piano.piece.meters]
    assert meters == [(4, 4), (2, 4), (5, 4), (4, 4)]  # 4 4 4 | 2 | 4+1 | 4 4
    assert RemiGrammar().accepts(encode_piece(piano.piece))


def test_corpus_source_reports_license_keeps_annotations_and_splits_by_song(tmp_path, capsys):
    root = tmp_path / "pop"
    for k in range(1, 9):
        make_song(root, f"{k:03d}")
    (root / "009").mkdir()  # a folder without a song: not a unit
    bad = make_song(root, "010")
    (bad / pop909.BEAT_FILE).write_text("garbage\n")
    out = tmp_path / "corpus"
    p = argparse.ArgumentParser()
    add_corpus_args(p)
    args = p.parse_args(["--pop909", str(root), "--out", str(out), "--workers", "1", "--no-progress",
                         "--val-fraction", "0.3"])
    assert run_corpus(args) == 0
    text = capsys.readouterr().out
    assert "pop909" in text and "MIT" in text
    report = json.loads((out / "report.json").read_text())
    src = report["sources"]["pop909"]
    assert src["pieces"] == 8 and src["license"] == pop909.LICENSE
    assert any("pop909/010" in s and "beat" in s for s in report["skipped"])
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {e["split"] for e in manifest} == {"train", "val"}
    assert len({e["id"] for e in manifest}) == 8  # one piece per song: the split is by whole song
    sets, _ = eval_sets([str(out)])
    val = sets["pop909"]
    assert len(val.pieces) == sum(e["split"] == "val" for e in manifest)
    assert all(n and n["chords"] for n in val.notes)


def test_not_a_pop909_folder_is_a_one_line_error(tmp_path, capsys):
    p = argparse.ArgumentParser()
    add_corpus_args(p)
    assert run_corpus(p.parse_args(["--pop909", str(tmp_path), "--out", str(tmp_path / "c"),
                                    "--no-progress"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not a POP909 folder") and err.count("\n") == 1


def test_to_quarters_extrapolates_outside_the_beats():
    grid = pop909.BeatGrid(np.array([1.0, 1.5, 2.0, 2.5]), 0, [(0, 4)])
    q = grid.to_quarters(np.array([0.5, 1.25, 3.5]))
    assert q.tolist() == pytest.approx([-1.0, 0.5, 5.0])
