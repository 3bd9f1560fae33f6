"""``python main.py tokenize FILE [--stream]``: print a file's REMI tokens.

Output: one line per bar (starting with its Bar token), then a summary line
``bars: B  notes: N  tokens: T``.  With ``--stream`` the file is replayed
note event by note event, in time order, through the live streaming encoder;
the printed tokens are the streamed ones and the command fails if they differ
from the plain encoding.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .midi_io import MidiError, encode_piece, load_piano_piece
from .streaming import encode_events


def add_tokenize_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a .mid/.midi file")
    parser.add_argument(
        "--stream",
        action="store_true",
        help="replay the file through the streaming encoder (must match the plain tokens)",
    )


def format_bars(tokens: Sequence[str]) -> list[str]:
    lines: list[list[str]] = []
    for tok in tokens:
        if tok.startswith("Bar") or not lines:
            lines.append([])
        lines[-1].append(tok)
    return [" ".join(line) for line in lines]


def run_tokenize(args: argparse.Namespace) -> int:
    try:
        piece = load_piano_piece(args.file)
    except MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for meter in piece.dropped_meters:
        print(f"warning: unsupported time signature {meter} ignored", file=sys.stderr)
    for warning in piece.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    tokens = encode_piece(piece.piece)
    if getattr(args, "stream", False):
        streamed = encode_events(piece.events)
        if streamed != tokens:
            at = next(
                (i for i, (a, b) in enumerate(zip(streamed, tokens, strict=False)) if a != b),
                min(len(streamed), len(tokens)),
            )
            print(
                f"error: streamed tokens differ from the plain encoding at token {at}",
                file=sys.stderr,
            )
            return 1
        tokens = streamed
    for line in format_bars(tokens):
        print(line)
    bars = sum(1 for t in tokens if t.startswith("Bar"))
    print(f"bars: {bars}  notes: {len(piece.piece.notes)}  tokens: {len(tokens)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tokenize", description=__doc__.splitlines()[0])
    add_tokenize_args(parser)
    return run_tokenize(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
