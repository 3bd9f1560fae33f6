"""The RWKV-7 music model: config, layers, WKV operators, sampling, checkpoints
and the REMI tokenizer that belongs to every checkpoint.

Nothing here imports Qt (tests/test_layering.py enforces it).

Public API: ``from model import RWKVConfig, RWKV7, RWKVState, load_checkpoint,
save_checkpoint, CheckpointError``. The names are resolved lazily so that
``import model.tokens`` does not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "RWKVConfig": "model.config",
    "RWKV7": "model.rwkv7",
    "RWKVState": "model.state",
    "load_checkpoint": "model.checkpoint",
    "save_checkpoint": "model.checkpoint",
    "CheckpointError": "model.checkpoint",
    "export_rwkv_pth": "model.export_rwkv",
    "SamplingParams": "model.sampling",
    "sample": "model.sampling",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from .config import RWKVConfig
    from .export_rwkv import export_rwkv_pth
    from .rwkv7 import RWKV7
    from .sampling import SamplingParams, sample
    from .state import RWKVState


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
