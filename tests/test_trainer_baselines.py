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


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_baselines_answer_through_the_apps_generator(arch):
    """eval samples a baseline with the same generate() as RWKV-7: its forked
    rows follow the grammar and the time floor, and the context stays usable."""
    from model.generation import generate, prime
    from model.sampling import SamplingParams
    from model.tokens.config import TICKS_PER_QUARTER, build_tokenizer
    from model.tokens.grammar import RemiGrammar
    from trainer.baselines.common import AsRecurrent

    vocab = build_tokenizer().vocab
    torch.manual_seed(0)
    model = AsRecurrent(build_model(arch, V, n_layer=1, n_embd=64).eval())
    phrase = ["BOS_None", "Bar_None", "TimeSig_3/4", "Position_0", "Pitch_60", "Duration_1.0.12"]
    track, logits, state = prime(model, [vocab[t] for t in phrase])
    start, end = 3 * TICKS_PER_QUARTER, 9 * TICKS_PER_QUARTER
    tokens: list[list[int]] = []
    rows = generate(model, state, logits, track, start, end, 3, SamplingParams(), seed=1, tokens_out=tokens)
    again = generate(model, state, logits, track, start, end, 3, SamplingParams(), seed=1)
    assert rows == again  # the fork left the context state as it was
    for row, row_tokens in zip(rows, tokens):
        grammar = RemiGrammar()
        for t in [vocab[t] for t in phrase] + row_tokens:
            grammar.update(t)  # raises on a token the grammar forbids
        assert all(start <= n.start < end for n in row)
