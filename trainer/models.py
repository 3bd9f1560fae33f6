"""Building, saving and loading the backbones the trainer can train.

RWKV7 checkpoints go through ``model.save_checkpoint`` (the format the app
loads). Baselines are only for comparisons: safetensors weights plus a small
JSON sidecar with their config, written the same atomic way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn as nn

from model import RWKV7, RWKVConfig, save_checkpoint
from model.tokens.config import tokenizer_config
from model.atomic_io import atomic_write_bytes
from trainer.baselines import LSTMConfig, LSTMLM, TransformerConfig, TransformerLM

ARCHS = ("rwkv", "lstm", "transformer")


def build_model(arch: str, vocab_size: int, n_layer: int | None = None, n_embd: int | None = None,
                ctx_len: int = 512, dropout: float = 0.0) -> nn.Module:
    """A freshly initialised backbone; None sizes take the arch's defaults."""
    sizes = {k: v for k, v in (("n_layer", n_layer), ("n_embd", n_embd)) if v is not None}
    if arch == "rwkv":
        return RWKV7(RWKVConfig(vocab_size=vocab_size, ctx_len=ctx_len, dropout=dropout, **sizes))
    if arch == "lstm":
        return LSTMLM(LSTMConfig(vocab_size=vocab_size, ctx_len=ctx_len, dropout=dropout, **sizes))
    if arch == "transformer":
        return TransformerLM(TransformerConfig(vocab_size=vocab_size, ctx_len=ctx_len, dropout=dropout, **sizes))
    raise ValueError(f"unknown architecture {arch!r} ({', '.join(ARCHS)})")


def arch_of(model: nn.Module) -> str:
    return "rwkv" if isinstance(model, RWKV7) else model.cfg.to_dict()["arch"]


def matched_width(arch: str, target_params: int, vocab_size: int, n_layer: int, multiple: int = 32) -> int:
    """The width (a multiple of ``multiple``) whose parameter count at depth
    ``n_layer`` is closest to ``target_params``; counts grow with width, so
    the search stops at the first width past the target."""
    best, best_err, width = multiple, None, multiple
    while True:
        n = build_model(arch, vocab_size, n_layer, width).num_params()
        err = abs(n - target_params)
        if best_err is None or err < best_err:
            best, best_err = width, err
        if n >= target_params:
            return best
        width += multiple


def save_model(path: Path, model: nn.Module, *, data: dict | None = None,
               metrics: dict | None = None, extra: dict | None = None) -> None:
    """Weights + sidecar at ``path``, atomically (each file: write, fsync, rename)."""
    if isinstance(model, RWKV7):
        save_checkpoint(path, model, tokenizer=tokenizer_config(), data=data, metrics=metrics, extra=extra)
        return
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors))
    side: dict[str, Any] = {"config": model.cfg.to_dict(), "n_params": model.num_params(),
                            "tokenizer": tokenizer_config(), "data": data, "metrics": metrics,
                            "extra": extra}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(side, indent=2).encode())


def load_any(path: str | Path, device: str | None = None) -> tuple[nn.Module, dict]:
    """An RWKV7 checkpoint (the app's format) or a baseline saved by ``save_model``."""
    from model import load_checkpoint
    from model.checkpoint import FORMAT

    path = Path(path)
    side_path = path.with_suffix(".json")
    try:
        side = json.loads(side_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{side_path}: sidecar file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{side_path}: unreadable sidecar ({exc})") from None
    if side.get("format") == FORMAT:
        return load_checkpoint(path, device)
    cfg = dict(side.get("config") or {})
    arch = cfg.pop("arch", None)
    if arch not in ("lstm", "transformer"):
        raise ValueError(f"{path}: not a model checkpoint")
    from safetensors.torch import load_file

    model = (LSTMLM(LSTMConfig(**cfg)) if arch == "lstm" else TransformerLM(TransformerConfig(**cfg)))
    model.load_state_dict(load_file(str(path)))
    if device is not None:
        model.to(device)
    return model.eval(), side
