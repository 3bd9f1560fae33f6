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
    """Weights + sidecar at ``path``; an RWKV7 pair is published as one unit
    (``model.checkpoint``: a kill between its two renames loads the previous one)."""
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


# Bounds of a baseline's config fields, checked before the model is built (the
# same rule format as model.checkpoint.CONFIG_SCHEMA).
_BASELINE_SCHEMA: dict[str, tuple[tuple[type, ...], float, float, bool]] = {
    "vocab_size": ((int,), 1, 65_536, False),
    "n_layer": ((int,), 1, 128, False),
    "n_embd": ((int,), 1, 16_384, False),
    "head_size": ((int,), 1, 16_384, False),
    "ctx_len": ((int,), 1, 1 << 20, False),
    "max_len": ((int,), 1, 1 << 20, False),
    "dropout": ((int, float), 0.0, 0.999, False),
    "chunk_len": ((int,), 1, 4_096, False),
}


def _baseline(path: Path, side: dict) -> nn.Module:
    """A baseline model of the sidecar's config, its fields checked first."""
    from model.checkpoint import CheckpointError, check_field

    where = path.with_suffix(".json")
    cfg = dict(side.get("config") or {})
    arch = cfg.pop("arch", None)
    if arch not in ("lstm", "transformer"):
        raise CheckpointError(path, "not a model checkpoint")
    for key, value in cfg.items():
        if key not in _BASELINE_SCHEMA:
            raise CheckpointError(where, f"unknown config field {key!r:.40}")
        check_field(key, value, _BASELINE_SCHEMA[key], where)
    try:
        return LSTMLM(LSTMConfig(**cfg)) if arch == "lstm" else TransformerLM(TransformerConfig(**cfg))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(where, f"invalid model config ({exc})") from None


def load_any(path: str | Path, device: str | None = None) -> tuple[nn.Module, dict]:
    """An RWKV7 checkpoint (the app's format) or a baseline saved by ``save_model``."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    from model import load_checkpoint
    from model.atomic_io import read_regular_file
    from model.checkpoint import FORMAT, MAX_WEIGHTS_BYTES, CheckpointError, read_json_file

    path = Path(path)
    side_path = path.with_suffix(".json")
    side = read_json_file(side_path, side_path)  # bounded, regular files only, one-line errors
    if not isinstance(side, dict):
        raise CheckpointError(side_path, "not a model sidecar")
    if side.get("format") == FORMAT:
        return load_checkpoint(path, device)
    model = _baseline(path, side)
    try:
        tensors = load(read_regular_file(path, MAX_WEIGHTS_BYTES))
        bad = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
        if bad is not None:
            raise CheckpointError(path, f"{bad} holds NaN or infinite values (a diverged or damaged model)")
        model.load_state_dict(tensors)
    except CheckpointError:
        raise
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:  # bad file, wrong shapes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(path, f"unusable weights ({first})") from None
    if device is not None:
        model.to(device)
    return model.eval(), side
