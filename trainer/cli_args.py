"""Command-line arguments of the trainer, shared by `python -m trainer` and
`python main.py train|eval` so both spell every option the same way."""
from __future__ import annotations

import argparse


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Options of `train`: pre-training on the corpus or fine-tuning a base model."""
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="token corpus folder(s) or folders of .mid/.midi files")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: checkpoints (best, last), logs, model card")
    parser.add_argument("--base", metavar="PATH",
                        help="checkpoint to fine-tune (default: train from scratch)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: chosen from the data size)")
    parser.add_argument("--time-budget", type=float, metavar="MIN",
                        help="stop after this many minutes, keeping the best checkpoint")
    parser.add_argument("--batch-size", type=int, help="windows per optimizer step")
    parser.add_argument("--ctx-len", type=int, help="tokens per training window")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed for data order, augmentation, init")
    parser.add_argument("--resume", action="store_true", help="continue exactly from OUT/last")
    parser.add_argument("--progress", choices=("tqdm", "json", "none"), default="tqdm",
                        help="progress bar on a terminal, or JSON lines on stdout (for the app)")


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    """Options of `eval`: validation NLL and musical metrics of continuations."""
    parser.add_argument("--model", required=True, metavar="PATH", help="checkpoint to evaluate")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="token corpus folder (its val split) or folders of .mid files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--samples", type=int, default=64,
                        help="held-out 4-bar contexts to continue for the musical metrics")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
