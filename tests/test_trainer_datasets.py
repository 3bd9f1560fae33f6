"""Datasets: LM windows, bar-aligned 4+2 completion windows, transposition, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import RWKV7, RWKVConfig
from trainer.datasets import (IGNORE, BatchSchedule, Windows, bar_bounds, build_windows,
                              completion_windows, hold_out, lm_windows, load_data, make_batch)
from trainer.vocab import vocab

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def data():
    return load_data([str(DATA)], seed=0)


@pytest.fixture(scope="module")
def seqs(data):
    return data.train.sequences() + data.val.sequences()


def test_midi_folder_is_split_by_whole_pieces(data):
    assert len(data.train) + len(data.val) == len(list(DATA.glob("*.mid")))
    assert len(data.val) == 1 and not set(data.train.names) & set(data.val.names)
    assert data.skipped == []
    again = load_data([str(DATA)], seed=0)
    assert again.val.names == data.val.names  # deterministic
    assert any(load_data([str(DATA)], seed=s).val.names != data.val.names for s in range(1, 6))


def test_hold_out_sizes():
    from trainer.datasets import PieceSet

    for n, n_val in ((1, 0), (2, 1), (6, 1), (20, 3), (40, 6)):
        p = PieceSet()
        for i in range(n):
            p.add(np.array([3, 10 + i]), f"p{i}.mid", 1)
        train, val = hold_out(p, 0.15, seed=0)
        assert (len(train), len(val)) == (n - n_val, n_val)


def test_lm_windows_cover_every_target_once(seqs):
    T = 64
    win = lm_windows(seqs, T)
    x, y = make_batch(win, np.arange(len(win)))
    assert x.shape[1] == T
    targets = int((y != IGNORE).sum())
    assert targets == sum(len(s) - 1 for s in seqs)  # each next-token target exactly once
    v = vocab()
    first = [i for i in range(len(win)) if win.start[i] == 0]
    assert all(int(x[i, 0]) == v.bos for i in first)
    # targets are inputs shifted by one inside a window
    i = 0
    n = int(win.end[i] - win.start[i] - 1)
    assert torch.equal(x[i, 1:n], y[i, : n - 1])


def test_completion_windows_are_4_plus_2_bars_with_loss_on_the_completion(seqs):
    v = vocab()
    win = completion_windows(seqs, 512)
    assert len(win) > 20
    x, y = make_batch(win, np.arange(len(win)))
    for i in range(len(win)):
        seq = seqs[win.piece[i]]
        s, e, ls = win.start[i], win.end[i], win.loss_start[i]
        bounds = bar_bounds(seq, v.bar)
        assert seq[ls] == v.bar and ls in bounds  # completion starts on a bar line
        k = int(np.searchsorted(bounds, ls))
        assert e == bounds[k + 2]  # exactly 2 bars of completion
        if s > 0 and e - s - 1 < 512:
            assert seq[s] == v.bar and k - int(np.searchsorted(bounds, s)) == 4  # 4 bars of context
        counted = torch.nonzero(y[i] != IGNORE).flatten()
        assert counted.numel() == e - ls  # loss only on completion tokens
        assert int(y[i, counted[0]]) == v.bar
    # sliding by one bar: consecutive windows of a piece start one bar apart
    same = np.flatnonzero(win.piece[1:] == win.piece[:-1])
    bounds0 = bar_bounds(seqs[win.piece[same[0]]], v.bar)
    step = np.searchsorted(bounds0, win.loss_start[same[0] + 1]) - np.searchsorted(bounds0, win.loss_start[same[0]])
    assert step == 1


def test_completion_context_is_cut_on_the_left_when_too_long(seqs):
    short = completion_windows(seqs, 48)
    assert len(short) and all(short.end - short.start - 1 <= 48)
    assert all(short.start < short.loss_start)


def test_transposition_stays_on_the_piano_and_is_deterministic(seqs):
    v = vocab()
    win = build_windows(seqs, "mix", 64)
    sched = BatchSchedule(win, batch_size=16, seed=5, max_shift=6)
    shifted_any = False
    for step in range(20):
        idx, shifts = sched.indices(step)
        assert np.all(np.abs(shifts) <= 6)
        x, y = sched.batch(step)
        plain, _ = make_batch(win, idx)
        is_pitch = (plain >= v.pitch_lo) & (plain <= v.pitch_hi)
        assert torch.all((x[is_pitch] >= v.pitch_lo) & (x[is_pitch] <= v.pitch_hi))
        assert torch.equal(x[~is_pitch], plain[~is_pitch])  # only pitches move
        delta = x - plain
        for r in range(len(idx)):
            assert set(delta[r][is_pitch[r]].tolist()) <= {int(shifts[r])}
        shifted_any |= bool(np.any(shifts != 0))
    assert shifted_any
    other = BatchSchedule(win, batch_size=16, seed=5, max_shift=6)
    for step in (0, 7, 19, 400):  # a pure function of (seed, step): resumable anywhere
        a, b = sched.batch(step), other.batch(step)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(BatchSchedule(win, 16, 6, 6).batch(0)[0], sched.batch(0)[0])


def test_an_epoch_visits_every_window_once(seqs):
    win = lm_windows(seqs, 64)
    sched = BatchSchedule(win, batch_size=7, seed=0)
    n = len(win)
    seen = np.concatenate([sched.indices(s)[0] for s in range(-(-n // 7))])[:n]
    assert sorted(seen.tolist()) == list(range(n))


def test_physical_slicing_matches_the_full_head(seqs):
    torch.manual_seed(0)
    model = RWKV7(RWKVConfig(vocab_size=vocab().size, n_layer=1, n_embd=64, head_size=32, chunk_len=16)).eval()
    win = completion_windows(seqs, 96)
    x, y = make_batch(win, np.arange(4))
    mask = y != IGNORE
    with torch.no_grad():
        sliced = model(x, target_index=mask)
        full = model(x)[mask]
    assert sliced.shape == (int(mask.sum()), vocab().size)
    torch.testing.assert_close(sliced, full, rtol=1e-5, atol=1e-5)


def test_corpus_folder_is_read_with_its_own_split(tmp_path, seqs):
    from model.tokens.config import tokenizer_config

    ids = [s[1:-1].astype(np.uint16) for s in seqs[:3]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer_config()))
    rows, arrays = [], {"train": [], "val": []}
    off = {"train": 0, "val": 0}
    for k, a in enumerate(ids):
        split = "val" if k == 2 else "train"
        rows.append({"id": f"p{k}", "source": "ab"[k % 2], "title": "t", "path": "t", "number": None,
                     "split": split, "offset": off[split], "tokens": len(a), "bars": 1, "notes": 5})
        arrays[split].append(a)
        off[split] += len(a)
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for split, parts in arrays.items():
        np.save(tmp_path / f"{split}.npy", np.concatenate(parts))
    d = load_data([str(tmp_path)])
    assert d.train.names == ["p0", "p1"] and d.val.names == ["p2"]
    assert np.array_equal(d.val.ids[0], ids[2])
    without_a = load_data([str(tmp_path)], exclude_sources=["a"])  # p0 and p2 are from source "a"
    assert without_a.train.names == ["p1"] and without_a.summary()["excluded_sources"] == ["a"]
    with pytest.raises(ValueError, match="no source named x"):
        load_data([str(tmp_path)], exclude_sources=["x"])
    (tmp_path / "tokenizer.json").write_text(json.dumps({**tokenizer_config(), "version": 999}))
    with pytest.raises(ValueError):
        load_data([str(tmp_path)])


def test_windows_concat_requires_the_same_sequences(seqs):
    a, b = lm_windows(seqs, 64), completion_windows(seqs, 64)
    both = Windows.concat([a, b])
    assert len(both) == len(a) + len(b)
