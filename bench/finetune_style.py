"""Does fine-tuning teach a base model a style it never saw? (not a test)

The experiment of the "make the default model musical" issue, end to end
through the app's own path (`main.py train --base`, MIDI folders in):

  1. a base model trained on the corpus without the style's sources
     (--base, or trained here with `trainer train --exclude-source`);
  2. N pieces of the style (the corpus's train split) written as .mid files:
     the "my pieces" folder a composer would choose in the app;
  3. held-out pieces of the style (the corpus's val split) as .mid files;
  4. val NLL of the held-out pieces under the base, then a fine-tune with a
     CPU time budget, then the val NLL under the fine-tuned best checkpoint.

    python bench/finetune_style.py --corpus CORPUS [--base BASE] [--json]

Prints a table and writes bench/results/finetune_style.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._report import corpus_dirs, utc_stamp, write_and_print  # noqa: E402
from model.tokens.midi_io import decode_tokens, write_midi  # noqa: E402
from trainer.datasets import load_midi_folder  # noqa: E402
from trainer.evaluate import nll  # noqa: E402
from trainer.models import load_any  # noqa: E402

FOLK = ["oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong", "miscFolk"]


def style_pieces(corpus: Path, source: str, split: str) -> list[dict]:
    """Manifest entries of one source and split, in a fixed hashed order."""
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").open()]
    rows = [r for r in rows if r["source"] == source and r["split"] == split]
    return sorted(rows, key=lambda r: hashlib.sha1(r["id"].encode()).digest())


def write_pieces(corpus: Path, rows: list[dict], split: str, folder: Path) -> None:
    import numpy as np

    arr = np.load(corpus / f"{split}.npy", mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    for k, r in enumerate(rows):
        ids = [int(i) for i in arr[r["offset"]: r["offset"] + r["tokens"]]]
        write_midi(decode_tokens(ids), folder / f"{k:03d}.mid")


def held_out_nll(model_path: Path, folder: Path) -> float:
    model, _ = load_any(model_path, "cpu")
    pieces, _ = load_midi_folder(folder)
    return nll(model.float().eval(), pieces, torch.device("cpu"))["val_nll"]


def run_cli(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a trainer command; its wall time and the CPU time it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus).expanduser()
    work = Path(args.work or tempfile.mkdtemp(prefix="finetune_style_"))
    res: dict = {"style": args.style, "excluded": args.exclude, "pieces": args.pieces,
                 "budget_min": args.budget_min, "threads": args.threads}
    base = Path(args.base) if args.base else work / "base" / "best.safetensors"
    if not args.base:
        cmd = [sys.executable, "-m", "trainer", "train", "--data", str(corpus), "--out", str(base.parent),
               "--exclude-source", *args.exclude, "--steps", str(args.base_steps), "--batch-size", "8",
               "--ctx-len", "512", "--lr", "2e-3", "--threads", str(args.threads), "--progress", "none"]
        res["base_wall_s"], _ = run_cli(cmd, work / "base.log")
    side = json.loads(base.with_suffix(".json").read_text())
    seen = set((side.get("data") or {}).get("excluded_sources") or [])
    if args.style not in seen:
        print(f"warning: {base} does not record {args.style} as excluded", file=sys.stderr)
    res["base"] = str(base)
    res["base_excluded_sources"] = sorted(seen)

    mine, held = work / "my_pieces", work / "held_out"
    write_pieces(corpus, style_pieces(corpus, args.style, "train")[: args.pieces], "train", mine)
    write_pieces(corpus, style_pieces(corpus, args.style, "val")[: args.held_out], "val", held)
    res["held_out_pieces"] = len(list(held.glob("*.mid")))
    res["nll_before"] = held_out_nll(base, held)

    out = work / "fine_tuned"
    cmd = [sys.executable, str(ROOT / "main.py"), "train", "--data", str(mine), "--base", str(base),
           "--out", str(out), "--time-budget", str(args.budget_min), "--threads", str(args.threads),
           "--progress", "none"]
    res["finetune_wall_s"], res["finetune_cpu_s"] = run_cli(cmd, work / "finetune.log")
    summary = json.loads((out / "train_summary.json").read_text())
    res["finetune_steps"], res["finetune_stopped"] = summary["steps"], summary["stopped"]
    res["nll_after"] = held_out_nll(out / "best.safetensors", held)
    res["drop"] = 1.0 - res["nll_after"] / res["nll_before"]
    res["work"] = str(work)
    res["date"] = utc_stamp()
    return res


def table(r: dict) -> str:
    return "\n".join([
        f"style {r['style']} (base trained without: {', '.join(r['base_excluded_sources']) or 'nothing'})",
        f"fine-tune: {r['pieces']} pieces, budget {r['budget_min']} min, {r['threads']} thread(s): "
        f"{r['finetune_steps']} steps, stopped by {r['finetune_stopped']}, "
        f"{r['finetune_wall_s']:.0f} s wall, {r['finetune_cpu_s']:.0f} s CPU",
        f"{'held-out pieces':<28}{r['held_out_pieces']:>10}",
        f"{'val NLL before (nats/token)':<28}{r['nll_before']:>10.4f}",
        f"{'val NLL after':<28}{r['nll_after']:>10.4f}",
        f"{'drop':<28}{100 * r['drop']:>9.1f}%",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=None,
                   help="token corpus folder (default: the one `python -m trainer corpus` builds)")
    p.add_argument("--base", help="base checkpoint trained without the style (default: train one here)")
    p.add_argument("--style", default="oneills1850", help="corpus source whose pieces are the style")
    p.add_argument("--exclude", nargs="+", default=FOLK, help="sources the base is trained without")
    p.add_argument("--base-steps", type=int, default=300)
    p.add_argument("--pieces", type=int, default=10, help="pieces of the style to fine-tune on")
    p.add_argument("--held-out", type=int, default=40, help="held-out pieces of the style to score")
    p.add_argument("--budget-min", type=float, default=5.0, help="fine-tune time budget (minutes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", help="folder for the pieces and runs (default: a new temp folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "finetune_style.json"))
    args = p.parse_args(argv)
    args.corpus = corpus_dirs([args.corpus] if args.corpus else None)[0]
    return write_and_print(run(args), args.out, args.json, table)


if __name__ == "__main__":
    raise SystemExit(main())
