"""RWKV7: parallel vs recurrent equivalence, slicing, init, training."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from model import RWKV7, RWKVConfig, RWKVState
from tests import helpers
from tests.helpers import rel

TINY = dict(vocab_size=37, n_layer=2, n_embd=128, head_size=64, ctx_len=128)


def perturbed_model(seed: int = 0, **overrides) -> RWKV7:
    return helpers.perturbed_model(seed, **{**TINY, **overrides})






def step_all(m: RWKV7, tokens: torch.Tensor, impl: str) -> tuple[torch.Tensor, RWKVState]:
    state = m.init_state(tokens.shape[0])
    out = []
    for t in range(tokens.shape[1]):
        logits, state = m.step(tokens[:, t], state, impl=impl)
        out.append(logits)
    return torch.stack(out, 1), state


@pytest.mark.parametrize("impl", ["torch", "native"])
@pytest.mark.parametrize("T", [1, 17, 40])
def test_parallel_logits_equal_stepped_logits(T: int, impl: str) -> None:
    m = perturbed_model()
    tokens = torch.randint(0, TINY["vocab_size"], (3, T), generator=torch.Generator().manual_seed(T))
    with torch.no_grad():
        parallel = m(tokens)
    stepped, _ = step_all(m, tokens, impl)
    assert parallel.shape == (3, T, TINY["vocab_size"])
    assert rel(stepped, parallel) < 1e-4


def test_prefill_state_equals_stepped_state() -> None:
    m = perturbed_model(1)
    tokens = torch.randint(0, TINY["vocab_size"], (2, 45), generator=torch.Generator().manual_seed(0))
    stepped_logits, stepped = step_all(m, tokens, "torch")
    logits_a, st = m.prefill(tokens[:, :30])
    logits_b, st = m.prefill(tokens[:, 30:], st)  # block after block carries the state
    for name in ("att_x", "wkv", "ffn_x"):
        assert rel(getattr(st, name), getattr(stepped, name)) < 1e-4, name
    assert st.wkv.dtype == torch.float32
    assert rel(logits_a, stepped_logits[:, 29]) < 1e-4
    assert rel(logits_b, stepped_logits[:, -1]) < 1e-4


def test_prefill_and_step_do_not_modify_input_state() -> None:
    m = perturbed_model()
    st = m.prefill(torch.tensor([[1, 2, 3]]))[1]
    before = st.clone()
    m.prefill(torch.tensor([[4, 5]]), st)
    m.step(torch.tensor([4]), st)
    m.step(torch.tensor([4]), st, impl="torch")
    assert all(torch.equal(getattr(st, n), getattr(before, n)) for n in ("att_x", "wkv", "ffn_x"))
    _, st2 = m.step(torch.tensor([4]), st, inplace=True)
    assert st2 is st and not torch.equal(st.wkv, before.wkv)


def test_target_index_physical_slicing() -> None:
    m = perturbed_model(2)
    tokens = torch.randint(0, TINY["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m(tokens)
        idx = torch.tensor([3, 11, 19])
        assert torch.allclose(m(tokens, target_index=idx), full[:, idx], atol=1e-6)
        mask = torch.zeros(2, 20, dtype=torch.bool)
        mask[0, 5:] = True
        mask[1, 12:] = True
        assert torch.allclose(m(tokens, target_index=mask), full[mask], atol=1e-6)
    with pytest.raises(ValueError):
        m(tokens, target_index=mask[:, :5])


def test_state_fork_for_variations() -> None:
    m = perturbed_model(3)
    _, st = m.prefill(torch.tensor([[1, 2, 3, 4]]))
    k4 = st.select([0, 0, 0, 0])
    assert k4.batch_size == 4 and torch.equal(k4.wkv[:, 3], st.wkv[:, 0])
    logits, _ = m.step(torch.tensor([5, 5, 5, 5]), k4)
    assert torch.allclose(logits[0], logits[3])
    assert st.repeat(2).batch_size == 2


def test_step_state_stays_on_model_device_and_fp32() -> None:
    m = perturbed_model()
    st = m.init_state(2)
    assert st.wkv.dtype == torch.float32 and st.device == m.device
    assert st.wkv.shape == (2, 2, 2, 64, 64)


def test_rwkv_lm_names_and_init() -> None:
    torch.manual_seed(0)
    cfg = RWKVConfig(**TINY)
    m = RWKV7(cfg)
    names = dict(m.named_parameters())
    for n in ("emb.weight", "blocks.0.ln0.weight", "blocks.1.att.v0", "blocks.1.att.r_k",
              "blocks.0.att.receptance.weight", "blocks.0.att.ln_x.weight", "blocks.1.ffn.x_k", "ln_out.bias", "head.weight"):
        assert n in names, n
    assert "blocks.0.att.v0" not in names  # unused in layer 0: not created
    assert names["blocks.0.att.x_r"].shape == (1, 1, cfg.n_embd)
    assert names["blocks.0.att.r_k"].shape == (cfg.n_head, cfg.head_size)
    assert torch.count_nonzero(names["blocks.0.att.output.weight"]) == 0
    assert torch.count_nonzero(names["blocks.1.ffn.value.weight"]) == 0
    assert torch.count_nonzero(names["blocks.0.att.w1"]) == 0
    w = names["blocks.0.att.receptance.weight"]
    assert torch.allclose(w @ w.T, torch.eye(cfg.n_embd), atol=1e-4)  # orthogonal
    assert names["emb.weight"].abs().max() <= 1e-4
    assert torch.allclose(names["blocks.1.att.ln_x.weight"], torch.ones(cfg.n_embd))  # ((1+1)/2)**0.7
    # Decay at init stays in (0.545, 1).
    ws = torch.exp(-0.6065 * torch.sigmoid(names["blocks.0.att.w0"]))
    assert ws.min() > 0.54 and ws.max() < 1.0


def test_param_groups_decay_only_2d_weights() -> None:
    m = RWKV7(RWKVConfig(**TINY))
    groups = m.param_groups(weight_decay=0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {id(p): n for n, p in m.named_parameters()}
    assert all(names[i].endswith(".weight") and dict(m.named_parameters())[names[i]].dim() == 2 for i in decayed)
    assert id(m.blocks[0].att.key.weight) in decayed and id(m.blocks[0].att.w1) not in decayed
    assert id(m.blocks[0].ln1.weight) not in decayed
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert groups[2]["lr_scale"] == 2.0 and len(groups[2]["params"]) == TINY["n_layer"]
    torch.optim.AdamW(groups, lr=1e-3)  # accepted as-is


def test_any_length_and_bad_shapes() -> None:
    m = perturbed_model()
    for T in (1, 16, 33):
        assert m(torch.zeros(1, T, dtype=torch.long)).shape == (1, T, TINY["vocab_size"])
    with pytest.raises(ValueError):
        m(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        m.step(torch.zeros(1, 1, dtype=torch.long), m.init_state(1))


def test_tiny_model_overfits_and_every_parameter_learns() -> None:
    torch.manual_seed(0)
    m = RWKV7(RWKVConfig(vocab_size=32, n_layer=2, n_embd=64, head_size=32, ctx_len=64))
    seq = torch.randint(0, 32, (1, 65), generator=torch.Generator().manual_seed(0))
    x, y = seq[:, :-1], seq[:, 1:]
    init = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for it in range(150):
        loss = F.cross_entropy(m(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        if it == 10:  # after a few steps the zero-init paths have opened up
            no_grad = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
            assert not no_grad, no_grad
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1
    unchanged = [n for n, p in m.named_parameters() if torch.equal(p, init[n])]
    assert not unchanged, unchanged


def test_dropout_only_in_training() -> None:
    m = perturbed_model(dropout=0.5)
    tokens = torch.randint(0, TINY["vocab_size"], (1, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(m.eval()(tokens), m(tokens))
        m.train()
        torch.manual_seed(1)
        assert not torch.allclose(m(tokens), m.eval()(tokens))


def test_config_validation_and_round_trip() -> None:
    cfg = RWKVConfig(**TINY)
    assert RWKVConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.n_head == 2 and cfg.ffn_dim == 4 * cfg.n_embd
    with pytest.raises(ValueError):
        RWKVConfig(n_embd=100, head_size=64)
    with pytest.raises(ValueError):
        RWKVConfig(wkv="magic")
    with pytest.raises(ValueError):
        RWKVConfig.from_dict({**cfg.to_dict(), "surprise": 1})


def test_wkv_setting_reference_matches_chunked() -> None:
    m = perturbed_model(4)
    tokens = torch.randint(0, TINY["vocab_size"], (1, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = m(tokens)
        m.cfg.wkv = "reference"
        b = m(tokens)
    assert rel(a, b) < 1e-5


def test_float64_parallel_and_recurrent_agree_tightly() -> None:
    # In fp64 the two modes must agree to ~1e-12: any maths difference between
    # them (not just rounding) would show up here.
    m = perturbed_model(5).double()
    tokens = torch.randint(0, TINY["vocab_size"], (2, 35), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        parallel = m(tokens)
    stepped, _ = step_all(m, tokens, "auto")  # fp64: the PyTorch step
    assert parallel.dtype == torch.float64 and rel(stepped, parallel) < 1e-10


@settings(max_examples=12, deadline=None)
@given(T=st.integers(1, 48), split=st.integers(0, 48), seed=st.integers(0, 2**16))
def test_prefill_split_anywhere_equals_whole(T: int, split: int, seed: int) -> None:
    split = min(split, T - 1)
    m = perturbed_model(0)
    tokens = torch.randint(0, TINY["vocab_size"], (1, T), generator=torch.Generator().manual_seed(seed))
    logits, whole = m.prefill(tokens)
    if split > 0:
        _, st_a = m.prefill(tokens[:, :split])
        logits_b, parts = m.prefill(tokens[:, split:], st_a)
    else:
        logits_b, parts = m.prefill(tokens)
    assert rel(parts.wkv, whole.wkv) < 1e-4 and rel(logits_b, logits) < 1e-4
