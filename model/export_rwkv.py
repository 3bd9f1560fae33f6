"""Export to a .pth that BlinkDL's ``rwkv`` pip package loads.

    RWKV_V7_ON=1; from rwkv.model import RWKV
    RWKV(model=str(path.with_suffix("")), strategy="cpu fp32")

Our parameter names and shapes are RWKV-LM's, so the export is the state dict
in fp32. The package appends ".pth" itself: pass the path without suffix.
(The .pth is a torch pickle because that is the package's format; our own
checkpoints are safetensors and never unpickled.)
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from .atomic_io import atomic_write_bytes
from .rwkv7 import RWKV7


def export_rwkv_pth(model: RWKV7, path: str | os.PathLike) -> Path:
    """Write ``path`` (suffix forced to .pth) atomically; returns the path."""
    path = Path(path).with_suffix(".pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path
