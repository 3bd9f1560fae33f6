"""MODEL_CARD.md for a trained model, from the run's own records.

    python -m trainer.model_card RUN_DIR EVAL_JSON CORPUS_DIR OUT.md [--note TEXT]

RUN_DIR holds train_summary.json (written by `train`), EVAL_JSON is the output
of `eval --json`, CORPUS_DIR the corpus the model was trained on (its
report.json lists sources and skipped units).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trainer.evaluate import format_table


def render(summary: dict, evaluation: dict, corpus: dict, sidecar: dict, note: str = "") -> str:
    cfg = sidecar["config"]
    train = (sidecar.get("extra") or {}).get("train", {})
    src = ", ".join(f"{k} ({v.get('pieces', 0)})" for k, v in corpus.get("sources", {}).items())
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
        "## Data",
        f"- The public-domain music21 corpus, converted by `python -m trainer corpus`: {src}.",
        f"- {corpus.get('pieces')} pieces, {corpus.get('train_tokens'):,} train / {corpus.get('val_tokens'):,} "
        f"val tokens (val split: whole pieces chosen by hash). {len(corpus.get('skipped', []))} units "
        "could not be converted (listed in the corpus report.json).",
        "",
        "## Training",
        f"- {summary['steps']} optimizer steps of {train.get('batch_size')} windows x "
        f"{cfg['ctx_len']} tokens (~{summary['steps'] * train.get('batch_size', 0) * cfg['ctx_len']:,} "
        f"tokens), AdamW (decay {train.get('weight_decay')} on matrices), peak lr {train.get('lr')}, "
        f"warmup {train.get('warmup')} + cosine, clip {train.get('grad_clip')}, random transposition "
        f"within +-{train.get('max_transpose')} semitones.",
        f"- Stopped by: {summary['stopped']}; wall time {summary['wall_s'] / 60:.1f} min on a shared "
        "2-core CPU (one torch thread, fp32).",
        f"- Best val NLL during training: {summary['best_val_nll']:.4f} nats/token (on 64 windows).",
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
    p.add_argument("corpus_dir")
    p.add_argument("out")
    p.add_argument("--note", default="")
    a = p.parse_args(argv)
    run = Path(a.run_dir)
    summary = json.loads((run / "train_summary.json").read_text())
    sidecar = json.loads((run / "best.json").read_text())
    evaluation = json.loads(Path(a.eval_json).read_text())
    corpus = json.loads((Path(a.corpus_dir) / "report.json").read_text())
    Path(a.out).write_text(render(summary, evaluation, corpus, sidecar, a.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
