"""Baselines behind RWKV7's interface: parallel == recurrent, matched sizes, same trainer."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.datasets import build_windows, lm_windows, load_data
from trainer.loop import TrainConfig, Trainer
from trainer.models import build_model, load_any, matched_width, save_model
from trainer.progress import Progress

DATA = Path(__file__).parent / "data"
V = 330


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_step_by_step_equals_the_parallel_forward(arch):
    torch.manual_seed(0)
    model = build_model(arch, V, n_layer=2, n_embd=64).eval()
    tokens = torch.randint(0, V, (2, 12))
    with torch.no_grad():
        full = model(tokens)
        sliced = model(tokens, target_index=torch.tensor([3, 11]))
    state = model.init_state(2)
    steps = []
    for t in range(12):
        logits, state = model.step(tokens[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sliced, full[:, [3, 11]])


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_matched_width_and_decay_only_on_matrices(arch):
    target = build_model("rwkv", V, 2, 128).num_params()
    width = matched_width(arch, target, V, 2, 64 if arch == "transformer" else 32)
    model = build_model(arch, V, 2, width)
    assert abs(model.num_params() - target) / target < 0.2
    groups = model.param_groups(0.1)
    assert all(p.dim() == 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.1
    assert all(p.dim() < 2 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0


def test_the_same_trainer_trains_a_baseline_and_saves_it(tmp_path):
    data = load_data([str(DATA)])
    seqs = data.train.sequences()
    torch.manual_seed(0)
    model = build_model("transformer", V, 1, 64, ctx_len=64)
    cfg = TrainConfig(steps=12, batch_size=4, lr=3e-3, warmup=1, eval_every=12, eval_windows=8)
    result = Trainer(model, build_windows(seqs, "lm", 64), lm_windows(seqs, 64), cfg, tmp_path,
                     torch.device("cpu"), Progress("none")).run()
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    loaded, side = load_any(tmp_path / "best.safetensors")
    assert side["config"]["arch"] == "transformer"
    x = torch.randint(0, V, (1, 8))
    torch.testing.assert_close(loaded(x), model.eval()(x))
    save_model(tmp_path / "x.safetensors", build_model("lstm", V, 1, 32))
    assert type(load_any(tmp_path / "x.safetensors")[0]).__name__ == "LSTMLM"


def test_transformer_kv_cache_is_preallocated_and_forks_by_length():
    torch.manual_seed(0)
    model = build_model("transformer", V, n_layer=2, n_embd=64).eval()
    state = model.init_state(1, capacity=16)
    buffers = state.k.data_ptr(), state.v.data_ptr()
    for t in (5, 6, 7):
        _, state = model.step(torch.tensor([t]), state)
    assert (state.k.data_ptr(), state.v.data_ptr()) == buffers and state.length == 3  # written in place
    context = state
    first = [model.step(torch.tensor([t]), context)[0] for t in (9, 10)]
    _, later = model.step(torch.tensor([11]), context)
    model.step(torch.tensor([12]), later)  # a sibling fork writes past the context
    again = [model.step(torch.tensor([t]), context)[0] for t in (9, 10)]
    torch.testing.assert_close(again, first)  # the context itself is never overwritten
    full = model(torch.tensor([[5, 6, 7, 9]]))[:, -1]
    torch.testing.assert_close(first[0], full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="longer than the KV cache"):
        model.step(torch.tensor([1]), type(state)(state.k, state.v, 16))
