"""Trained RWKV-7, LSTM and Transformer checkpoints side by side (not a test).

For runs made with the real trainer on the same data and token budget, e.g.

    python -m trainer train --data CORPUS --out runs/rwkv --arch rwkv --n-layer 6 --n-embd 192 \\
        --ctx-len 512 --batch-size 8 --steps 500 --lr 2e-3 --threads 1
    (the same with --arch lstm --n-layer 3 --n-embd 352, --arch transformer --n-layer 7 --n-embd 192)

    python bench/backbone_eval.py rwkv=runs/rwkv/best.safetensors \\
        lstm=runs/lstm/best.safetensors transformer=runs/transformer/best.safetensors --data CORPUS

prints per source the val NLL and the musical metrics of 2-bar continuations
of held-out 4-bar contexts against the true 2 bars (trainer.evaluate: every
backbone sampled by the app's own generator, grammar and stop rule),
and the one-token step latency after 64 and 2048 tokens of context, and
writes bench/results/backbone_eval.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.backbones import step_latency_ms  # noqa: E402
from bench._report import corpus_dirs, utc_stamp, write_and_print  # noqa: E402
from trainer.evaluate import evaluate_model  # noqa: E402
from trainer.models import arch_of, load_any  # noqa: E402


def run_summary(ckpt: Path) -> dict:
    """What the trainer wrote next to the checkpoint (steps, tokens, wall time)."""
    path = ckpt.parent / "train_summary.json"
    if not path.exists():
        return {}
    s = json.loads(path.read_text())
    return {"steps": s.get("steps"), "train_wall_s": s.get("train_wall_s"),
            "best_val_nll_windows": s.get("best_val_nll"), "data": s.get("data")}


def evaluate(name: str, ckpt: Path, data: list[str], samples: int, max_pieces: int, seed: int) -> dict:
    t0 = time.monotonic()
    res = evaluate_model(str(ckpt), data, torch.device("cpu"), samples=samples, seed=seed, max_pieces=max_pieces)
    model, _ = load_any(ckpt, "cpu")
    arch = arch_of(model)
    lat = {c: step_latency_ms(model.float().eval(), arch, c) for c in (64, 2048)}
    sources = {name: {k: src[k] for k in ("val_nll", "bits_per_note", "val_pieces", "val_tokens")}
               | {"continuation": src.get("continuation") or {}}
               for name, src in res["sources"].items()}
    return {"name": name, "arch": arch, "checkpoint": str(ckpt), "params": res["params"],
            "val_nll": res["val_nll"], "bits_per_note": res["bits_per_note"], "val_pieces": res["val_pieces"],
            "val_tokens": res["val_tokens"], "sources": sources, "step_ms_ctx64": lat[64],
            "step_ms_ctx2048": lat[2048], "train": run_summary(ckpt), "eval_s": round(time.monotonic() - t0, 1)}


def table(rows: list[dict]) -> str:
    head = (f"{'backbone':<12}{'source':<10}{'params':>8}{'val NLL':>9}{'bits/note':>10}{'chord':>7}"
            f"{'in-key':>8}{'(true)':>8}{'density':>9}{'bad bars':>9}{'step@64':>9}{'@2048':>8}")
    lines = [head]
    for r in rows:
        for source, src in r["sources"].items():
            c = src["continuation"]
            lines.append(f"{r['name']:<12}{source:<10}{r['params'] / 1e6:>7.2f}M{src['val_nll']:>9.4f}"
                         f"{src['bits_per_note']:>10.3f}{c.get('chord_tone', float('nan')):>7.3f}"
                         f"{c.get('in_key', float('nan')):>8.3f}{c.get('in_key_truth', float('nan')):>8.3f}"
                         f"{c.get('density_ratio', float('nan')):>9.3f}{c.get('wrong_length_bars', float('nan')):>9.3f}"
                         f"{r['step_ms_ctx64']:>8.3f}m{r['step_ms_ctx2048']:>7.3f}m")
    lines.append("(val NLL in nats/token over whole held-out pieces; chord = share of generated notes on the "
                 "annotated chord; density = generated/true notes (median); bad bars = share of generated bars "
                 "of the wrong length; step = one token, batch 1, 1 thread, ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="*", metavar="NAME=PATH",
                   default=[f"rwkv={ROOT / 'resources' / 'models' / 'default.safetensors'}"],
                   help="checkpoints to compare (default: the bundled model)")
    p.add_argument("--data", nargs="+", default=None,
                   help="corpus folder, its val split held out (default: the trainer's corpus folder)")
    p.add_argument("--samples", type=int, default=64, help="held-out 4-bar contexts to continue")
    p.add_argument("--max-pieces", type=int, default=0, help="val NLL on at most this many pieces (0 = all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "backbone_eval.json"))
    args = p.parse_args(argv)
    args.data = corpus_dirs(args.data)
    torch.set_num_threads(args.threads)
    rows = []
    for spec in args.checkpoints:
        name, _, path = spec.partition("=")
        if not path:
            p.error(f"expected NAME=PATH, got {spec!r}")
        rows.append(evaluate(name, Path(path), args.data, args.samples, args.max_pieces, args.seed))
        print(f"{name}: evaluated in {rows[-1]['eval_s']:.0f} s", file=sys.stderr)
    res = {"rows": rows, "data": args.data, "samples": args.samples, "threads": args.threads, "date": utc_stamp()}
    return write_and_print(res, args.out, args.json, lambda r: table(r["rows"]))


if __name__ == "__main__":
    raise SystemExit(main())
