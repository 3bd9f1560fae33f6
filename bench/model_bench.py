"""Benchmark of the RWKV-7 model package (not a test).

    python bench/model_bench.py            # table + bench/results/model_bench.json
    python bench/model_bench.py --json     # JSON on stdout
    python bench/model_bench.py --quick    # shorter runs (smoke test)

Measures, for the default model size (RWKVConfig() with --vocab):
  1. one-token step latency, batch 1 and 4, one CPU thread: native fused step
     (fp32 and bf16 weights), eager PyTorch step, and BlinkDL's `rwkv` package
     on the same weights (its RNN mode has no batch dimension: its batch 4 is
     measured as four calls on four states, round robin);
  2. prefill throughput for 256 and 2048 tokens (one thread);
  3. training throughput (fwd+bwd, tokens/s) at B=8, T=512: reference loop vs
     chunked WKV, whole model and operator alone; chunked vs cuda on a GPU;
  4. activation memory of one training step on a 4-bar-context/2-bar-
     completion window with and without physical slicing of the LM head.
Timings are medians of repeats; ratios compare figures from this same run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._rwkv_peer import load_peers, peer_step_ms  # noqa: E402  (first: it sets the package's env)
from bench._report import utc_stamp  # noqa: E402
from bench._timing import median_time  # noqa: E402

from model import RWKV7, RWKVConfig  # noqa: E402
from model.wkv import wkv_chunked, wkv_reference  # noqa: E402
from trainer.cpu_memory import keep_freed_memory  # noqa: E402


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, logits [..., V], targets [...]."""
    return torch.nn.functional.cross_entropy(logits.flatten(0, -2).float(), targets.flatten())


def sgemm_peak_gmacs() -> float:
    """This thread's matmul ceiling: a 1024^3 fp32 matmul through torch/MKL."""
    a = torch.randn(1024, 1024)
    return 1024**3 / median_time(lambda: a @ a, 5) / 1e9


def matmul_macs_per_token(m: RWKV7) -> int:
    """Multiply-adds of one token through every weight matrix (the embedding
    is a lookup): what batch rows cannot share, only re-read."""
    return sum(p.numel() for n, p in m.named_parameters() if p.dim() == 2 and not n.startswith("emb"))


def perturbed_model(cfg: RWKVConfig, seed: int = 0) -> RWKV7:
    # Random non-zero weights everywhere (the init zeroes output projections,
    # which would make some matmuls trivially cheap for nobody, but keeps
    # the comparison honest about real values).
    torch.manual_seed(seed)
    m = RWKV7(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return m.eval()


# ----------------------------------------------------------------- 1. step
def bench_step(m: RWKV7, quick: bool) -> dict:
    torch.set_num_threads(1)
    out: dict = {}
    n_inner = 50 if quick else 200
    reps = 5 if quick else 9
    for B in (1, 4):
        tok = torch.zeros(B, dtype=torch.long)
        row = {}
        for label, impl, prec in (("native_fp32", "native", "fp32"), ("native_bf16", "native", "bf16"), ("torch", "torch", "fp32")):
            m.native_precision = prec
            st = m.init_state(B)
            inner = n_inner if impl == "native" else max(10, n_inner // 10)
            row[label] = median_time(lambda: m.step(tok, st, impl=impl, inplace=True), reps, inner, warmup=5) * 1e3
        m.native_precision = "fp32"
        out[f"B{B}"] = row
    # Roofline for batch 4: its matmuls alone, at this thread's sgemm peak.
    peak = sgemm_peak_gmacs()
    macs = matmul_macs_per_token(m)
    out["roofline"] = {"sgemm_peak_gmacs": peak, "macs_per_token": macs,
                       "B4_matmul_floor_ms": 4 * macs / peak / 1e6}
    return out


def bench_peer(m: RWKV7, quick: bool) -> dict:
    """BlinkDL's rwkv package on our exported weights: cpu fp32 and cpu bf16."""
    torch.set_num_threads(1)
    try:
        peers = load_peers(m, ("cpu fp32", "cpu bf16"))
    except ImportError as e:  # the package is a test/dev dependency
        return {"error": f"rwkv package unavailable: {e}"}
    reps, inner = (5, 10) if quick else (9, 50)
    res: dict = {}
    for strategy, peer in peers.items():
        if isinstance(peer, str):
            res[strategy] = {"error": peer}
            continue
        res[strategy] = {"B1": peer_step_ms(peer, 1, reps, inner),
                         "B4_four_calls": peer_step_ms(peer, 4, reps, max(1, inner // 4), warmup=2)}
    return res


# -------------------------------------------------------------- 2. prefill
def bench_prefill(m: RWKV7, quick: bool) -> dict:
    torch.set_num_threads(1)
    res = {}
    for T in (256, 2048):
        tok = torch.zeros(1, T, dtype=torch.long)
        s = median_time(lambda: m.prefill(tok), 3 if quick else 5)
        res[f"T{T}"] = {"seconds": s, "tokens_per_s": T / s}
    return res


# ------------------------------------------------------------- 3. training
def bench_training(cfg: RWKVConfig, quick: bool, device: str = "cpu", ops: tuple[str, ...] = ("reference", "chunked")) -> dict:
    B, T = (8, 128) if quick else (8, 512)
    if device == "cpu":
        keep_freed_memory()  # as `main.py train` does on CPU (trainer/cpu_memory.py)
    m = perturbed_model(cfg).to(device).train()
    tok = torch.randint(0, cfg.vocab_size, (B, T + 1), device=device)
    res: dict = {"B": B, "T": T, "threads": torch.get_num_threads(), "device": device}

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for op in ops:
        m.cfg.wkv = op

        def step() -> None:
            loss = token_loss(m(tok[:, :-1]), tok[:, 1:])
            loss.backward()
            m.zero_grad(set_to_none=True)
            sync()

        reps = 1 if op == "reference" else (2 if quick else 3)
        s = median_time(step, reps, warmup=0 if op == "reference" and device == "cpu" else 1)
        res[f"model_{op}"] = {"seconds": s, "tokens_per_s": B * T / s}
    m.cfg.wkv = "auto"

    # The WKV operator alone, forward + backward.
    H, N = cfg.n_head, cfg.head_size
    g = torch.Generator(device=device).manual_seed(0)
    xs = [torch.randn(B, T, H, N, device=device, generator=g) for _ in range(6)]
    xs[1] = -math.exp(-0.5) * torch.sigmoid(xs[1])
    kk = torch.nn.functional.normalize(xs[4], dim=-1)
    xs[4], xs[5] = -kk, kk * torch.sigmoid(xs[5])
    xs = [x.requires_grad_(True) for x in xs]
    fns = {"reference": wkv_reference, "chunked": wkv_chunked}
    if "cuda" in ops:
        from model.wkv.cuda import wkv_cuda

        fns["cuda"] = wkv_cuda
    for op in ops:
        fn = fns[op]

        def op_step() -> None:
            y, s = fn(*xs)
            (y.sum() + s.sum()).backward()
            sync()

        reps = 3 if op == "reference" else 7
        s = median_time(op_step, reps, warmup=0 if op == "reference" and device == "cpu" else 1)
        res[f"op_{op}"] = {"seconds": s, "tokens_per_s": B * T / s}
    if "reference" in ops:
        res["speedup_model"] = res["model_reference"]["seconds"] / res["model_chunked"]["seconds"]
        res["speedup_op"] = res["op_reference"]["seconds"] / res["op_chunked"]["seconds"]
    if device == "cpu":
        # The whole-model ratio is capped by the matmuls both variants share:
        # fwd + bwd = 3 multiply-adds per weight per token, at sgemm peak.
        floor = 3 * B * T * matmul_macs_per_token(m) / (sgemm_peak_gmacs() * 1e9)
        res["matmul_floor_s"] = floor
        if "reference" in ops:
            wkv_s = cfg.n_layer * res["op_chunked"]["seconds"]
            res["speedup_model_ceiling"] = res["model_reference"]["seconds"] / (floor + wkv_s)
    return res


# --------------------------------------------------------------- 4. memory
def _saved_bytes(fn: Callable[[], torch.Tensor]) -> tuple[int, int]:
    """(bytes of distinct storages saved for backward, bytes of the output)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out.numel() * out.element_size()


def _memory_window(cfg: RWKVConfig, tokens_per_bar: int, device: str):
    ctx_bars, gen_bars, B = 4, 2, 8
    T = (ctx_bars + gen_bars) * tokens_per_bar
    n_target = gen_bars * tokens_per_bar
    m = perturbed_model(cfg).to(device).train()
    tok = torch.randint(0, cfg.vocab_size, (B, T + 1), device=device)
    idx = torch.arange(T - n_target, T, device=device)
    return m, tok, idx


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_child(cfg: RWKVConfig, tokens_per_bar: int, mode: str) -> dict:
    """Run in a fresh process: peak RSS growth of one training step (fwd+bwd)
    above the RSS after building model and data - the CPU 'peak memory'.
    Uses /proc (VmHWM reset via clear_refs): ru_maxrss would inherit the
    parent's high-water mark across fork+exec."""
    torch.set_num_threads(1)
    m, tok, idx = _memory_window(cfg, tokens_per_bar, "cpu")
    index = None if mode == "full" else idx
    targets = tok[:, 1:] if index is None else tok[:, 1:][:, index]
    with torch.no_grad():  # warm the allocator and op caches without keeping activations
        m(tok[:, :8])
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter
    base = _status_kib("VmRSS")
    token_loss(m(tok[:, :-1], target_index=index), targets).backward()
    peak = _status_kib("VmHWM")
    return {"peak_rss_growth_bytes": (peak - base) * 1024}


def _peak_rss(cfg: RWKVConfig, tokens_per_bar: int, mode: str) -> int | None:
    import subprocess

    cmd = [sys.executable, __file__, "--peak-rss-child", mode, "--tokens-per-bar", str(tokens_per_bar),
           "--config-json", json.dumps(cfg.to_dict())]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
        return int(json.loads(out.strip().splitlines()[-1])["peak_rss_growth_bytes"])
    except Exception:
        return None


def bench_memory(cfg: RWKVConfig, tokens_per_bar: int, device: str = "cpu") -> dict:
    m, tok, idx = _memory_window(cfg, tokens_per_bar, device)
    B, T = tok.shape[0], tok.shape[1] - 1
    n_target = idx.numel()
    res: dict = {"B": B, "T": T, "context_tokens": T - n_target, "target_tokens": n_target, "device": device}
    x_hidden, _ = m._hidden(tok[:, :-1], None)
    h = x_hidden.detach().requires_grad_(True)
    for label, index in (("full", None), ("sliced", idx)):
        targets = tok[:, 1:] if index is None else tok[:, 1:][:, index]

        def head_only() -> torch.Tensor:
            x = h if index is None else h[:, index]
            logits = m.head(m.ln_out(x))
            token_loss(logits, targets)
            return logits

        def whole() -> torch.Tensor:
            logits = m(tok[:, :-1], target_index=index)
            token_loss(logits, targets)
            return logits

        head_saved, logits_bytes = _saved_bytes(head_only)
        total_saved, _ = _saved_bytes(whole)
        row = {"lm_head_bytes": head_saved + logits_bytes, "step_activation_bytes": total_saved + logits_bytes}
        if device == "cpu":
            row["peak_rss_growth_bytes"] = _peak_rss(cfg, tokens_per_bar, label)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            token_loss(m(tok[:, :-1], target_index=index), targets).backward()
            torch.cuda.synchronize()
            row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated() - base
            m.zero_grad(set_to_none=True)
        res[label] = row
    res["lm_head_ratio"] = res["sliced"]["lm_head_bytes"] / res["full"]["lm_head_bytes"]
    res["target_share"] = n_target / T
    return res


# ------------------------------------------------------------------ report
def fmt_table(r: dict) -> str:
    lines = []
    c = r["config"]
    lines.append(f"model: L{c['n_layer']} C{c['n_embd']} V{c['vocab_size']} = {r['n_params'] / 1e6:.2f}M params; {r['machine']}")
    la0, la1 = r.get("load_avg_start", [0.0])[0], r.get("load_avg_end", [0.0])[0]
    lines.append(f"load average (1 min) at start/end: {la0:.2f} / {la1:.2f} (other work on the machine skews timings)")
    lines.append("")
    lines.append("1. one-token step latency, 1 CPU thread (ms/step)")
    lines.append(f"   {'impl':<26}{'B=1':>9}{'B=4':>9}{'B4/B1':>8}")
    for label in ("native_fp32", "native_bf16", "torch"):
        b1, b4 = r["step"]["B1"][label], r["step"]["B4"][label]
        lines.append(f"   {'ours ' + label:<26}{b1:>9.3f}{b4:>9.3f}{b4 / b1:>8.2f}")
    for strategy, row in r.get("peer", {}).items():
        if isinstance(row, dict) and "B1" in row:
            lines.append(f"   {'rwkv pkg ' + strategy + ' (B=4: 4 calls)':<26}{row['B1']:>9.3f}{row['B4_four_calls']:>9.3f}"
                         f"{row['B4_four_calls'] / row['B1']:>8.2f}")
    roof = r["step"].get("roofline")
    if roof:
        b1 = r["step"]["B1"]["native_fp32"]
        lines.append(f"   B=4 roofline: {roof['macs_per_token'] / 1e6:.2f}M multiply-adds/token x 4 at this thread's "
                     f"sgemm peak {roof['sgemm_peak_gmacs']:.1f} GMAC/s = {roof['B4_matmul_floor_ms']:.3f} ms "
                     f"= {roof['B4_matmul_floor_ms'] / b1:.2f}x B=1 fp32 for the matmuls alone")
    if "cpu fp32" in r.get("peer", {}) and "B1" in r["peer"]["cpu fp32"]:
        lines.append(f"   speed-up vs rwkv pkg fp32, B=1: {r['peer']['cpu fp32']['B1'] / r['step']['B1']['native_fp32']:.1f}x (fp32)")
    if "cpu bf16" in r.get("peer", {}) and "B1" in r["peer"]["cpu bf16"]:
        lines.append(f"   speed-up vs rwkv pkg bf16, B=1: {r['peer']['cpu bf16']['B1'] / r['step']['B1']['native_bf16']:.1f}x (bf16)")
    lines.append("")
    lines.append("2. prefill (parallel mode, chunked WKV, 1 thread)")
    for k, v in r["prefill"].items():
        lines.append(f"   {k:<8}{v['tokens_per_s']:>12.0f} tokens/s  ({v['seconds'] * 1e3:.0f} ms)")
    lines.append("")
    for key in ("training_cpu", "training_gpu"):
        t = r.get(key)
        if not t:
            continue
        lines.append(f"3. training fwd+bwd, B={t['B']} T={t['T']} on {t['device']} ({t['threads']} threads"
                     f"{', freed memory kept as the trainer does' if t['device'] == 'cpu' else ''})")
        for k, v in t.items():
            if isinstance(v, dict):
                lines.append(f"   {k:<22}{v['tokens_per_s']:>12.0f} tokens/s  ({v['seconds']:.3f} s)")
        if "speedup_model" in t:
            lines.append(f"   chunked / reference: whole model {t['speedup_model']:.1f}x, WKV op {t['speedup_op']:.1f}x")
        if "speedup_model_ceiling" in t:
            lines.append(f"   whole-model ceiling: shared matmuls >= {t['matmul_floor_s']:.2f} s at sgemm peak, so "
                         f"reference / (matmuls + {c['n_layer']} chunked WKV ops) <= {t['speedup_model_ceiling']:.1f}x")
        lines.append("")
    mem = r["memory"]
    lines.append(f"4. activation memory of a training step, B={mem['B']}, window {mem['T']} tokens "
                 f"({mem['context_tokens']} context + {mem['target_tokens']} completion)")
    for label in ("full", "sliced"):
        row = mem[label]
        extra = f", CUDA peak {row['cuda_peak_bytes'] / 2**20:.1f} MiB" if "cuda_peak_bytes" in row else ""
        if row.get("peak_rss_growth_bytes"):
            extra += f", peak RSS growth {row['peak_rss_growth_bytes'] / 2**20:.1f} MiB"
        lines.append(f"   {label:<8} LM head {row['lm_head_bytes'] / 2**20:8.2f} MiB, whole step {row['step_activation_bytes'] / 2**20:8.2f} MiB{extra}")
    lines.append(f"   LM-head memory sliced/full = {mem['lm_head_ratio']:.3f} (completion share of window {mem['target_share']:.3f})")
    if r.get("notes"):
        lines.append("")
        lines.extend(f"note: {n}" for n in r["notes"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model_bench.json")
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--vocab", type=int, default=320, help="vocabulary size (REMI piano: ~200-400)")
    ap.add_argument("--n-layer", type=int, default=None)
    ap.add_argument("--n-embd", type=int, default=None)
    ap.add_argument("--tokens-per-bar", type=int, default=48, help="REMI tokens per bar for the memory window")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--train-threads", type=int, default=1,
                    help="torch threads for the CPU training figures (1: robust on a shared machine)")
    ap.add_argument("--peak-rss-child", choices=("full", "sliced"), help=argparse.SUPPRESS)
    ap.add_argument("--config-json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peak_rss_child:  # internal: one measurement in a fresh process
        print(json.dumps(peak_rss_child(RWKVConfig.from_dict(json.loads(args.config_json)), args.tokens_per_bar, args.peak_rss_child)))
        return 0

    over = {k: v for k, v in (("n_layer", args.n_layer), ("n_embd", args.n_embd)) if v is not None}
    cfg = RWKVConfig(vocab_size=args.vocab, **over)
    m = perturbed_model(cfg)
    r: dict = {
        "config": cfg.to_dict(),
        "n_params": m.num_params(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, torch {torch.__version__}".strip(),
        "quick": args.quick,
        "measured": utc_stamp(),
        "load_avg_start": os.getloadavg(),
        "notes": [],
    }
    r["step"] = bench_step(m, args.quick)
    r["peer"] = bench_peer(m, args.quick)
    r["prefill"] = bench_prefill(m, args.quick)
    if not args.skip_training:
        torch.set_num_threads(args.train_threads)
        r["training_cpu"] = bench_training(RWKVConfig(**cfg.to_dict()), args.quick)
    torch.set_num_threads(1)
    r["memory"] = bench_memory(RWKVConfig(**cfg.to_dict()), args.tokens_per_bar)
    if torch.cuda.is_available():
        r["training_gpu"] = bench_training(RWKVConfig(**cfg.to_dict()), args.quick, "cuda", ("chunked", "cuda"))
        r["memory_gpu"] = bench_memory(RWKVConfig(**cfg.to_dict()), args.tokens_per_bar, "cuda")
    else:
        r["notes"].append("no CUDA device: GPU half (chunked vs cuda) not measured")

    r["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    print(json.dumps(r, indent=2) if args.json else fmt_table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
