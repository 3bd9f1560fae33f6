"""Export to a .pth that BlinkDL's ``rwkv`` pip package loads.

    RWKV_V7_ON=1; from rwkv.model import RWKV
    RWKV(model=str(path.with_suffix("")), strategy="cpu fp32")

Our parameter names and shapes are RWKV-LM's, so the export is the state dict
in fp32. The package appends ".pth" itself: pass the path without suffix.
(The .pth is a torch pickle because that is the package's format; our own
checkpoints are safetensors and never unpickled.)
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .rwkv7 import RWKV7


def export_rwkv_pth(model: RWKV7, path: str | os.PathLike) -> Path:
    """Write ``path`` (suffix forced to .pth) atomically; returns the path."""
    path = Path(path).with_suffix(".pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(sd, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
