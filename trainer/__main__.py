"""`python -m trainer corpus|train|eval`: the trainer as its own program.

The app runs it as a separate process so the live engine stays responsive.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from trainer.cli_args import add_eval_args, add_train_args

PROG = "python -m trainer"

# command -> (module, handler); the corpus module also defines its own options.
COMMANDS = {
    "corpus": ("trainer.corpus", "run_corpus"),
    "train": ("trainer.cli", "run_train"),
    "eval": ("trainer.cli", "run_eval"),
}


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Build corpora, train and evaluate models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("corpus", help="convert the music21 scores and MIDI folders into a token corpus")
    corpus = _import("trainer.corpus")
    if corpus is not None and hasattr(corpus, "add_corpus_args"):
        corpus.add_corpus_args(p)
    add_train_args(sub.add_parser("train", help="train or fine-tune a model"))
    add_eval_args(sub.add_parser("eval", help="validation NLL and musical metrics"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = COMMANDS[args.command]
    module = _import(module_name)
    handler = getattr(module, func_name, None) if module is not None else None
    if handler is None:
        print(f"{PROG}: error: '{args.command}' is not available yet "
              f"({module_name}:{func_name} is not built)", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
