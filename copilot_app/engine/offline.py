"""`composer-copilot continue IN.mid -o OUT.mid`: continue a file, write the result.

The model hears the last ``--context-bars`` bars of the file (prefilled in
parallel mode), then samples ``--variations`` continuations of ``--bars`` bars
in one batch, with the same grammar and time-floor masks as the live engine.
Each output file holds the whole input followed by one continuation (or only
the new bars with ``--only-new``), with the input's tempo and meters.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.atomic_io import atomic_write_many
from model.generation import answer_span, context_window, generate, prime
from copilot_app.engine.dynamics import phrase_dynamics
from copilot_app.engine.model_loader import load_model
from model.sampling import SamplingParams
from model.steering import steering_from_args
from model.style import load_style_for
from model.tokens.config import TICKS_PER_QUARTER, build_tokenizer
from model.tokens.midi_io import encode_piece, grid_score, load_piano_piece, midi_bytes
from model.tokens.performance import GridNote


def output_paths(out: Path, k: int) -> list[Path]:
    if k == 1:
        return [out]
    stem, suffix = out.stem, out.suffix or ".mid"
    return [out.with_name(f"{stem}-{i + 1}{suffix}") for i in range(k)]


def check_outputs(paths: list[Path]) -> None:
    """Refuse a folder given as -o before minutes of work, naming it (not a temp file)."""
    for path in paths:
        if path.is_dir():
            raise ValueError(f"{path}: is a folder; give a file name for -o, e.g. {path / 'continued.mid'}")


def run_continue(args: argparse.Namespace) -> int:
    if args.bars < 1 or args.context_bars < 1 or args.variations < 1:
        raise ValueError("--bars, --context-bars and --variations must be at least 1")
    paths = output_paths(Path(args.output), args.variations)
    check_outputs([Path(args.output), *paths])
    source = load_piano_piece(args.input)
    for warning in source.warnings:
        print(f"composer-copilot: warning: {warning}", file=sys.stderr)
    model, _meta, model_path = load_model(getattr(args, "model", None), getattr(args, "device", "auto"))
    style = load_style_for(args.style, model) if getattr(args, "style", None) else None
    piece = source.piece
    all_tokens = encode_piece(piece)
    context, offset = context_window(all_tokens, args.context_bars)
    vocab = build_tokenizer().vocab
    start_state = style.initial_state(1, next(model.parameters()).device, model.dtype) if style else None
    track, logits, state = prime(model, [vocab["BOS_None"]] + [vocab[t] for t in context], start_state)
    last_end = max(n.start + n.duration for n in piece.notes) - offset
    start, end = answer_span(track, last_end, args.bars)
    num, den = track.meter
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
    steer = steering_from_args(args).resolve(track.decoder.notes)
    rows = generate(model, state, logits, track, start, end, args.variations, params, seed=args.seed,
                    steer=steer)

    # Answers follow the file's dynamics (its level, contour and accents in the
    # meter the answer is in), as live answers follow the player's.
    m_tick, m_num, m_den = max((m for m in piece.meters if m[0] <= start + offset), default=(0, 4, 4))
    bar_ticks = m_num * 4 * TICKS_PER_QUARTER // m_den
    dynamics = phrase_dynamics([(n.start - m_tick, n.velocity) for n in piece.notes if n.start >= m_tick],
                               bar_ticks, fixed=getattr(args, "velocity", None))
    meters = piece.meters
    files: list[tuple[Path, bytes]] = []
    reports: list[str] = []
    for path, notes in zip(paths, rows):
        new = [GridNote(n.start + offset, n.duration, n.pitch,
                        dynamics.velocity(n.start + offset - m_tick, start + offset - m_tick)) for n in notes]
        if args.only_new:
            shift = start + offset
            new = [GridNote(n.start - shift, n.duration, n.pitch, n.velocity) for n in new]
            out_notes, out_meters = new, [(0, num, den)]
        else:
            out_notes, out_meters = list(piece.notes) + new, meters
        score = grid_score(sorted(out_notes), out_meters, source.tempo_qpm, name="Composer Copilot")
        files.append((path, midi_bytes(score)))
        reports.append(f"{path}: {len(new)} new notes in {args.bars} bar(s) "
                       f"(model {model_path.name}{f', style {style.name}' if style else ''}, "
                       f"context {args.context_bars} bar(s))")
    # All takes or none: a full disk after two of three must not leave a set
    # that looks complete but mixes new takes with an earlier run's.
    atomic_write_many(files)
    for line in reports:
        print(line)
    if not any(rows):
        print("composer-copilot: warning: the model answered with silence", file=sys.stderr)
    return 0
