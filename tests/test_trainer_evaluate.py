"""Evaluation: the musical metrics on known inputs, and `eval` end to end."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import RWKV7, RWKVConfig, save_checkpoint
from model.sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from model.tokens.config import build_tokenizer, tokenizer_config
from trainer import metrics
from trainer.cli import run_eval
from trainer.cli_args import add_eval_args
from trainer.vocab import vocab

DATA = Path(__file__).parent / "data"
VOCAB = build_tokenizer().vocab


def test_key_and_in_key_ratio():
    scale = [60, 62, 64, 65, 67, 69, 71] * 3 + [60, 67, 64]
    assert metrics.estimate_key(scale) == (0, "major")
    assert metrics.estimate_key([p + 7 for p in scale]) == (7, "major")
    assert metrics.in_key_ratio([60, 62, 61, 63], (0, "major")) == 0.5


def test_histogram_overlap_and_diversity():
    assert metrics.histogram_overlap([60, 64, 67], [72, 76, 79], 12) == pytest.approx(1.0)
    assert metrics.histogram_overlap([60], [61], 12) == 0.0
    assert metrics.distinct_ngrams([[1, 2, 1, 2, 1, 2]], 2) == pytest.approx(2 / 5)
    assert metrics.distinct_ngrams([[1, 2, 3, 4]], 2) == 1.0


C_CHORD = 0b000010010001  # C E G


def test_continuation_metrics_of_the_truth_itself_and_of_a_wrong_answer():
    truth = [(0, 60), (0, 64), (24, 67), (48, 72), (96, 64)]
    chords = [[0, 192, C_CHORD]]
    m = metrics.continuation_metrics(truth, truth, (0, "maj"), chords)
    assert m["chord_tone"] == m["chord_tone_truth"] == 1.0
    assert m["in_key"] == 1.0 and m["pitch_class_similarity"] == pytest.approx(1.0)
    assert m["density_ratio"] == 1.0 and m["near_silent"] == 0.0
    assert m["notes_per_onset"] == pytest.approx(5 / 4) and m["median_pitch_distance"] == 0.0
    assert m["wrong_length_bars"] == 0.0
    # One chromatic note, a semitone off the chord, far too sparse, in a bar of the wrong length.
    wrong = [(0, 61)]
    m = metrics.continuation_metrics(wrong, truth, (0, "major"), chords, wrong_bars=1, bars=2)
    assert m["chord_tone"] == 0.0 and m["in_key"] == 0.0 and m["near_silent"] == 1.0
    assert m["density_ratio"] == pytest.approx(0.2) and m["wrong_length_bars"] == 0.5
    assert m["median_pitch_distance"] == 3.0
    # Notes outside every annotated chord do not count either way.
    assert np.isnan(metrics.chord_tone_ratio([(500, 60)], chords))


def test_aggregate_takes_the_median_density_ratio():
    rows = [{"density_ratio": r, "in_key": 1.0} for r in (0.1, 1.0, 1.1, 1.2, 9.0)]
    out = metrics.aggregate(rows, [[60, 62, 64]], [[60, 62, 64]])
    assert out["density_ratio"] == 1.1 and out["in_key"] == 1.0


def _eval_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_eval_args(p)
    return p.parse_args(list(argv))


def untrained_checkpoint(tmp_path: Path) -> Path:
    """A tiny untrained RWKV-7 saved with the app's tokenizer: near-uniform predictions."""
    torch.manual_seed(0)
    model = RWKV7(RWKVConfig(vocab_size=vocab().size, n_layer=1, n_embd=64, head_size=32, chunk_len=16))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, tokenizer=tokenizer_config())
    return path


def test_eval_cli_prints_a_table_and_json(tmp_path, capsys):
    path = untrained_checkpoint(tmp_path)
    assert run_eval(_eval_args("--model", str(path), "--data", str(DATA), "--samples", "3", "--json")) == 0
    res = json.loads(capsys.readouterr().out)
    # an untrained model is near uniform: ~ln(V) nats per token
    assert res["val_nll"] == pytest.approx(np.log(vocab().size), abs=0.3)
    assert res["bits_per_note"] > res["val_nll"] / np.log(2)  # several tokens per note
    (name, src), = res["sources"].items()  # one MIDI folder: one source
    assert name == f"midi:{DATA.name}" and src["val_pieces"] == res["val_pieces"]
    cont = src["continuation"]
    assert cont["samples"] == 3
    for key in ("in_key", "pitch_class_similarity", "density_ratio", "notes_per_onset",
                "median_pitch_distance", "near_silent", "distinct_4", "wrong_length_bars"):
        assert key in cont
    assert cont["wrong_length_bars"] == 0.0  # the app's generator keeps the meter and the length
    assert res["sampling"] == {"temperature": DEFAULT_TEMPERATURE, "top_p": DEFAULT_TOP_P}
    assert run_eval(_eval_args("--model", str(path), "--data", str(DATA), "--samples", "2")) == 0
    table = capsys.readouterr().out
    assert "nats/token" in table and "bits/note" in table and "in-key ratio" in table


def test_eval_skips_unusable_files_by_name_and_scores_the_rest(tmp_path, capsys):
    path = untrained_checkpoint(tmp_path)
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (folder / "text.mid").write_text("not midi")
    (folder / "good.mid").write_bytes((DATA / "bach_bwv66_6.mid").read_bytes())
    assert run_eval(_eval_args("--model", str(path), "--data", str(folder), "--samples", "2",
                               "--json")) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["val_pieces"] == 1
    assert sorted(s.split(":")[0] for s in res["skipped"]) == ["broken.mid", "text.mid"]


def test_eval_of_a_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises((ValueError, OSError)) as err:
        run_eval(_eval_args("--model", str(tmp_path / "none.safetensors"), "--data", str(DATA)))
    assert "\n" not in str(err.value)


def test_eval_continues_dense_piano_whose_four_bars_outgrow_a_training_window(tmp_path, capsys):
    """Real piano files stopped `eval` with "token Pitch_.. may not follow here":
    4 dense bars are more than a 512-token window, and a context cut inside a
    bar was fed to the grammar. Contexts are whole bars now, of any length."""
    from symusic import Note, Score, Tempo, TimeSignature, Track

    score = Score(480)
    score.tempos.append(Tempo(0, 96.0))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track("piano", 0, False)
    rng = np.random.default_rng(0)
    for sixteenth in range(8 * 16):  # 8 bars of 16th-note four-note chords
        for pitch in rng.choice(np.arange(48, 84), 4, replace=False):
            track.notes.append(Note(sixteenth * 120 + int(rng.integers(0, 20)), 110, int(pitch), 70))
    score.tracks.append(track)
    folder = tmp_path / "dense"
    folder.mkdir()
    (folder / "dense.mid").write_bytes(score.dumps_midi())
    path = untrained_checkpoint(tmp_path)
    assert run_eval(_eval_args("--model", str(path), "--data", str(folder), "--samples", "2", "--json")) == 0
    res = json.loads(capsys.readouterr().out)
    tokens_per_bar = res["val_tokens"] / 8
    assert 4 * tokens_per_bar > 512 and res["skipped"] == []
    assert res["sources"]["midi:dense"]["continuation"]["samples"] == 2


def test_repeated_bars_moves_the_heard_bars_onto_the_answer():
    from trainer.evaluate import repeated_bars

    ticks = [0, 48, 96, 144, 192, 240, 288]  # bar lines; the answer is bars 4-5
    notes = [(0, 60), (50, 62), (100, 64), (150, 65), (200, 67), (250, 69)]
    assert repeated_bars(notes, ticks, 4, 2) == [(196, 64), (246, 65)]  # bars 2-3, 96 ticks later
    assert repeated_bars(notes, ticks, 4, 4) == [(192, 60), (242, 62)]  # bars 0-1
    # bars of another length: what would fall past the answer's end is cut
    odd = [0, 96, 144, 192, 240]
    assert repeated_bars([(0, 60), (90, 61), (100, 62)], odd, 2, 2) == [(144, 60), (234, 61)]


def test_eval_scores_the_heard_bars_repeated_beside_the_model(tmp_path, capsys):
    path = untrained_checkpoint(tmp_path)
    assert run_eval(_eval_args("--model", str(path), "--data", str(DATA), "--samples", "3", "--json")) == 0
    res = json.loads(capsys.readouterr().out)
    (src,) = res["sources"].values()
    ref = src["continuation"]["reference"]
    assert set(ref) == {"repeat_last_2", "repeat_4_back"}
    for scores in ref.values():
        assert 0.0 <= scores["in_key"] <= 1.0 and scores["wrong_length_bars"] == 0.0
        assert scores["pitch_class_similarity"] > 0.0  # real bars of the same piece
