"""The resume file: everything an interrupted run needs, in one atomic file.

``resume.safetensors`` holds the model weights (``model/...``), the AdamW
moments (``opt/<param>/<key>``) and the RNG states (``rng/...``); its string
metadata holds JSON: step, best val loss, early-stopping count, the train and
model configs and the optimizer's param-group settings. One file, written by
write-fsync-rename, so a kill -9 leaves the previous resume point or the new
one, never a mix. Loading never unpickles.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from model.atomic_io import atomic_write_bytes

RESUME_FILE = "resume.safetensors"


def save_resume(out: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    from safetensors.torch import save

    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for pid, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"opt/{pid}/{key}"] = t.detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    blob = save(tensors, metadata={"meta": json.dumps(meta), "groups": json.dumps(groups)})
    atomic_write_bytes(out / RESUME_FILE, blob)


def read_resume(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[dict]]:
    """(tensors, meta, optimizer param groups) of ``out``'s resume file."""
    from safetensors import safe_open

    path = out / RESUME_FILE
    if not path.exists():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return tensors, json.loads(md["meta"]), json.loads(md["groups"])
    except Exception as exc:  # a corrupt file is a user-facing error, one line
        raise ValueError(f"{path}: unreadable resume file ({type(exc).__name__}: {exc})") from None


def restore(model: nn.Module, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
            groups: list[dict]) -> None:
    """Load weights, optimizer moments and RNG states read by ``read_resume``."""
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt/"):
            _, pid, key = k.split("/", 2)
            state.setdefault(int(pid), {})[key] = v
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
