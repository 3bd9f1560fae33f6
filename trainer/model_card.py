"""MODEL_CARD.md for a trained model, from the run's own records.

    python -m trainer.model_card RUN_DIR EVAL_JSON OUT.md --corpus DIR... [--note-file NOTES.md]

RUN_DIR holds train_summary.json (written by `train`), EVAL_JSON is the output
of `eval --json`, the --corpus folders are what the model was trained on
(their report.json lists sources with licenses and skipped units).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from model.atomic_io import atomic_write_bytes
from trainer.evaluate import format_table


def render(summary: dict, evaluation: dict, corpora: list[dict], sidecar: dict, note: str = "") -> str:
    cfg = sidecar["config"]
    train = (sidecar.get("extra") or {}).get("train", {})
    base = (sidecar.get("extra") or {}).get("base")
    lines = [
        "# Composer Copilot default model",
        "",
        f"Date: {time.strftime('%Y-%m-%d', time.gmtime())}. Format: safetensors + JSON sidecar "
        "(`model.load_checkpoint`); tokenizer: the app's REMI config (checked on load).",
        "",
        "## Model",
        f"- RWKV-7 (x070), {cfg['n_layer']} layers x {cfg['n_embd']} channels, head size {cfg['head_size']}, "
        f"vocabulary {cfg['vocab_size']}: {sidecar['n_params']:,} parameters "
        f"({sidecar['n_params'] * 4 / 1e6:.1f} MB fp32).",
        "",
        "## Data (`python -m trainer corpus`)",
        "",
        "| source | pieces | tokens | train / val pieces | license |",
        "|---|---:|---:|---:|---|",
    ]
    pieces = skipped = 0
    for corpus in corpora:
        for name, src in corpus.get("sources", {}).items():
            lines.append(f"| {name} | {src.get('pieces', 0):,} | {src.get('tokens', 0):,} | "
                         f"{src.get('train_pieces', 0):,} / {src.get('val_pieces', 0):,} | "
                         f"{src.get('license', 'public domain (music21 corpus)')} |")
            pieces += src.get("pieces", 0)
        skipped += len(corpus.get("skipped", []))
    data = summary.get("data", {})
    lines += [
        "",
        f"- {pieces:,} pieces; {data.get('train_tokens', 0):,} train / {data.get('val_tokens', 0):,} val "
        f"tokens. Validation splits are by whole piece (a POP909 song is one piece). {skipped} units "
        "could not be converted (each listed with its reason in the corpus report.json).",
        "",
    ]
    if base:
        lines += [f"- Started from `{base}` (its own card is kept in the git history).", ""]
    lines += [
        "## Training",
        f"- {summary['steps']} optimizer steps of {train.get('batch_size')} windows x "
        f"{cfg['ctx_len']} tokens (~{summary['steps'] * train.get('batch_size', 0) * cfg['ctx_len']:,} "
        f"tokens), AdamW (decay {train.get('weight_decay')} on matrices), peak lr {train.get('lr')}, "
        f"warmup {train.get('warmup')} + cosine, clip {train.get('grad_clip')}, random transposition "
        f"within +-{train.get('max_transpose')} semitones.",
        f"- Stopped by: {summary['stopped']}; training time {summary['train_wall_s'] / 60:.1f} min "
        "(every leg of a resumed run) on a shared 2-core CPU (one torch thread, fp32).",
        f"- Best val NLL during training: {summary['best_val_nll']:.4f} nats/token "
        f"(on {train.get('eval_windows') or 'all'} windows of the mixed validation split).",
        "",
        "## Evaluation (`python main.py eval`)",
        "```",
        format_table(evaluation),
        "```",
    ]
    if note:
        lines += ["", "## Notes", note]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("eval_json")
    p.add_argument("out")
    p.add_argument("--corpus", nargs="+", required=True, metavar="DIR", help="the corpora trained on")
    p.add_argument("--note-file", default=None, help="Markdown appended under Notes")
    a = p.parse_args(argv)
    run = Path(a.run_dir)
    summary = json.loads((run / "train_summary.json").read_text())
    sidecar = json.loads((run / "best.json").read_text())
    evaluation = json.loads(Path(a.eval_json).read_text())
    corpora = [json.loads((Path(d) / "report.json").read_text()) for d in a.corpus]
    note = Path(a.note_file).read_text() if a.note_file else ""
    atomic_write_bytes(Path(a.out), render(summary, evaluation, corpora, sidecar, note).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
