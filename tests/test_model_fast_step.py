"""Native fused step: matches the PyTorch step; builds lazily; falls back cleanly."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

import model.fast_step as fs
from model import RWKV7
from tests.helpers import perturbed_model, rel


def perturbed(seed: int = 0, **kw) -> RWKV7:
    return perturbed_model(seed, **{**dict(vocab_size=61, n_layer=3, n_embd=128, head_size=64), **kw})




@pytest.fixture()
def native():
    if fs.load_library() is None:
        pytest.fail(f"native step did not build here: {fs._library.failure}")


@pytest.mark.parametrize("B", [1, 3, 4, 6])
def test_native_matches_torch(native, B: int) -> None:
    m = perturbed(B, head_size=32)
    st_t, st_n = m.init_state(B), m.init_state(B)
    g = torch.Generator().manual_seed(B)
    for _ in range(12):
        tok = torch.randint(0, 61, (B,), generator=g)
        lt, st_t = m.step(tok, st_t, impl="torch")
        ln, st_n = m.step(tok, st_n, impl="native")
        assert rel(ln, lt) < 1e-4
    for name in ("att_x", "wkv", "ffn_x"):
        assert rel(getattr(st_n, name), getattr(st_t, name)) < 1e-4


def test_native_inplace_noncontiguous_and_errors(native) -> None:
    m = perturbed()
    _, st = m.prefill(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    ref_logits, ref_state = m.step(torch.tensor([7, 8]), st, impl="torch")
    # A state whose tensors are strided views must still be updated correctly.
    wide = st.select([0, 0, 1, 1])  # [::2] -> rows 0, 1
    view = type(st)(wide.att_x[:, ::2], wide.wkv[:, ::2], wide.ffn_x[:, ::2])
    logits, out = m.step(torch.tensor([7, 8]), view, impl="native", inplace=True)
    assert out is view and rel(logits, ref_logits) < 1e-4 and rel(view.wkv, ref_state.wkv) < 1e-4
    with pytest.raises(IndexError):
        m.step(torch.tensor([61, 0]), st, impl="native")
    with pytest.raises(ValueError):
        m.step(torch.tensor([1]), st, impl="native")


def test_native_follows_weight_updates_and_moves(native) -> None:
    m = perturbed()
    st = m.init_state(1)
    m.step(torch.tensor([1]), st)  # builds the pointer table
    with torch.no_grad():
        m.blocks[1].ffn.value.weight.mul_(2.0)  # in place: same pointers
    assert rel(m.step(torch.tensor([1]), st)[0], m.step(torch.tensor([1]), st, impl="torch")[0]) < 1e-4
    m.double().float()  # parameters re-allocated: the table must be rebuilt
    assert rel(m.step(torch.tensor([1]), st)[0], m.step(torch.tensor([1]), st, impl="torch")[0]) < 1e-4


def test_non_fp32_models_use_torch() -> None:
    m = perturbed().to(torch.float64)
    st = m.init_state(1)
    logits, _ = m.step(torch.tensor([3]), st)  # auto: falls back silently
    assert logits.dtype == torch.float64
    with pytest.raises(RuntimeError):
        m.step(torch.tensor([3]), st, impl="native")


def test_build_failure_logs_one_line_and_falls_back(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setattr(fs, "_library", fs._library.fresh())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bad = tmp_path / "cxx"
    bad.write_text("#!/bin/sh\necho 'error: no compiler here' >&2\nexit 1\n")
    bad.chmod(0o755)
    monkeypatch.setenv("CXX", str(bad))
    m = perturbed()
    with caplog.at_level(logging.WARNING, logger="model.fast_step"):
        logits, _ = m.step(torch.tensor([3]), m.init_state(1))
        m.step(torch.tensor([3]), m.init_state(1))
    records = [r for r in caplog.records if r.name == "model.fast_step"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert "no compiler here" in records[0].getMessage()
    assert rel(logits, m.step(torch.tensor([3]), m.init_state(1), impl="torch")[0]) < 1e-6
    with pytest.raises(RuntimeError):
        m.step(torch.tensor([3]), m.init_state(1), impl="native")


def test_disabled_by_environment(monkeypatch) -> None:
    monkeypatch.setattr(fs, "_library", fs._library.fresh())
    monkeypatch.setenv("COPILOT_NATIVE_STEP", "0")
    assert fs.load_library() is None


def test_import_builds_nothing(tmp_path) -> None:
    # Importing the model package (and building a model) must not compile.
    code = (
        "import model, model.rwkv7, model.fast_step as fs\n"
        "m = model.RWKV7(model.RWKVConfig(vocab_size=10, n_layer=1, n_embd=64))\n"
        "m(__import__('torch').zeros(1, 3, dtype=__import__('torch').long))\n"
        "assert not fs._library.tried\n"
        "import pathlib, os; assert not (pathlib.Path(os.environ['XDG_CACHE_HOME']) / 'composer-copilot').exists()\n"
    )
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)


def test_bf16_native_matches_torch_on_rounded_weights(native) -> None:
    m = perturbed(7)
    rounded = perturbed(7)
    with torch.no_grad():
        for name, p in rounded.named_parameters():
            if any(name.endswith(s) for s in fs.BIG_MATRICES):
                p.copy_(p.to(torch.bfloat16).float())
    m.native_precision = "bf16"
    st_n, st_t = m.init_state(2), rounded.init_state(2)
    for t in range(8):
        tok = torch.tensor([t, 2 * t + 1])
        ln, st_n = m.step(tok, st_n, impl="native")
        lt, st_t = rounded.step(tok, st_t, impl="torch")
        assert rel(ln, lt) < 1e-4
    # The copies follow in-place weight updates.
    with torch.no_grad():
        m.head.weight.mul_(2.0)
        rounded.head.weight.mul_(2.0)
    assert rel(m.step(tok, st_n, impl="native")[0], rounded.step(tok, st_t, impl="torch")[0]) < 1e-4
    m.native_precision = "int3"
    with pytest.raises(ValueError):
        m.step(tok, st_n, impl="native")
