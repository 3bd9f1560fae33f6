"""Styles: a learned initial recurrent state for one base model, in a small file.

An RWKV model's behaviour is steered by the state it starts from. A style is
that starting state, learned on a composer's pieces with every weight frozen
(trainer/style_tuning.py): per layer the WKV matrix state [H, N, N] and the
two token-shift vectors [C]. For the 6 x 192 default that is 6 x (3 x 64 x 64
+ 2 x 192) fp32 numbers, ~300 KB, against 12.6 MB for a fine-tuned model.

On disk, like a checkpoint (model/checkpoint.py): ``NAME.safetensors`` holds
the tensors ``att_x`` [L, C], ``wkv`` [L, H, N, N], ``ffn_x`` [L, C]; the JSON
sidecar ``NAME.json`` beside it names the base model the state belongs to::

    {"format": "composer-copilot-style", "format_version": 1,
     "base": {"fingerprint": "<sha256 of the base weights>", "config": {...}},
     "tensors_sha256": "...", "name": "...", "data": {...} | null,
     "metrics": {...} | null}

A state only means something to the weights it was learned with, so loading
it for another model is refused (``StyleError``, one line). Every failure to
load (missing, truncated, corrupt, not finite, wrong shapes) is a
``StyleError`` whose message starts with the file's path.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .atomic_io import atomic_write_bytes, read_file_or_say
from .checkpoint import CheckpointError, check_config
from .state import RWKVState

FORMAT = "composer-copilot-style"
FORMAT_VERSION = 1
STYLE_FILE = "style.safetensors"  # the file `train --style --out DIR` writes in DIR
MAX_STYLE_BYTES = 64 * 1024 * 1024  # far above any state of a model this app runs
MAX_SIDECAR_BYTES = 1024 * 1024
TENSOR_NAMES = ("att_x", "wkv", "ffn_x")


class StyleError(ValueError):
    """A style that cannot be used; the message is one line naming the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the model's tensors (names, shapes and fp32 values, in name
    order): the same weights give the same print whatever file they came from."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def style_display_name(path: str | os.PathLike) -> str:
    """What the app calls a style: its folder for a run's style.safetensors, else the file's stem.
    (The path, not the sidecar: a run is written in a staging folder and renamed.)"""
    p = Path(path)
    return p.parent.name if p.name == STYLE_FILE else p.stem


def resolve_style_path(path: str | os.PathLike) -> Path:
    """A style file, or a folder that `train --style` wrote (its style.safetensors)."""
    p = Path(path).expanduser()
    return p / STYLE_FILE if p.is_dir() else p


@dataclass(frozen=True, eq=False)  # tensors inside: compared by identity, never elementwise
class Style:
    """A loaded style: the initial state (batch dimension dropped) and what it belongs to."""

    att_x: Tensor  # [L, C]
    wkv: Tensor    # [L, H, N, N]
    ffn_x: Tensor  # [L, C]
    base_fingerprint: str
    base_config: dict
    name: str = ""
    path: Path | None = None
    meta: dict | None = None

    @classmethod
    def from_state(cls, state: RWKVState, model: torch.nn.Module, name: str = "",
                   meta: dict | None = None) -> "Style":
        """Row 0 of ``state`` as the style of ``model``."""
        return cls(state.att_x[:, 0].detach().float().cpu().clone(), state.wkv[:, 0].detach().float().cpu().clone(),
                   state.ffn_x[:, 0].detach().float().cpu().clone(), model_fingerprint(model),
                   model.cfg.to_dict(), name, None, meta)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the state's fp32 values: the same start, whichever file or
        blend it came from (computed once per loaded style)."""
        h = hashlib.sha256()
        for name in TENSOR_NAMES:
            h.update(getattr(self, name).detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()

    @property
    def n_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.att_x, self.wkv, self.ffn_x))

    def check_model(self, model: torch.nn.Module | None, fingerprint: str | None = None) -> None:
        """Refuse (one line) a model other than the one this style was learned for.

        ``fingerprint``: the model's, when the caller already has it (it costs
        a pass over the weights).
        """
        where = self.path or Path(self.name or "style")
        if fingerprint is None:
            if model is None:
                raise ValueError("check_model needs the model or its fingerprint")
            fingerprint = model_fingerprint(model)
        if fingerprint != self.base_fingerprint:
            raise StyleError(where, f"this style was learned for another model (base {self.base_fingerprint[:12]}, "
                                    f"this model {fingerprint[:12]}); learn it again with this model as --base")

    def initial_state(self, batch: int = 1, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> RWKVState:
        """A fresh state to start from (a copy: stepping it never changes the style)."""
        def rows(t: Tensor, dt: torch.dtype) -> Tensor:
            return t.to(device=device, dtype=dt).unsqueeze(1).repeat(1, batch, *([1] * (t.dim() - 1)))

        wkv_dt = torch.float64 if dtype == torch.float64 else torch.float32
        return RWKVState(rows(self.att_x, dtype), rows(self.wkv, wkv_dt), rows(self.ffn_x, dtype))

    def blend(self, other: "Style", t: float) -> "Style":
        """(1 - t) x this + t x other, for two styles of the same base (a slider between them)."""
        if other.base_fingerprint != self.base_fingerprint:
            raise StyleError(other.path or Path(other.name or "style"),
                             "cannot blend styles learned for different models")
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"blend amount {t} is outside 0..1")
        mix = lambda a, b: torch.lerp(a, b, float(t))  # noqa: E731
        return Style(mix(self.att_x, other.att_x), mix(self.wkv, other.wkv), mix(self.ffn_x, other.ffn_x),
                     self.base_fingerprint, self.base_config,
                     f"{self.name} {1 - t:.0%} + {other.name} {t:.0%}", None, None)


# -- saving ----------------------------------------------------------------------
def save_style(path: str | os.PathLike, style: Style, *, data: dict | None = None,
               metrics: dict | None = None) -> Path:
    """Write the state to ``path`` and the sidecar beside it (both atomic; the
    sidecar carries the tensors' SHA-256, so a pair cut between its two
    renames is refused on load rather than mixed). Returns the sidecar path."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: a style file must end in .safetensors")
    tensors = {name: getattr(style, name).detach().to("cpu", torch.float32).contiguous() for name in TENSOR_NAMES}
    blob = save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    side = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": style.name or style_display_name(path),
        "base": {"fingerprint": style.base_fingerprint, "config": style.base_config},
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "data": data,
        "metrics": metrics,
    }
    side_path = path.with_suffix(".json")
    atomic_write_bytes(side_path, (json.dumps(side, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
    atomic_write_bytes(path, blob)
    return side_path


# -- loading ---------------------------------------------------------------------
def _read(path: Path, limit: int, what: str) -> bytes:
    return read_file_or_say(path, limit, what, StyleError)


def read_style_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The checked sidecar of style file ``path`` (cheap: no tensors read)."""
    side_path = resolve_style_path(path).with_suffix(".json")
    raw = _read(side_path, MAX_SIDECAR_BYTES, "style sidecar")
    try:
        side = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise StyleError(side_path, f"unreadable style sidecar ({e})") from None
    if not isinstance(side, dict) or side.get("format") != FORMAT:
        raise StyleError(side_path, "not a Composer Copilot style (a model file? open it from the Model menu)")
    version = side.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise StyleError(side_path, f"unsupported format_version {version!r:.40} (this build reads <= {FORMAT_VERSION})")
    base = side.get("base")
    if (not isinstance(base, dict) or not isinstance(base.get("fingerprint"), str)
            or not isinstance(side.get("tensors_sha256"), str)):
        raise StyleError(side_path, "sidecar lacks base.fingerprint or tensors_sha256")
    try:
        check_config(base.get("config"), side_path)
    except CheckpointError as e:
        raise StyleError(side_path, f"base config: {e.reason}") from None
    return side


def load_style(path: str | os.PathLike) -> Style:
    """A style file (or a folder holding style.safetensors), fully checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = resolve_style_path(path)
    side = read_style_sidecar(path)
    blob = _read(path, MAX_STYLE_BYTES, "style file")
    if hashlib.sha256(blob).hexdigest() != side["tensors_sha256"]:
        raise StyleError(path, "does not match its sidecar's SHA-256 (truncated, corrupt, or from another save)")
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise StyleError(path, f"corrupt safetensors file ({e})") from None
    cfg = check_config(side["base"]["config"], path.with_suffix(".json"))
    L, C, H, N = cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size
    shapes = {"att_x": (L, C), "wkv": (L, H, N, N), "ffn_x": (L, C)}
    if set(tensors) != set(shapes):
        raise StyleError(path, f"holds {sorted(tensors)}, a style holds {list(TENSOR_NAMES)}")
    for name, shape in shapes.items():
        t = tensors[name]
        if tuple(t.shape) != shape or not t.is_floating_point():
            raise StyleError(path, f"{name} is {t.dtype} {tuple(t.shape)}, the base config needs float {shape}")
        if not bool(torch.isfinite(t).all()):
            raise StyleError(path, f"{name} holds NaN or infinite values (a diverged or damaged style)")
    return Style(tensors["att_x"].float(), tensors["wkv"].float(), tensors["ffn_x"].float(),
                 side["base"]["fingerprint"], side["base"]["config"], style_display_name(path), path, side)


def load_style_for(path: str | os.PathLike, model: torch.nn.Module, fingerprint: str | None = None) -> Style:
    """``load_style`` and refuse it (one line) unless it was learned for ``model``."""
    style = load_style(path)
    style.check_model(model, fingerprint)
    return style
