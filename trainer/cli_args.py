"""Command-line arguments of the trainer, shared by `python -m trainer` and
`python main.py train|eval` so both spell every option the same way."""
from __future__ import annotations

import argparse

from trainer.defaults import FINE_TUNE_BUDGET_MIN, STYLE_BUDGET_MIN


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Options of `train`: pre-training on the corpus or fine-tuning a base model.

    Unset options take defaults chosen by the kind of run (trainer.cli.choose_defaults):
    a fine-tune (--base) gets small-data settings that finish in minutes on a CPU.
    """
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="token corpus folder(s) or folders of .mid/.midi files")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: checkpoints (best, last), logs, model card")
    parser.add_argument("--base", metavar="PATH",
                        help="checkpoint to fine-tune (default: train from scratch)")
    parser.add_argument("--style", action="store_true",
                        help="learn a style instead of new weights: only the initial state of --base is "
                             "trained; writes OUT/style.safetensors (~300 KB; default budget "
                             f"{STYLE_BUDGET_MIN:g} min)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: chosen from the data size)")
    parser.add_argument("--time-budget", type=float, metavar="MIN",
                        help="stop after this many minutes, keeping the best checkpoint "
                             f"(default: {FINE_TUNE_BUDGET_MIN:g} for a fine-tune, none otherwise)")
    parser.add_argument("--batch-size", type=int, help="windows per optimizer step (all processes together)")
    parser.add_argument("--micro-batch", type=int, help="windows per forward pass (gradient accumulation)")
    parser.add_argument("--ctx-len", type=int, help="tokens per training window (a multiple of the WKV chunk)")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--warmup", type=int, help="linear warmup steps before the cosine decay")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decay on weight matrices")
    parser.add_argument("--eval-every", type=int, help="steps between validation evals")
    parser.add_argument("--eval-windows", type=int, metavar="N",
                        help="validation windows per periodic eval, evenly spread (0 = all; "
                             "default all for a fine-tune, 64 otherwise)")
    parser.add_argument("--save-every", type=int, help="steps between last/resume saves (default: every eval)")
    parser.add_argument("--patience", type=int,
                        help="evals without improvement before stopping (default 3 for a fine-tune, 0 = never)")
    parser.add_argument("--objective", choices=("lm", "completion", "mix"), default="lm",
                        help="language-model windows, 4+2-bar completion windows, or both")
    parser.add_argument("--exclude-source", nargs="+", default=[], metavar="NAME",
                        help="leave out a corpus's pieces from these sources (e.g. oneills1850); "
                             "names as in the corpus report.json")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="pieces held out for validation from MIDI folders (corpora bring their own split)")
    parser.add_argument("--max-transpose", type=int, default=6,
                        help="random transposition up to this many semitones (0 = off)")
    parser.add_argument("--arch", choices=("rwkv", "lstm", "transformer"), default="rwkv",
                        help="backbone when training from scratch (baselines are for comparisons)")
    parser.add_argument("--n-layer", type=int, help="layers of a new model (default: the model's config)")
    parser.add_argument("--n-embd", type=int, help="width of a new model (default: the model's config)")
    parser.add_argument("--dropout", type=float, default=0.0, help="residual dropout of a new model")
    parser.add_argument("--grad-checkpoint", action="store_true",
                        help="recompute activations in the backward pass (less memory)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: all cores but one, at least 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed for data order, augmentation, init")
    parser.add_argument("--resume", action="store_true", help="continue exactly from OUT/resume.safetensors")
    parser.add_argument("--progress", choices=("tqdm", "json", "none"), default="tqdm",
                        help="progress bar on a terminal, or JSON lines on stdout (for the app)")


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    """Options of `eval`: validation NLL and musical metrics of continuations."""
    parser.add_argument("--model", required=True, metavar="PATH", help="checkpoint to evaluate")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="token corpus folder (its val split) or folders of .mid files (all pieces)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--samples", type=int, default=64,
                        help="held-out 4-bar contexts to continue for the musical metrics")
    parser.add_argument("--max-pieces", type=int, default=0,
                        help="evaluate NLL on at most this many pieces (0 = all)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: all cores but one, at least 1)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
