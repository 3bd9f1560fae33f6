"""Checkpoints: safetensors weights + a JSON sidecar. Loading never unpickles.

Naming: ``save_checkpoint("run/model.safetensors", ...)`` writes
``run/model.safetensors`` (weights) and ``run/model.json`` (sidecar, the
weights path with its suffix replaced by ``.json``). Both are written to a
temp file, fsynced and moved into place with ``os.replace``; the weights go
first, and the sidecar carries their SHA-256, so a crash in between, or a
weights file from another run, is detected as a mismatch on load.

Sidecar (format 1)::

    {"format": "composer-copilot-rwkv7", "format_version": 1,
     "config": {...RWKVConfig...}, "weights_sha256": "...",
     "n_params": int, "tokenizer": {...} | null, "data": {...} | null,
     "metrics": {...} | null, "extra": {...} | null}

Every failure to load - missing, truncated, corrupt, mismatched, newer
format - raises ``CheckpointError`` (a ValueError) with a one-line message
that starts with the offending file's path.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .atomic_io import atomic_write_bytes
from .config import RWKVConfig
from .rwkv7 import RWKV7

FORMAT = "composer-copilot-rwkv7"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # keep it one line
        super().__init__(f"{self.path}: {self.reason}")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar that belongs to a weights file."""
    return Path(path).with_suffix(".json")


def save_checkpoint(
    path: str | os.PathLike,
    model: RWKV7,
    *,
    tokenizer: dict | None = None,
    data: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write weights to ``path`` and the sidecar beside it; returns the sidecar path.

    The dicts must be JSON-serialisable; they are stored opaquely.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(f"{path}: the weights path must not end in .json (that is the sidecar)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    blob = save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    side = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "weights_file": path.name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "n_params": model.num_params(),
        "dtype": str(model.dtype).removeprefix("torch."),
        "tokenizer": tokenizer,
        "data": data,
        "metrics": metrics,
        "extra": extra,
    }
    side_bytes = (json.dumps(side, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    atomic_write_bytes(path, blob)
    sp = sidecar_path(path)
    atomic_write_bytes(sp, side_bytes)
    return sp


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The validated sidecar of weights file ``path`` (no weights read)."""
    sp = sidecar_path(path)
    try:
        side = json.loads(sp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(sp, "sidecar file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(sp, f"unreadable sidecar ({e})") from None
    if not isinstance(side, dict) or side.get("format") != FORMAT:
        raise CheckpointError(sp, "not a Composer Copilot model sidecar")
    version = side.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(sp, f"unsupported format_version {version!r} (this build reads <= {FORMAT_VERSION})")
    if not isinstance(side.get("config"), dict) or not isinstance(side.get("weights_sha256"), str):
        raise CheckpointError(sp, "sidecar lacks config or weights_sha256")
    return side


def load_checkpoint(path: str | os.PathLike, device: torch.device | str | None = None) -> tuple[RWKV7, dict]:
    """Load ``path`` + its sidecar -> (model in eval mode, sidecar dict).

    Raises CheckpointError for any missing, truncated, corrupt or mismatched file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    side = read_sidecar(path)
    try:
        cfg = RWKVConfig.from_dict(side["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(sidecar_path(path), f"invalid model config ({e})") from None
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(path, "weights file not found") from None
    except OSError as e:
        raise CheckpointError(path, f"unreadable weights ({e})") from None
    if hashlib.sha256(blob).hexdigest() != side["weights_sha256"]:
        raise CheckpointError(path, "weights do not match the sidecar's SHA-256 (truncated, corrupt or from another save)")
    try:
        tensors = load(blob)  # safetensors: a JSON header + raw bytes, no pickle
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(path, f"corrupt safetensors file ({e})") from None

    model = RWKV7(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(path, f"tensor names do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, ref in expected.items():
        t = tensors[name]
        if t.shape != ref.shape:
            raise CheckpointError(path, f"{name} has shape {tuple(t.shape)}, config expects {tuple(ref.shape)}")
        if not t.is_floating_point():
            raise CheckpointError(path, f"{name} has non-float dtype {t.dtype}")
    dtype = next(iter(tensors.values())).dtype
    model.to(dtype=dtype)
    model.load_state_dict(tensors, strict=True)
    if device is not None:
        model.to(device)
    return model.eval(), side
