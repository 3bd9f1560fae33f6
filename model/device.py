"""Which torch device a command runs on: one rule for the app and the trainer."""
from __future__ import annotations

import os

import torch


def resolve_device(requested: str | None = "auto") -> torch.device:
    """'auto' -> the GPU when there is one, else the CPU; ValueError (one line) otherwise.

    Under ``torchrun`` each process gets its own GPU: ``auto`` picks the one
    ``LOCAL_RANK`` names (0 when run on its own).
    """
    if requested in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"unknown device {requested!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} asked for, but this machine has no CUDA GPU")
    return device
