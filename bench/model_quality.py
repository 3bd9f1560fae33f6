"""What a pianist hears from each bundled model, against the piano-model targets (not a test).

    python bench/model_quality.py --data CORPUS... [--samples 128]
    python bench/model_quality.py --from-eval NAME=EVAL.json ...   # reuse `eval --json` outputs

Runs `eval` (trainer.evaluate: continuations sampled by the app's own
generator at its default temperature and top-p) on every bundled model, or
reads saved `eval --json` results, and writes bench/results/model_quality.json
with each model's per-source figures and the targets of the piano-model issue
checked on the default model; bench/render_figures.py renders it into the
README.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._report import utc_stamp, write_and_print  # noqa: E402

# The piano-model targets on held-out POP909 songs (continuations at the app's defaults).
POP = "pop909"
MUSIC21_SLACK = 1.10  # music21 val NLL at most 10% above the previous default's


def targets(new: dict, previous: dict | None) -> list[dict]:
    """Each target with the measured value and whether it is met."""
    pop = new["sources"][POP]
    c = pop["continuation"]
    rows = [
        ("bits/note", pop["bits_per_note"], "<= 6.0", pop["bits_per_note"] <= 6.0),
        ("chord-tone ratio", c["chord_tone"], ">= 0.70", c["chord_tone"] >= 0.70),
        ("in-key ratio vs truth", c["in_key"] - c["in_key_truth"], "within 0.03",
         abs(c["in_key"] - c["in_key_truth"]) <= 0.03),
        ("note density ratio (median)", c["density_ratio"], "0.8-1.25", 0.8 <= c["density_ratio"] <= 1.25),
        ("near-silent answers", c["near_silent"], "<= 0.02", c["near_silent"] <= 0.02),
        ("notes per onset / truth", c["notes_per_onset"] / c["notes_per_onset_truth"], "0.85-1.15",
         0.85 <= c["notes_per_onset"] / c["notes_per_onset_truth"] <= 1.15),
        ("pitch-class similarity", c["pitch_class_similarity"], ">= 0.75", c["pitch_class_similarity"] >= 0.75),
    ]
    if previous is not None and "music21" in new["sources"] and "music21" in previous["sources"]:
        was, now = previous["sources"]["music21"]["val_nll"], new["sources"]["music21"]["val_nll"]
        rows.append(("music21 val NLL / previous default", now / was, f"<= {MUSIC21_SLACK:.2f}",
                     now <= MUSIC21_SLACK * was))
    return [{"target": t, "measured": round(float(v), 4), "goal": g, "met": bool(ok)} for t, v, g, ok in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", help="corpus folders (their val splits)")
    p.add_argument("--from-eval", nargs="+", default=[], metavar="NAME=JSON",
                   help="saved `eval --json` outputs instead of running eval")
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "model_quality.json"))
    args = p.parse_args(argv)
    models: dict[str, dict] = {}
    for spec in args.from_eval:
        name, _, path = spec.partition("=")
        models[name] = json.loads(Path(path).read_text())
    if not models:
        if not args.data:
            p.error("give --data CORPUS... (or --from-eval)")
        import torch

        from copilot_app.engine.runtime_info import bundled_models
        from trainer.evaluate import evaluate_model

        torch.set_num_threads(1)
        for path in bundled_models():
            models[path.stem] = evaluate_model(str(path), args.data, torch.device("cpu"), samples=args.samples)
    names = list(models)
    new = models[names[0]]
    previous = models[names[1]] if len(names) > 1 else None
    res = {"models": models, "order": names, "targets": targets(new, previous), "date": utc_stamp()}
    return write_and_print(res, args.out, args.json, lambda r: "\n".join(
        f"{t['target']:<36}{t['measured']:>9.3f}  {t['goal']:<13}{'met' if t['met'] else 'NOT met'}"
        for t in r["targets"]))


if __name__ == "__main__":
    raise SystemExit(main())
