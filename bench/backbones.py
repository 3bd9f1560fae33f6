"""RWKV-7 vs an LSTM vs a small Llama-style Transformer, side by side.

Same trainer (trainer.loop.Trainer), same data, same token budget, parameter
counts matched by width at the same depth. Prints val NLL and the latency of
one recurrent step (one token, batch 1, one CPU thread) after 64 and 2048
tokens of context, and writes JSON to bench/results/backbones.json.

    python bench/backbones.py [--data CORPUS] [--tokens N] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainer.datasets import build_windows, lm_windows, load_data  # noqa: E402
from trainer.loop import TrainConfig, Trainer, evaluate_loss  # noqa: E402
from trainer.models import build_model, matched_width  # noqa: E402
from trainer.progress import Progress  # noqa: E402
from trainer.vocab import vocab  # noqa: E402

ARCHS = ("rwkv", "lstm", "transformer")


@torch.no_grad()
def state_after(model: torch.nn.Module, arch: str, context: int):
    """The recurrent state after ``context`` tokens (values do not change the cost)."""
    if arch == "rwkv":
        tokens = torch.randint(4, 90, (1, context))
        return model.prefill(tokens)[1]
    if arch == "lstm":
        _, state = model.lstm(model.emb(torch.randint(4, 90, (1, context))))
        return state
    empty = model.init_state(1, capacity=context + 1)  # preallocated: the step writes one position
    return type(empty)(torch.randn_like(empty.k), torch.randn_like(empty.v), context)


@torch.no_grad()
def step_latency_ms(model: torch.nn.Module, arch: str, context: int, reps: int = 50) -> float:
    """Median wall time of one step from a state after ``context`` tokens."""
    state = state_after(model, arch, context)
    tok = torch.tensor([10])
    for _ in range(5):  # warm-up (and the native RWKV step's first build)
        model.step(tok, state)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        model.step(tok, state)  # the same state each time: the cost of step context+1
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    data = load_data(args.data, seed=args.seed)
    train_win = build_windows(data.train.sequences(), "lm", args.ctx_len)
    val_win = lm_windows(data.val.sequences(), args.ctx_len)
    V = vocab().size
    target = build_model("rwkv", V, args.n_layer, args.n_embd, args.ctx_len).num_params()
    steps = max(1, args.tokens // (args.batch_size * args.ctx_len))
    rows = []
    for arch in args.archs:
        width = args.n_embd if arch == "rwkv" else matched_width(arch, target, V, args.n_layer,
                                                                 64 if arch == "transformer" else 32)
        torch.manual_seed(args.seed)
        model = build_model(arch, V, args.n_layer, width, args.ctx_len)
        cfg = TrainConfig(steps=steps, batch_size=args.batch_size, lr=args.lr,
                          warmup=max(1, steps // 20), eval_every=steps, eval_windows=args.eval_windows,
                          max_transpose=6, seed=args.seed)
        t0 = time.monotonic()
        Trainer(model, train_win, val_win, cfg, None, torch.device("cpu"), Progress("none")).run()
        wall = time.monotonic() - t0
        model.eval()
        val = evaluate_loss(model, val_win, torch.device("cpu"), args.eval_windows)
        lat = {c: step_latency_ms(model, arch, c) for c in (64, 2048)}
        rows.append({"arch": arch, "n_layer": args.n_layer, "width": width, "params": model.num_params(),
                     "steps": steps, "tokens": steps * args.batch_size * args.ctx_len,
                     "train_s": round(wall, 1), "val_nll": val,
                     "step_ms_ctx64": lat[64], "step_ms_ctx2048": lat[2048]})
        print(f"{arch}: done ({wall:.0f} s)", file=sys.stderr)
    return {"data": data.summary(), "ctx_len": args.ctx_len, "batch_size": args.batch_size,
            "threads": args.threads, "device": "cpu", "rows": rows,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(res: dict) -> str:
    lines = [f"{'backbone':<12}{'params':>9}{'width':>7}{'tokens':>9}{'train s':>9}{'val NLL':>9}"
             f"{'step ms @64':>13}{'@2048':>9}"]
    for r in res["rows"]:
        lines.append(f"{r['arch']:<12}{r['params'] / 1e6:>8.2f}M{r['width']:>7}{r['tokens']:>9}"
                     f"{r['train_s']:>9.0f}{r['val_nll']:>9.3f}{r['step_ms_ctx64']:>13.3f}"
                     f"{r['step_ms_ctx2048']:>9.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from trainer.corpus import default_corpus_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=[str(default_corpus_dir())], help="corpus or MIDI folders")
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=128, help="RWKV width; the others match its parameters")
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens per backbone")
    p.add_argument("--ctx-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-windows", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "backbones.json"))
    args = p.parse_args(argv)
    res = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2) if args.json else table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
