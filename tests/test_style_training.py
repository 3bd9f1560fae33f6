"""State tuning (trainer/style_tuning.py): only the initial state learns, the
base stays bit-identical, and `train --style` writes a style for its base."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from model import save_checkpoint
from model.style import STYLE_FILE, load_style, load_style_for
from model.tokens.config import tokenizer_config
from tests.helpers import perturbed_model
from trainer.datasets import lm_windows
from trainer.loop import TrainConfig, Trainer
from trainer.progress import Progress
from trainer.style_tuning import StateTuned

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
TINY = dict(vocab_size=330, n_layer=2, n_embd=64, head_size=32, chunk_len=16)


def test_gradients_reach_the_initial_state_and_no_weight():
    tuned = StateTuned(perturbed_model(**TINY))
    x = torch.randint(4, 300, (3, 40))
    tuned(x).logsumexp(-1).mean().backward()
    for p in tuned.state_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tuned.base.parameters())


def test_the_chunked_path_gives_the_reference_gradient_of_the_state():
    model = perturbed_model(**TINY).double()
    tuned = StateTuned(model).double()
    with torch.no_grad():
        for p in tuned.state_parameters():
            p.normal_(0, 0.3)
    x = torch.randint(4, 300, (2, 37))  # not a multiple of the chunk: padding on the way
    grads = {}
    for op in ("chunked", "reference"):
        model.cfg.wkv = op
        for p in tuned.state_parameters():
            p.grad = None
        tuned(x).logsumexp(-1).sum().backward()
        grads[op] = [p.grad.clone() for p in tuned.state_parameters()]
    for a, b in zip(grads["chunked"], grads["reference"]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_state_tuning_lowers_the_loss_and_leaves_the_base_bit_identical():
    model = perturbed_model(**TINY).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    motif = rng.integers(4, 300, 24)
    seqs = [np.tile(motif, 6).astype(np.int64) for _ in range(4)]  # a "style": one motif, repeated
    win = lm_windows(seqs, 32)
    tuned = StateTuned(model)
    cfg = TrainConfig(steps=30, batch_size=4, lr=5e-2, warmup=0, eval_every=30, eval_windows=0,
                      eval_at_start=True, max_transpose=0, weight_decay=0.0)
    result = Trainer(tuned, win, win, cfg, None, torch.device("cpu"), Progress("none")).run()
    assert result.last_val < result.first_val - 0.05
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert tuned.wkv.abs().sum() > 0  # it moved away from the zero state


def test_train_style_writes_a_style_for_its_base(tmp_path):
    base = tmp_path / "base.safetensors"
    save_checkpoint(base, perturbed_model(**TINY), tokenizer=tokenizer_config())
    base_bytes = base.read_bytes()
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "train", "--style", "--data", str(DATA),
                           "--base", str(base), "--out", str(out), "--steps", "4", "--threads", "1",
                           "--progress", "json"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = next(e for e in events if e["event"] == "done")
    assert done["style"] == str(out / STYLE_FILE) and done["steps"] == 4
    assert done["val_nll_before"] is not None and done["style_bytes"] == (out / STYLE_FILE).stat().st_size
    assert base.read_bytes() == base_bytes  # the base file is untouched
    from model import load_checkpoint

    model, _ = load_checkpoint(base)
    style = load_style_for(out, model)
    assert style.base_config["ctx_len"] == model.cfg.ctx_len  # the base as it runs, not the training window
    assert abs(load_style(out / STYLE_FILE).meta["metrics"]["val_nll_before"] - done["val_nll_before"]) < 1e-5


def test_train_style_without_a_base_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "train", "--style", "--data", str(DATA),
                           "--out", str(tmp_path / "run"), "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "--style needs --base" in proc.stderr
