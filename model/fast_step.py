"""Native fused recurrent step (model/fast_step.cpp) via ctypes.

Built lazily on first use - never at import - with the system C++ compiler
(``$CXX`` or ``c++``), ~2 s, and cached under
``$XDG_CACHE_HOME/composer-copilot/native/`` (default ``~/.cache/...``) by a
hash of the source, flags and compiler, so later processes just load it.
Any failure (no compiler, build error, load error) logs one line and the
caller falls back to the pure-PyTorch step. ``COPILOT_NATIVE_STEP=0``
disables it. Only CPU + fp32 models are served.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .build_once import BuildOnce, Disabled
from .paths import user_cache_dir

if TYPE_CHECKING:
    from .rwkv7 import RWKV7
    from .state import RWKVState

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fast_step.cpp")
CXXFLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-shared", "-fPIC", "-std=c++17"]
# Order of the per-layer pointers; must match `enum Slot` in fast_step.cpp.
LAYER_SLOTS = (
    "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias",
    "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g",
    "att.w0", "att.w1", "att.w2", "att.a0", "att.a1", "att.a2", "att.v0", "att.v1", "att.v2", "att.g1", "att.g2",
    "att.k_k", "att.k_a", "att.r_k",
    "att.receptance.weight", "att.key.weight", "att.value.weight", "att.output.weight",
    "att.ln_x.weight", "att.ln_x.bias",
    "ffn.x_k", "ffn.key.weight", "ffn.value.weight",
)  # fmt: skip
GLOBAL_SLOTS = ("emb.weight", "blocks.0.ln0.weight", "blocks.0.ln0.bias", "ln_out.weight", "ln_out.bias", "head.weight")
# The matrices that hold ~all the bytes a step reads. The runner keeps packed
# copies (blocks of PACK outputs, each [in, PACK]: see gemm_rows in the C++),
# in bf16 for the "bf16" precision (the C side reads those as raw uint16).
BIG_MATRICES = ("att.receptance.weight", "att.key.weight", "att.value.weight", "att.output.weight",
                "ffn.key.weight", "ffn.value.weight", "head.weight")  # fmt: skip
PRECISIONS = ("fp32", "bf16")
PACK = 64  # OB in fast_step.cpp


def pack_linear(w: Tensor, dtype: torch.dtype) -> Tensor:
    """nn.Linear weight [O, I] -> [ceil(O / PACK), I, PACK], zero-padded outputs."""
    out_f, in_f = w.shape
    pad = -out_f % PACK
    wt = torch.nn.functional.pad(w.detach(), (0, 0, 0, pad))  # [O + pad, I]
    return wt.view(-1, PACK, in_f).transpose(1, 2).to(dtype).contiguous()



def cache_dir() -> Path:
    """User cache dir for the built library; a private temp dir if the home
    cache is not writable (read-only homes on CI runners)."""
    d = user_cache_dir("native")
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"composer-copilot-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "native"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX") or "c++"
    return shutil.which(cxx)


def library_path() -> Path | None:
    """Where the built library for this source/compiler/machine lives."""
    cxx = _compiler()
    if cxx is None:
        return None
    h = hashlib.sha256()
    h.update(SOURCE.read_bytes())
    h.update(" ".join(CXXFLAGS).encode())
    h.update(cxx.encode())
    h.update(platform.machine().encode())
    h.update(platform.node().encode())  # -march=native: never share across hosts
    return cache_dir() / f"rwkv7_step_{h.hexdigest()[:16]}.so"


def _build() -> ctypes.CDLL:
    cxx = _compiler()
    lib_path = library_path()
    if cxx is None or lib_path is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    if not lib_path.exists():
        lib_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=lib_path.parent, suffix=".so.tmp")
        os.close(fd)
        try:
            proc = subprocess.run(
                [cxx, *CXXFLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300
            )
            if proc.returncode != 0:
                first = (proc.stderr.strip().splitlines() or ["?"])[0]
                raise RuntimeError(f"compile failed: {first}")
            os.replace(tmp, lib_path)  # atomic: concurrent builders are harmless
        finally:
            Path(tmp).unlink(missing_ok=True)
    lib = ctypes.CDLL(str(lib_path))
    fn = lib.rwkv7_step
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p] * 5
    return lib


def _build_unless_disabled() -> ctypes.CDLL:
    if os.environ.get("COPILOT_NATIVE_STEP", "1") == "0":
        raise Disabled("disabled by COPILOT_NATIVE_STEP=0")
    return _build()


_library = BuildOnce(_build_unless_disabled, log, "native RWKV step unavailable, using PyTorch")


def load_library() -> ctypes.CDLL | None:
    """The native library, building it if needed; None if unavailable."""
    return _library.get()


class _Runner:
    """Pointer table for one model's parameters: their own storage, except
    packed (and for bf16, converted) copies of BIG_MATRICES, refreshed
    when a source parameter changes (its autograd version counter moves)."""

    def __init__(self, model: "RWKV7", precision: str) -> None:
        cfg = model.cfg
        if cfg.head_size > 256:
            raise ValueError("native step supports head_size <= 256")
        if precision not in PRECISIONS:
            raise ValueError(f"native precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.keep: list[Tensor] = []
        self.sources: list[Tensor] = []
        params = dict(model.named_parameters())
        ptrs: list[int] = []
        for i in range(cfg.n_layer):
            for slot in LAYER_SLOTS:
                t = params.get(f"blocks.{i}.{slot}")
                ptrs.append(0 if t is None else self._ptr(t, slot in BIG_MATRICES))  # layer 0: no v0/v1/v2
        ptrs += [self._ptr(params[name], name in BIG_MATRICES) for name in GLOBAL_SLOTS]
        self.ptrs = (ctypes.c_void_p * len(ptrs))(*ptrs)
        d = cfg.lora_dims
        dims = [cfg.n_embd, cfg.n_head, cfg.head_size, cfg.ffn_dim, cfg.vocab_size, cfg.n_layer,
                d["w"], d["a"], d["v"], d["g"], int(precision == "bf16")]  # fmt: skip
        self.dims = (ctypes.c_int64 * len(dims))(*dims)
        self.key = self.current_key(model, precision)

    def current_key(self, model: "RWKV7", precision: str) -> tuple:
        ptrs = (model.head.weight.data_ptr(), model.emb.weight.data_ptr())
        return (precision, ptrs, tuple(t._version for t in self.sources))

    def _ptr(self, t: Tensor, big: bool) -> int:
        if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError("native step needs contiguous fp32 CPU parameters")
        if big:
            self.sources.append(t)
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
            t = pack_linear(t, dtype)
        self.keep.append(t)
        return t.data_ptr()


def native_step(
    model: "RWKV7", tokens: Tensor, state: "RWKVState", *, inplace: bool, required: bool
) -> tuple[Tensor, "RWKVState"] | None:
    """Run the fused step, or return None (caller uses PyTorch) if it cannot
    serve this model/state; with ``required`` raise instead of returning None."""
    reason = None
    if model.device.type != "cpu" or model.dtype != torch.float32:
        reason = "native step serves CPU fp32 models only"
    elif state.att_x.device.type != "cpu" or state.att_x.dtype != torch.float32 or state.wkv.dtype != torch.float32:
        reason = "native step needs a CPU fp32 state"
    elif load_library() is None:
        reason = f"native step unavailable: {_library.failure}"
    if reason is not None:
        if required:
            raise RuntimeError(reason)
        return None
    precision = model.native_precision
    runner = model._fast
    if runner is None or runner.key != runner.current_key(model, precision):
        runner = model._fast = _Runner(model, precision)
    out_state = state if inplace else state.clone()
    parts = [out_state.att_x, out_state.wkv, out_state.ffn_x]
    work = [p if p.is_contiguous() else p.contiguous() for p in parts]
    tok = tokens.to(device="cpu", dtype=torch.int64).contiguous()
    B = tok.shape[0]
    if work[0].shape[1] != B:
        raise ValueError(f"state batch {work[0].shape[1]} != tokens batch {B}")
    logits = torch.empty(B, model.cfg.vocab_size, dtype=torch.float32)
    lib = _library.value
    assert lib is not None
    rc = lib.rwkv7_step(
        runner.ptrs, runner.dims, B, tok.data_ptr(), work[0].data_ptr(), work[1].data_ptr(), work[2].data_ptr(), logits.data_ptr()
    )
    if rc == -1:
        raise IndexError(f"token id out of range [0, {model.cfg.vocab_size})")
    if rc != 0:
        raise MemoryError("native step could not allocate its scratch buffer")
    for p, w in zip(parts, work):
        if p is not w:
            p.copy_(w)
    return logits, out_state
