"""Sampling: seeded, batched, truncation, penalties, masks."""
from __future__ import annotations

import pytest
import torch

from model.sampling import SamplingParams, apply_repetition_penalty, filter_logits, make_generator, sample


def test_seeded_and_batched() -> None:
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(0))
    p = SamplingParams(temperature=1.3, top_p=0.9)
    a = sample(logits, p, generator=make_generator(42))
    b = sample(logits, p, generator=make_generator(42))
    assert a.shape == (8,) and a.dtype == torch.long and torch.equal(a, b)
    draws = torch.stack([sample(logits, p, generator=make_generator(s)) for s in range(20)])
    assert len(set(draws[:, 0].tolist())) > 1  # different seeds, different variations


def test_greedy() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 1.0]])
    assert sample(logits, SamplingParams(temperature=0)).tolist() == [1, 0]


def test_top_k_and_top_p_support() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isinf(k2[0, 2:]).all() and torch.isfinite(k2[0, :2]).all()
    p = filter_logits(logits, top_p=0.75)  # 0.5 + 0.3 covers 0.75
    assert torch.isfinite(p[0, :2]).all() and torch.isinf(p[0, 2:]).all()
    tiny = filter_logits(logits, top_p=0.01)  # the top token always survives
    assert torch.isfinite(tiny[0, 0]) and torch.isinf(tiny[0, 1:]).all()
    g = make_generator(0)
    draws = sample(logits.expand(2000, 4), SamplingParams(top_p=0.75), generator=g)
    assert set(draws.tolist()) == {0, 1}
    freq0 = (draws == 0).float().mean().item()
    assert abs(freq0 - 0.5 / 0.8) < 0.05  # renormalised nucleus


def test_mask_hook_forbids_tokens() -> None:
    logits = torch.zeros(4, 10)
    logits[:, 3] = 100.0  # would always win
    allowed = torch.ones(10, dtype=torch.bool)
    allowed[3] = False
    out = sample(logits, generator=make_generator(1), mask=allowed)
    assert (out != 3).all()
    calls = []

    def grammar(lg: torch.Tensor) -> torch.Tensor:
        calls.append(lg.shape)
        m = torch.zeros_like(lg, dtype=torch.bool)
        m[:, 7] = True
        return m

    assert sample(logits, generator=make_generator(1), mask=grammar).tolist() == [7] * 4
    assert calls == [(4, 10)]
    with pytest.raises(ValueError):
        sample(logits, mask=torch.zeros(10, dtype=torch.bool))


def test_repetition_penalty() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = apply_repetition_penalty(logits, torch.tensor([[0, 1, -1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]
    assert torch.equal(apply_repetition_penalty(logits, torch.tensor([[0]]), 1.0), logits)
    # With a strong penalty the repeated favourite loses to the runner-up.
    lg = torch.tensor([[2.0, 1.5]])
    p = SamplingParams(temperature=0, repetition_penalty=4.0)
    assert sample(lg, p, recent_tokens=torch.tensor([[0]])).item() == 1


def test_param_validation() -> None:
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1), dict(repetition_penalty=0)):
        with pytest.raises(ValueError):
            SamplingParams(**bad)
    with pytest.raises(ValueError):
        sample(torch.zeros(3))


@pytest.mark.parametrize("path", ["cpu", "torch"])
def test_both_draw_paths_sample_the_renormalised_nucleus(path: str) -> None:
    """The NumPy draw (CPU) and its torch twin (GPU) agree with the nucleus
    filter_logits keeps, with masked tokens never drawn."""
    from model.sampling import _draw_nucleus_cpu, _draw_nucleus_torch

    probs = torch.tensor([0.05, 0.4, 0.0, 0.25, 0.2, 0.1])
    logits = torch.log(probs).expand(20000, 6).clone()  # token 2: -inf, as a mask leaves it
    kept = torch.isfinite(filter_logits(logits[:1], top_p=0.8))[0]
    assert kept.tolist() == [False, True, False, True, True, False]
    draw = _draw_nucleus_cpu if path == "cpu" else _draw_nucleus_torch
    out = draw(logits, 0.8, make_generator(3))
    freq = torch.bincount(out, minlength=6).float() / len(out)
    want = torch.where(kept, probs, torch.zeros(6)) / probs[kept].sum()
    assert torch.allclose(freq, want, atol=0.015), (freq, want)
    assert torch.equal(out, draw(logits, 0.8, make_generator(3)))  # seeded
