"""Evaluation: the musical metrics on known inputs, and `eval` end to end."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import RWKV7, RWKVConfig, save_checkpoint
from model.tokens.config import build_tokenizer, tokenizer_config
from trainer import metrics
from trainer.cli import run_eval
from trainer.cli_args import add_eval_args
from trainer.vocab import vocab

DATA = Path(__file__).parent / "data"
VOCAB = build_tokenizer().vocab


def bar(notes: list[tuple[int, int]], ts: str = "4/4") -> list[int]:
    """A bar of (position, pitch) quarter notes as token ids."""
    ids = [VOCAB["Bar_None"], VOCAB[f"TimeSig_{ts}"]]
    for pos, pitch in notes:
        ids += [VOCAB[f"Position_{pos}"], VOCAB[f"Pitch_{pitch}"], VOCAB["Duration_1.0.12"]]
    return ids


C_MAJOR = [(0, 60), (12, 62), (24, 64), (36, 65)]


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


def test_one_over_f_slope_separates_noise_from_random_walk():
    rng = np.random.default_rng(0)
    white = rng.normal(size=4096)
    walk = np.cumsum(white)
    assert abs(metrics.one_over_f_slope(list(white))) < 0.3
    assert metrics.one_over_f_slope(list(walk)) < -1.5
    assert np.isnan(metrics.one_over_f_slope([60, 62]))


def test_continuation_metrics_of_the_truth_itself():
    context = bar(C_MAJOR) * 4
    truth = bar(C_MAJOR) + bar([(0, 67), (24, 64)])
    m = metrics.continuation_metrics(context, truth, truth)
    assert m["in_key"] == 1.0 and m["pitch_class_overlap"] == pytest.approx(1.0)
    assert m["density_ratio"] == pytest.approx(1.0) and m["onset_overlap"] == pytest.approx(1.0)
    assert m["wrong_length_bars"] == 0.0 and m["pitch_range"] == 7.0
    wrong = bar([(0, 61)], "3/4") + [VOCAB["EOS_None"]]  # a 3/4 bar in 4/4, then the end
    m = metrics.continuation_metrics(context, wrong, truth)
    assert m["wrong_length_bars"] == 1.0 and m["in_key"] == 0.0


def _eval_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_eval_args(p)
    return p.parse_args(list(argv))


def test_eval_cli_prints_a_table_and_json(tmp_path, capsys):
    torch.manual_seed(0)
    model = RWKV7(RWKVConfig(vocab_size=vocab().size, n_layer=1, n_embd=64, head_size=32, chunk_len=16))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, tokenizer=tokenizer_config())
    assert run_eval(_eval_args("--model", str(path), "--data", str(DATA), "--samples", "3", "--json")) == 0
    res = json.loads(capsys.readouterr().out)
    # an untrained model is near uniform: ~ln(V) nats per token
    assert res["val_nll"] == pytest.approx(np.log(vocab().size), abs=0.3)
    assert res["bits_per_note"] > res["val_nll"] / np.log(2)  # several tokens per note
    cont = res["continuation"]
    assert cont["samples"] == 3
    for key in ("in_key", "pitch_class_overlap", "density_ratio", "onset_overlap", "pitch_range",
                "distinct_2", "distinct_4", "wrong_length_bars", "one_over_f"):
        assert key in cont
    assert 0.0 <= cont["wrong_length_bars"] <= 1.0
    assert run_eval(_eval_args("--model", str(path), "--data", str(DATA), "--samples", "2")) == 0
    table = capsys.readouterr().out
    assert "nats/token" in table and "bits/note" in table and "in-key ratio" in table


def test_eval_of_a_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises((ValueError, OSError)) as err:
        run_eval(_eval_args("--model", str(tmp_path / "none.safetensors"), "--data", str(DATA)))
    assert "\n" not in str(err.value)
