"""Checkpoints: safetensors weights + a JSON sidecar. Loading never unpickles.

Naming: ``save_checkpoint("run/model.safetensors", ...)`` writes
``run/model.safetensors`` (weights) and ``run/model.json`` (sidecar, the
weights path with its suffix replaced by ``.json``). Each is written to a
temp file, fsynced and moved into place with ``os.replace``.

The pair is published as one unit: the sidecar goes first, and it carries the
new weights' SHA-256 *and* a copy of the sidecar it replaces (``previous``,
kept only when the weights on disk matched it). A kill between the two
renames leaves the new sidecar beside the old weights; the loader sees the
old weights match ``previous`` and loads them with that sidecar - the last
good checkpoint - instead of refusing ``best``. Any other mismatch (a
truncated file, weights from another run) is refused, naming what is wrong.

Sidecar (format 1)::

    {"format": "composer-copilot-rwkv7", "format_version": 1,
     "config": {...RWKVConfig...}, "weights_sha256": "...",
     "n_params": int, "tokenizer": {...} | null, "data": {...} | null,
     "metrics": {...} | null, "extra": {...} | null,
     "previous": {...the sidecar it replaced, without its own previous} | null}

The sidecar is checked against a schema with bounds (``check_config``)
before anything is allocated, and weights holding NaN or infinities are
refused. Every failure to load - missing, truncated, corrupt, mismatched,
out of bounds, newer format - raises ``CheckpointError`` (a ValueError) with
a one-line message that starts with the offending file's path.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from .atomic_io import ReadRefused, atomic_write_bytes, read_file_or_say, read_regular_file
from .config import RWKVConfig
from .rwkv7 import RWKV7

log = logging.getLogger(__name__)

FORMAT = "composer-copilot-rwkv7"
FORMAT_VERSION = 1

MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # a sidecar is a few KiB; more is not ours
MAX_WEIGHTS_BYTES = 4 * 1024 ** 3  # ~1e9 fp32 parameters: far above any music model here

# Bounds of every config field: (types, min, max, may be None). They are wide
# enough for any model this app could run, and narrow enough that a tampered
# sidecar is refused before it makes us allocate gigabytes.
_INT = (int,)
_NUM = (int, float)
CONFIG_SCHEMA: dict[str, tuple[tuple[type, ...], float, float, bool]] = {
    "vocab_size": (_INT, 1, 65_536, False),
    "n_layer": (_INT, 1, 128, False),
    "n_embd": (_INT, 1, 16_384, False),
    "head_size": (_INT, 1, 16_384, False),
    "ctx_len": (_INT, 1, 1 << 20, False),
    "dropout": (_NUM, 0.0, 0.999, False),
    "dim_ffn": (_INT, 1, 65_536, True),
    "d_decay_lora": (_INT, 1, 4_096, True),
    "d_aaa_lora": (_INT, 1, 4_096, True),
    "d_mv_lora": (_INT, 1, 4_096, True),
    "d_gate_lora": (_INT, 1, 4_096, True),
    "chunk_len": (_INT, 1, 4_096, False),
}
_WKV_OPERATORS = ("auto", "reference", "chunked", "cuda")
_OPTIONAL_DICTS = ("tokenizer", "data", "metrics", "extra")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # keep it one line
        super().__init__(f"{self.path}: {self.reason}")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar that belongs to a weights file."""
    return Path(path).with_suffix(".json")


# -- saving ------------------------------------------------------------------------
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

    The dicts must be JSON-serialisable; they are stored opaquely. The
    sidecar is published before the weights (see the module docstring).
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
        "previous": _sidecar_on_disk(path),
    }
    side_bytes = (json.dumps(side, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    sp = sidecar_path(path)
    atomic_write_bytes(sp, side_bytes)
    atomic_write_bytes(path, blob)
    return sp


def _sidecar_on_disk(path: Path) -> dict | None:
    """The sidecar that truly describes the weights now at ``path`` (or None).

    It becomes the new sidecar's ``previous``: what a loader falls back to if
    the save is cut between its two renames. Only a sidecar whose hash the
    weights on disk match qualifies, so ``previous`` never vouches for
    something it did not describe.
    """
    try:
        old = read_json_file(sidecar_path(path), sidecar_path(path))
        digest = hashlib.sha256(read_regular_file(path, MAX_WEIGHTS_BYTES)).hexdigest()
    except (CheckpointError, OSError):
        return None
    for candidate in (old, old.get("previous") if isinstance(old, dict) else None):
        if isinstance(candidate, dict) and candidate.get("weights_sha256") == digest:
            previous = {k: v for k, v in candidate.items() if k != "previous"}
            try:  # a hand-edited NaN must not make the new save fail
                json.dumps(previous, allow_nan=False)
            except ValueError:
                return None
            return previous
    return None


# -- reading and checking the sidecar ------------------------------------------------
def read_json_file(path: Path, name: Path) -> Any:
    """Parsed JSON of a bounded regular file; ``CheckpointError`` naming ``name``."""
    try:
        raw = read_regular_file(path, MAX_SIDECAR_BYTES)
    except FileNotFoundError:
        raise CheckpointError(name, "sidecar file not found") from None
    except ReadRefused as e:
        raise CheckpointError(name, f"unreadable sidecar ({e.reason})") from None
    except OSError as e:
        raise CheckpointError(name, f"unreadable sidecar ({e.strerror or e})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:  # json recurses per nesting level: a hostile file
        raise CheckpointError(name, "unreadable sidecar (JSON nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(name, f"unreadable sidecar ({e})") from None


def check_config(config: Any, where: str | os.PathLike) -> RWKVConfig:
    """An ``RWKVConfig`` from a sidecar's config, every field type- and bound-checked."""
    if not isinstance(config, dict):
        raise CheckpointError(where, "config is not an object")
    for key, value in config.items():
        if key == "wkv":
            if value not in _WKV_OPERATORS:
                raise CheckpointError(
                    where, f"config.wkv must be one of {', '.join(_WKV_OPERATORS)}, not {value!r:.40}")
            continue
        if key not in CONFIG_SCHEMA:
            raise CheckpointError(where, f"unknown config field {key!r:.40} (a newer format?)")
        check_field(key, value, CONFIG_SCHEMA[key], where)
    try:
        return RWKVConfig.from_dict(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(where, f"invalid model config ({e})") from None


def check_field(key: str, value: Any, rule: tuple[tuple[type, ...], float, float, bool],
                where: str | os.PathLike) -> None:
    """``value`` of config field ``key`` against ``rule`` (types, min, max, may be None)."""
    types, low, high, nullable = rule
    if value is None and nullable:
        return
    # bool is an int to Python, never to a config; NaN fails every comparison.
    ok_type = isinstance(value, types) and not isinstance(value, bool)
    if not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        want = "an integer" if types == _INT else "a number"
        raise CheckpointError(where, f"config.{key} must be {want}{' or null' if nullable else ''}, not {value!r:.40}")
    if not low <= value <= high:
        raise CheckpointError(where, f"config.{key}={value!r:.40} is outside {low:g}..{high:g}")


def check_sidecar(side: Any, where: str | os.PathLike) -> dict[str, Any]:
    """``side`` if it is a sidecar this build can use; ``CheckpointError`` naming the field."""
    if not isinstance(side, dict) or side.get("format") != FORMAT:
        raise CheckpointError(where, "not a Composer Copilot model sidecar")
    version = side.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(where, f"unsupported format_version {version!r:.40} (this build reads <= {FORMAT_VERSION})")
    if not isinstance(side.get("config"), dict) or not isinstance(side.get("weights_sha256"), str):
        raise CheckpointError(where, "sidecar lacks config or weights_sha256")
    check_config(side["config"], where)
    for key in _OPTIONAL_DICTS:
        if side.get(key) is not None and not isinstance(side[key], dict):
            raise CheckpointError(where, f"{key} must be an object or null")
    if side.get("previous") is not None and not isinstance(side["previous"], dict):
        raise CheckpointError(where, "previous must be an object or null")
    n_params = side.get("n_params")
    if n_params is not None and (not isinstance(n_params, int) or isinstance(n_params, bool) or n_params < 0):
        raise CheckpointError(where, f"n_params must be a count, not {n_params!r:.40}")
    for key in ("dtype", "weights_file"):
        if side.get(key) is not None and not isinstance(side[key], str):
            raise CheckpointError(where, f"{key} must be a string or null")
    return side


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The validated sidecar of weights file ``path`` (no weights read)."""
    sp = sidecar_path(path)
    return check_sidecar(read_json_file(sp, sp), sp)


# -- loading -------------------------------------------------------------------------
def _read_weights(path: Path) -> bytes:
    return read_file_or_say(path, MAX_WEIGHTS_BYTES, "weights", CheckpointError,
                            missing=f"weights file not found (sidecar: {sidecar_path(path)})")


def _matching_sidecar(path: Path, side: dict[str, Any], blob: bytes) -> dict[str, Any]:
    """The sidecar that describes ``blob``: ``side``, or - after a save cut
    between its renames - the ``previous`` one it carries."""
    sp = sidecar_path(path)
    digest = hashlib.sha256(blob).hexdigest()
    if digest == side["weights_sha256"]:
        return side
    previous = side.get("previous")
    if isinstance(previous, dict) and previous.get("weights_sha256") == digest:
        side = check_sidecar(previous, f"{sp} (previous)")
        log.warning("%s: a save was interrupted before its weights were written; "
                    "loading the previous checkpoint", path)
        return side
    raise CheckpointError(path, "weights do not match the sidecar's SHA-256 (truncated, corrupt, "
                                "from another save, or a save cut off between its two files)")


def _parse_tensors(path: Path, blob: bytes) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(blob)  # safetensors: a JSON header + raw bytes, no pickle
    except (SafetensorError, ValueError, RuntimeError, OverflowError, RecursionError) as e:
        raise CheckpointError(path, f"corrupt safetensors file ({e})") from None


def _check_tensors(path: Path, cfg: RWKVConfig, tensors: dict[str, torch.Tensor]) -> None:
    """Names, shapes, dtypes and finiteness, against a model built on the meta
    device - shapes without memory - so nothing is allocated for a mismatch."""
    with torch.device("meta"):
        expected = RWKV7(cfg).state_dict()
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
        if not bool(torch.isfinite(t).all()):
            # NaN weights would only show later as a baffling grammar error.
            raise CheckpointError(path, f"{name} holds NaN or infinite values (a diverged or damaged model)")


def load_checkpoint(path: str | os.PathLike, device: torch.device | str | None = None) -> tuple[RWKV7, dict]:
    """Load ``path`` + its sidecar -> (model in eval mode, sidecar dict).

    Raises CheckpointError for any missing, truncated, corrupt, out-of-bounds
    or mismatched file.
    """
    path = Path(path)
    if not sidecar_path(path).exists() and not path.exists():
        raise CheckpointError(sidecar_path(path), f"sidecar file not found (nor the weights {path.name})")
    side = read_sidecar(path)  # schema and bounds first: a bad sidecar costs no weights read
    blob = _read_weights(path)
    side = _matching_sidecar(path, side, blob)
    cfg = check_config(side["config"], sidecar_path(path))
    tensors = _parse_tensors(path, blob)
    del blob
    _check_tensors(path, cfg, tensors)
    model = RWKV7(cfg)
    dtype = next(iter(tensors.values())).dtype
    model.to(dtype=dtype)
    model.load_state_dict(tensors, strict=True)
    if device is not None:
        model.to(device)
    return model.eval(), side
