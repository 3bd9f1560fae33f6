"""Is a blend of two styles musical? (not a test)

Two styles learned for the same base through `main.py train --style` (one
CPU thread, the default 1-minute budget) on pieces of two sources
(default: palestrina and ryansMammoth), then the blend
``(1 - t) * A + t * B`` of their states (``Style.blend``) at t = 0, 0.25,
0.5, 0.75, 1, scored on held-out pieces of both sources: NLL of 2-bar answers
after 4 bars (the app's setting; bench/style_bench.py). A musical blend moves
smoothly from one style's strength to the other's; a blend worse than both
ends on both sources would be noise. The base alone is scored too.

    python bench/style_blend.py [--work DIR] [--json]

Prints a table and writes bench/results/style_blend.json.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._report import utc_stamp, write_and_print  # noqa: E402
from bench.style_bench import DEFAULT_BASE, answer_nll, learn_folder, train_run  # noqa: E402
from bench._style_pieces import prepare  # noqa: E402
from model.checkpoint import load_checkpoint  # noqa: E402
from model.style import STYLE_FILE, load_style_for  # noqa: E402
from trainer.datasets import load_midi_folder  # noqa: E402

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="style_blend_"))
    base, _ = load_checkpoint(Path(args.base), "cpu")
    base = base.float().eval()
    styles, held = {}, {}
    res: dict = {"sources": args.sources, "pieces": args.pieces, "base": Path(args.base).name,
                 "threads": args.threads, "runs": {}}
    for source in args.sources:
        pieces = work / source / "pieces"
        prepare(source, pieces, args.pieces, args.held_out)
        out = work / source / "style"
        res["runs"][source] = train_run("style", learn_folder(pieces / "learn", args.pieces, work / source),
                                        Path(args.base), out, args.budget_min, args.threads,
                                        work / source / "train.log")
        styles[source] = load_style_for(out / STYLE_FILE, base)
        held[source], _ = load_midi_folder(pieces / "held_out")
    a, b = args.sources
    res["base_alone"] = {s: answer_nll(base, held[s]) for s in args.sources}
    res["blends"] = [{"t": t, **{s: answer_nll(base, held[s], styles[a].blend(styles[b], t)) for s in args.sources}}
                     for t in BLENDS]
    res["date"] = utc_stamp()
    return res


def table(r: dict) -> str:
    """The README's table (bench/render_figures.py renders it from this JSON)."""
    from bench.render_figures import blend_table

    return blend_table(r)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=str(DEFAULT_BASE))
    p.add_argument("--sources", nargs=2, default=["palestrina", "ryansMammoth"])
    p.add_argument("--pieces", type=int, default=10, help="pieces each style is learned from")
    p.add_argument("--held-out", type=int, default=20)
    p.add_argument("--budget-min", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", help="folder for the pieces and runs (default: a new temp folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "style_blend.json"))
    args = p.parse_args(argv)
    return write_and_print(run(args), args.out, args.json, table)


if __name__ == "__main__":
    raise SystemExit(main())
