"""A style in a minute? State tuning against the full fine-tune (not a test).

For 3, 10 and 30 pieces of a style (default: music21's palestrina, not among
the bundled model's last training sources), through the app's own path
(`main.py train --style` and `main.py train --base`, one CPU thread, MIDI
folders in), at the same time budgets (1 and 5 minutes, each its own run):
val NLL of held-out pieces of that style before, with the learned style,
and with the fine-tuned model. Both runs hold out some of the N pieces for
their own early stopping and best-checkpoint choice, as the app does (so of
3 pieces 2 are learned from); the held-out pieces scored here are never seen.

Then the style file's size and the cost of switching styles live: the swap
(the engine's initial state replaced) and the re-prime of the context from
the new state (the engine's rebuild of its recent bars, and a long
2048-token context), each timed separately.

    python bench/style_bench.py [--pieces 3 10 30] [--budgets 1 5] [--json]

Prints a table and writes bench/results/style_bench.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._report import utc_stamp, write_and_print  # noqa: E402
from bench.finetune_style import run_cli  # noqa: E402
from bench._style_pieces import DEFAULT_SOURCE, prepare  # noqa: E402
from model.checkpoint import load_checkpoint  # noqa: E402
from model.style import STYLE_FILE, Style, load_style_for  # noqa: E402
from trainer.datasets import PieceSet, completion_windows, load_midi_folder  # noqa: E402
from trainer.evaluate import nll  # noqa: E402
from trainer.loop import evaluate_loss  # noqa: E402
from trainer.style_tuning import StateTuned  # noqa: E402

DEFAULT_BASE = ROOT / "resources" / "models" / "default.safetensors"
METHODS = ("style", "finetune")
ANSWER_CTX = 512  # tokens a 4+2-bar window may span (the trainer's completion windows)
ANSWER_WINDOWS = 256  # held-out answers scored: ~40k tokens, ~10 s a model on one thread


def held_out_nll(model: torch.nn.Module, pieces: PieceSet, style: Style | None = None) -> float:
    """Val NLL (nats/token) of whole ``pieces``, every window started from the style's state."""
    scored = StateTuned(model, style).eval() if style is not None else model.eval()
    return nll(scored, pieces, torch.device("cpu"))["val_nll"]


def answer_nll(model: torch.nn.Module, pieces: PieceSet, style: Style | None = None) -> float:
    """NLL (nats/token) of 2-bar answers after 4 bars of context, the app's setting: the
    held-out pieces' 4+2-bar completion windows (ANSWER_WINDOWS of them, evenly
    spread), loss on the 2 answer bars only, each window started from the style's state."""
    scored = StateTuned(model, style).eval() if style is not None else model.eval()
    win = completion_windows(pieces.sequences(), ANSWER_CTX)
    return evaluate_loss(scored, win, torch.device("cpu"), limit=ANSWER_WINDOWS, batch=8)


def scores(model: torch.nn.Module, pieces: PieceSet, style: Style | None = None) -> dict:
    return {"nll": held_out_nll(model, pieces, style), "answer_nll": answer_nll(model, pieces, style)}


def learn_folder(pool: Path, n: int, work: Path) -> Path:
    """A folder with the first ``n`` pieces of the learning pool (links, no copies)."""
    folder = work / f"learn{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in sorted(pool.glob("*.mid"))[:n]:
        os.symlink(f.resolve(), folder / f.name)
    return folder


def train_run(method: str, folder: Path, base: Path, out: Path, budget_min: float, threads: int,
              log: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "main.py"), "train", "--data", str(folder), "--base", str(base),
           "--out", str(out), "--time-budget", f"{budget_min:g}", "--threads", str(threads),
           "--progress", "none"] + (["--style"] if method == "style" else [])
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu = run_cli(cmd, log)
    import json

    summary = json.loads((out / "train_summary.json").read_text())
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "steps": summary["steps"],
            "stopped": summary["stopped"], "train_pieces": summary["data"]["train_pieces"],
            "val_pieces": summary["data"]["val_pieces"]}


def switch_cost(base_model: torch.nn.Module, style: Style, repeats: int = 50) -> dict:
    """Median times of a live style switch: the swap of the initial state, and
    the re-prime of the context from it (what ``LiveSession.set_style`` does)."""
    from bench.live_bench import NullPort
    from copilot_app.engine.clock import FakeClock
    from copilot_app.engine.phrase_file import read_phrase
    from copilot_app.engine.player import Player
    from copilot_app.engine.session import LiveSession

    clock = FakeClock()
    session = LiveSession(base_model, Player(NullPort(), clock), clock=clock)
    phrase = read_phrase(sorted((ROOT / "resources" / "phrases").glob("*.mid"))[0])
    session.open_phrase(phrase, clock.now())
    before = session.stats.tokens_in
    session.set_style(None)
    context_tokens = session.stats.tokens_in - before  # what one re-prime feeds the model
    swap, rebuild = [], []
    styles = [style, None]
    for i in range(repeats):
        t0 = time.perf_counter()
        session.runner.set_style(styles[i % 2])
        swap.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        session.set_style(styles[i % 2])
        rebuild.append(time.perf_counter() - t0)
    long_ctx = torch.randint(4, 300, (1, 2048))  # the cost of a 2048-token prefill (ids do not matter)
    prefill = []
    for _ in range(5):
        state = style.initial_state(1)
        t0 = time.perf_counter()
        base_model.prefill(long_ctx, state)
        prefill.append(time.perf_counter() - t0)
    return {"swap_ms": statistics.median(swap) * 1e3, "reprime_context_ms": statistics.median(rebuild) * 1e3,
            "reprime_context_tokens": context_tokens, "reprime_2048_ms": statistics.median(prefill) * 1e3,
            **ready_switch_cost(session, style, repeats)}


def ready_switch_cost(session, style: Style, repeats: int) -> dict:
    """A style kept ready (engine/ready_styles.py): the switch itself (a copy of
    its row, the whole context kept), the catch-up the engine thread pays per
    poll, and what the live path pays per token with and without ready rows."""
    from copilot_app.engine.ready_styles import MAX_READY_STYLES, ReadyStyles

    runner = session.runner
    ids = [int(t) for t in torch.randint(4, 300, (64,))]
    session.keep_styles_ready([style])
    runner.ready.catch_up()
    ready, alone = runner.ready, ReadyStyles(runner.model, ())
    feed = {"alone": [], "ready": []}
    for i, token in enumerate(ids):  # interleaved, so both see the same machine
        which = ("alone", "ready")[i % 2]
        runner.ready = alone if which == "alone" else ready
        t0 = time.perf_counter()
        runner.feed([token])
        feed[which].append(time.perf_counter() - t0)
    runner.ready = ready
    ready.catch_up()
    switch, styles = [], [style, None]
    for i in range(repeats):
        t0 = time.perf_counter()
        session.set_style(styles[i % 2])
        switch.append(time.perf_counter() - t0)
    catch_up = {}
    for extra in (1, MAX_READY_STYLES):  # the style (+ no style); the most rows kept
        others = [dataclasses.replace(style, att_x=style.att_x + 1e-3 * (k + 1), name=f"other {k}")
                  for k in range(extra - 1)]  # distinct starts: a row each
        session.keep_styles_ready([style] + others)
        rows, times = runner.ready, []
        for _ in range(9):
            rows.catch_up()
            rows.hear(ids[:rows.chunk])
            t0 = time.perf_counter()
            rows.catch_up(rows.chunk)
            times.append(time.perf_counter() - t0)
        catch_up[str(len(rows))] = {"tokens": rows.chunk, "ms": statistics.median(times) * 1e3}
    return {"ready_switch_ms": statistics.median(switch) * 1e3, "ready_catch_up_by_rows": catch_up,
            "feed_us_alone": statistics.median(feed["alone"]) * 1e6,
            "feed_us_with_ready": statistics.median(feed["ready"]) * 1e6}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="style_bench_"))
    info = prepare(args.source, work / "pieces", max(args.pieces), args.held_out)
    held, _ = load_midi_folder(work / "pieces" / "held_out")
    base_path = Path(args.base)
    base, _side = load_checkpoint(base_path, "cpu")
    base = base.float().eval()
    res: dict = {"source": args.source, "base": base_path.name, "threads": args.threads,
                 "budgets_min": args.budgets, "held_out_pieces": len(held), "held_out_tokens": held.tokens,
                 "learn_tokens": {str(n): sum(r["tokens"] for r in info["learn"][:n]) for n in args.pieces},
                 "runs": [], "work": str(work)}
    for n in args.pieces:
        folder = learn_folder(work / "pieces" / "learn", n, work)
        for budget in args.budgets:
            for method in METHODS:
                out = work / "runs" / f"{method}-{n}-{budget:g}"
                run = {"pieces": n, "budget_min": budget, "method": method}
                run |= train_run(method, folder, base_path, out, budget, args.threads, work / f"{out.name}.log")
                res["runs"].append(run)
                print(f"  {method} {n} pieces {budget:g} min: {run['steps']} steps, {run['stopped']}",
                      file=sys.stderr, flush=True)
    res["date"] = utc_stamp()  # when the runs were made; scoring (--rescore too) adds "scored"
    return score(res, base)


def run_dir(res: dict, run: dict) -> Path:
    return Path(res["work"]) / "runs" / f"{run['method']}-{run['pieces']}-{run['budget_min']:g}"


def score(res: dict, base: torch.nn.Module) -> dict:
    """Held-out scores of every run's result (kept in the work folder), the switch cost, the targets."""
    held, _ = load_midi_folder(Path(res["work"]) / "pieces" / "held_out")
    before = scores(base, held)
    res["nll_before"], res["answer_nll_before"] = before["nll"], before["answer_nll"]
    for run in res["runs"]:
        out = run_dir(res, run)
        if run["method"] == "style":
            after = scores(base, held, load_style_for(out / STYLE_FILE, base))
            run["file_bytes"] = (out / STYLE_FILE).stat().st_size
            run["sidecar_bytes"] = (out / STYLE_FILE).with_suffix(".json").stat().st_size
        else:
            tuned, _ = load_checkpoint(out / "best.safetensors", "cpu")
            after = scores(tuned.float().eval(), held)
            run["file_bytes"] = (out / "best.safetensors").stat().st_size
        run["nll_after"], run["answer_nll_after"] = after["nll"], after["answer_nll"]
        run["drop_pct"] = 100.0 * (1.0 - run["nll_after"] / res["nll_before"])
        run["answer_drop_pct"] = 100.0 * (1.0 - run["answer_nll_after"] / res["answer_nll_before"])
        print(f"  {run['method']} {run['pieces']} pieces {run['budget_min']:g} min: NLL {run['nll_after']:.4f} "
              f"({run['drop_pct']:.1f}%), answers {run['answer_nll_after']:.4f} ({run['answer_drop_pct']:.1f}%)",
              file=sys.stderr, flush=True)
    last_style = next(r for r in reversed(res["runs"]) if r["method"] == "style")
    res["switch"] = switch_cost(base, load_style_for(run_dir(res, last_style) / STYLE_FILE, base))
    res["targets"] = targets(res)
    res["scored"] = utc_stamp()
    res["load_avg"] = os.getloadavg()[0]
    return res


def _run(res: dict, method: str, n: int, budget: float) -> dict | None:
    return next((r for r in res["runs"] if (r["method"], r["pieces"], r["budget_min"]) == (method, n, budget)), None)


def targets(res: dict) -> list[dict]:
    """The issue's targets against what was measured (None where not measured)."""
    out = []
    for key, what in (("drop_pct", "whole pieces"), ("answer_drop_pct", "2-bar answers")):
        s10, f10 = _run(res, "style", 10, 1), _run(res, "finetune", 10, 1)
        if s10 and f10:
            gap = f10[key] - s10[key]
            out.append({"target": f"10 pieces, 1 min: style within 3 points of the fine-tune's NLL drop ({what})",
                        "measured": f"{s10[key]:.1f}% vs {f10[key]:.1f}% (gap {gap:.1f})", "met": gap <= 3})
        s3, f3 = _run(res, "style", 3, 1), _run(res, "finetune", 3, 1)
        if s3 and f3:
            out.append({"target": f"3 pieces, 1 min: style better than the fine-tune ({what})",
                        "measured": f"{s3[key]:.1f}% vs {f3[key]:.1f}%", "met": s3[key] > f3[key]})
    sizes = [r["file_bytes"] for r in res["runs"] if r["method"] == "style"]
    if sizes:
        out.append({"target": "style file <= 1 MB", "measured": f"{max(sizes) / 1024:.0f} KiB",
                    "met": max(sizes) <= 1024 * 1024})
    sw = res.get("switch")
    if sw:
        out.append({"target": "switching styles <= 1 ms: the swap of the initial state",
                    "measured": f"{sw['swap_ms']:.3f} ms", "met": sw["swap_ms"] <= 1.0})
        total = sw["swap_ms"] + sw["reprime_context_ms"]
        out.append({"target": "switching styles <= 1 ms: swap + re-prime of the engine's context",
                    "measured": f"{total:.1f} ms", "met": total <= 1.0})
        if "ready_switch_ms" in sw:
            out.append({"target": "switching styles <= 1 ms: a style kept ready (the Style menu's; context kept)",
                        "measured": f"{sw['ready_switch_ms']:.3f} ms", "met": sw["ready_switch_ms"] <= 1.0})
    return out


def table(r: dict) -> str:
    """The README's table (bench/render_figures.py renders it from this JSON)."""
    from bench.render_figures import style_table

    return style_table(r)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=str(DEFAULT_BASE), help="the model styles are learned for")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="music21 corpus source whose pieces are the style")
    p.add_argument("--pieces", type=int, nargs="+", default=[3, 10, 30])
    p.add_argument("--budgets", type=float, nargs="+", default=[1.0, 5.0], help="minutes per run")
    p.add_argument("--held-out", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", help="folder for the pieces and runs (default: a new temp folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "style_bench.json"))
    p.add_argument("--rescore", metavar="JSON",
                   help="score again the runs a previous bench kept in its work folder (no training)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rescore:
        import json

        res = json.loads(Path(args.rescore).read_text())
        base, _ = load_checkpoint(Path(args.base), "cpu")
        return write_and_print(score(res, base.float().eval()), args.out, args.json, table)
    return write_and_print(run(args), args.out, args.json, table)


if __name__ == "__main__":
    raise SystemExit(main())
