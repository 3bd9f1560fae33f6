"""Which model size fits the latency budget? (not a test)

One-token step latency of the native RWKV-7 step, batch 1 and 4, one CPU
thread, for candidate sizes (random weights: the cost does not depend on
them), with BlinkDL's `rwkv` package on the same weights as the peer at
batch 1 where it is installed. A live answer takes 2 to 6 steps before its
first note (Position and Pitch, plus a Bar/TimeSig pair for each bar it must
open), so "6 steps" is the model's share of the worst-case time to first note.

    python bench/size_sweep.py [--sizes 6x192 6x256 8x256 12x256] [--json]

Writes bench/results/size_sweep.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._rwkv_peer import load_peers, peer_step_ms  # noqa: E402  (first: it sets the package's env)
from bench.model_bench import perturbed_model  # noqa: E402
from bench._timing import median_time  # noqa: E402
from bench._report import utc_stamp, write_and_print  # noqa: E402
from model import RWKVConfig  # noqa: E402

VOCAB = 330  # the app's REMI vocabulary


def step_ms(model, batch: int) -> float:
    """Median ms of one native step of ``batch`` tokens."""
    tok = torch.zeros(batch, dtype=torch.long)
    state = model.init_state(batch)
    return median_time(lambda: model.step(tok, state, impl="native", inplace=True), 9, 100, warmup=20) * 1e3


def peer_ms(model) -> float | None:
    try:
        peer = load_peers(model, ("cpu fp32",))["cpu fp32"]
    except ImportError:  # the package is a test/dev dependency
        return None
    return None if isinstance(peer, str) else peer_step_ms(peer, 1, 9, 20, warmup=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["4x192", "6x192", "6x256", "8x256", "12x256", "12x384"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "size_sweep.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for size in args.sizes:
        n_layer, n_embd = (int(x) for x in size.split("x"))
        model = perturbed_model(RWKVConfig(vocab_size=VOCAB, n_layer=n_layer, n_embd=n_embd)).eval()
        b1, b4 = step_ms(model, 1), step_ms(model, 4)
        rows.append({"size": size, "n_layer": n_layer, "n_embd": n_embd, "params": model.num_params(),
                     "step_b1_ms": b1, "step_b4_ms": b4, "b4_over_b1": b4 / b1, "six_steps_ms": 6 * b1,
                     "peer_b1_ms": peer_ms(model)})
        print(f"{size}: done", file=sys.stderr)
    res = {"rows": rows, "threads": 1, "vocab": VOCAB, "torch": torch.__version__, "date": utc_stamp()}
    return write_and_print(res, args.out, args.json, format_table)


def format_table(res: dict) -> str:
    lines = [f"{'size':<8}{'params':>9}{'step B=1':>10}{'B=4':>8}{'B4/B1':>7}{'6 steps':>9}{'rwkv pkg B=1':>14}"]
    for r in res["rows"]:
        peer = f"{r['peer_b1_ms']:>12.2f}ms" if r["peer_b1_ms"] is not None else f"{'-':>14}"
        lines.append(f"{r['size']:<8}{r['params'] / 1e6:>8.2f}M{r['step_b1_ms']:>8.3f}ms{r['step_b4_ms']:>6.3f}ms"
                     f"{r['b4_over_b1']:>7.2f}{r['six_steps_ms']:>7.2f}ms{peer}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
