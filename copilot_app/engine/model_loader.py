"""Find, load and check the model the engine runs: the bundled one by default."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from copilot_app.engine.runtime_info import DEFAULT_MODEL, bundled_model
from model.device import resolve_device

log = logging.getLogger(__name__)


def resolve_model_path(requested: str | None) -> Path:
    if requested:
        return Path(requested)
    bundled = bundled_model()
    if bundled is None:
        raise FileNotFoundError(f"no bundled model at {DEFAULT_MODEL}; pass --model PATH")
    return bundled


def load_model(requested: str | None = None, device: str = "auto") -> tuple[torch.nn.Module, dict, Path]:
    """(model in eval mode on its device, sidecar, path); one-line errors for bad files."""
    from model import load_checkpoint
    from model.tokens.config import check_compatible

    path = resolve_model_path(requested)
    dev = resolve_device(device)
    if dev.type == "cpu":
        # One thread: the recurrent step is latency-bound, and the GUI, MIDI
        # and training process need the other cores (see bench/live_bench.py).
        torch.set_num_threads(1)
    model, meta = load_checkpoint(path, device=dev)
    check_compatible(meta.get("tokenizer"))
    log.info("model %s on %s", path.name, dev)
    return model.eval(), meta, path
