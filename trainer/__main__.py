"""`python -m trainer corpus|train|eval`: the trainer as its own program.

The app runs it as a separate process so the live engine stays responsive.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from model.command_runner import run
from trainer.cli_args import add_eval_args, add_train_args

PROG = "python -m trainer"

# command -> "module:function"; the function takes the parsed Namespace and
# returns an exit code.
COMMANDS = {
    "corpus": "trainer.corpus:run_corpus",
    "train": "trainer.cli:run_train",
    "eval": "trainer.cli:run_eval",
}


def build_parser() -> argparse.ArgumentParser:
    from trainer.corpus import add_corpus_args  # the corpus command defines its own options

    parser = argparse.ArgumentParser(prog=PROG, description="Build corpora, train and evaluate models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_corpus_args(sub.add_parser("corpus", help="convert the music21 scores and MIDI folders into a token corpus"))
    add_train_args(sub.add_parser("train", help="train or fine-tune a model"))
    add_eval_args(sub.add_parser("eval", help="validation NLL and musical metrics"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, args.command, COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
