"""Oracle: BlinkDL's `rwkv` pip package on our exported weights gives our logits."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

from model import RWKV7
from model.export_rwkv import export_rwkv_pth
from tests.helpers import perturbed_model, rel


def rwkv_package():
    os.environ["RWKV_V7_ON"] = "1"  # read at import time by rwkv.model
    os.environ.setdefault("RWKV_JIT_ON", "1")
    os.environ["RWKV_CUDA_ON"] = "0"
    pytest.importorskip("rwkv")
    mod = sys.modules.get("rwkv.model")
    if mod is not None and not hasattr(mod, "RWKV_x070"):
        mod = importlib.reload(mod)
    return mod or importlib.import_module("rwkv.model")


def perturbed(seed: int) -> RWKV7:
    return perturbed_model(seed, vocab_size=53, n_layer=3, n_embd=128, head_size=64)




@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rwkv_package_logits_match(tmp_path: Path) -> None:
    rwkv_model = rwkv_package()
    m = perturbed(0)
    pth = export_rwkv_pth(m, tmp_path / "exported")
    assert pth.suffix == ".pth" and pth.exists()
    peer = rwkv_model.RWKV(model=str(pth.with_suffix("")), strategy="cpu fp32")
    tokens = torch.randint(0, 53, (30,), generator=torch.Generator().manual_seed(1)).tolist()

    with torch.no_grad():
        ours = m(torch.tensor([tokens]))[0]
    theirs_seq, _ = peer.forward(tokens, None, full_output=True)
    assert rel(theirs_seq, ours) < 1e-4

    # Their RNN mode against our recurrent step (native and PyTorch).
    state, st_native, st_torch = None, m.init_state(1), m.init_state(1)
    for t, tok in enumerate(tokens):
        theirs, state = peer.forward([tok], state)
        ln, st_native = m.step(torch.tensor([tok]), st_native)
        lt, st_torch = m.step(torch.tensor([tok]), st_torch, impl="torch")
        assert rel(ln[0], theirs) < 1e-4 and rel(lt[0], theirs) < 1e-4, t
    # Same recurrent state, too (their wkv layout is ours: [H, value, key]).
    assert rel(st_torch.wkv[-1, 0], state[(m.cfg.n_layer - 1) * 3 + 1]) < 1e-4
