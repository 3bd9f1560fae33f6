"""BlinkDL's `rwkv` package on our exported weights: the peer of the step benchmarks.

Importing this module sets the environment the package reads when it is
imported (RWKV-7 on, TorchScript on, no CUDA build), so import it before
anything imports `rwkv`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench._timing import median_time

os.environ.setdefault("RWKV_V7_ON", "1")
os.environ.setdefault("RWKV_JIT_ON", "1")
os.environ.setdefault("RWKV_CUDA_ON", "0")


def load_peers(model: Any, strategies: tuple[str, ...]) -> dict[str, Any]:
    """{strategy: the package's model on ``model``'s weights, or the error text}.

    Raises ImportError when the package (a test/dev dependency) is missing.
    """
    from rwkv.model import RWKV

    from model.export_rwkv import export_rwkv_pth

    peers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        pth = export_rwkv_pth(model, Path(d) / "peer")
        for strategy in strategies:
            try:
                peers[strategy] = RWKV(model=str(pth.with_suffix("")), strategy=strategy)
            except Exception as e:  # one strategy failing must not hide the others
                peers[strategy] = f"{type(e).__name__}: {e}"
    return peers


def peer_step_ms(peer: Any, batch: int = 1, repeats: int = 9, inner: int = 50, warmup: int = 5) -> float:
    """Median ms for one token of each of ``batch`` sequences.

    The package's RNN mode has no batch dimension, so a batch is one call
    per sequence on its own state, round robin: measured, not multiplied.
    """
    states: list = [None] * batch

    def one_batch() -> None:
        for i in range(batch):
            _, states[i] = peer.forward([0], states[i])

    return median_time(one_batch, repeats, inner, warmup) * 1e3
