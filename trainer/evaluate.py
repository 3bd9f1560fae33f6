"""`eval`: validation NLL and musical metrics of sampled continuations.

NLL: whole held-out pieces (``[BOS] ids [EOS]``, windows of up to
``EVAL_CTX`` tokens), in nats per token and bits per note.
Continuations: 4-bar contexts from held-out pieces, 2 bars sampled with the
REMI grammar mask, the context's meter kept and no EOS (as the app does),
compared with the true 2 bars.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from model.sampling import SamplingParams, make_generator, sample
from model.tokens.grammar import RemiGrammar
from trainer.datasets import (COMPLETION_BARS, PieceSet, completion_windows, is_corpus_dir, load_corpus,
                              load_midi_folder, lm_windows)
from trainer.loop import evaluate_loss
from trainer.metrics import aggregate, continuation_metrics
from trainer.vocab import vocab

EVAL_CTX = 2048  # long windows: the NLL of a piece should see its own past
MAX_NEW_TOKENS = 320  # safety net for 2 bars


def eval_pieces(dirs: list[str]) -> tuple[PieceSet, list[str]]:
    """Held-out pieces: a corpus's val split, or every piece of a MIDI folder."""
    pieces, skipped = PieceSet(), []
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise ValueError(f"not a folder: {d}")
        if is_corpus_dir(path):
            pieces.extend(load_corpus(path, splits=("val",))["val"])
        else:
            p, bad = load_midi_folder(path)
            pieces.extend(p)
            skipped += bad
    if not len(pieces):
        raise ValueError(f"no usable pieces to evaluate in {', '.join(dirs)}")
    return pieces, skipped


def nll(model: nn.Module, pieces: PieceSet, device: torch.device) -> dict[str, float]:
    seqs = pieces.sequences()
    win = lm_windows(seqs, EVAL_CTX)
    nats = evaluate_loss(model, win, device, limit=0, batch=4)
    targets = sum(len(s) - 1 for s in seqs)
    notes = sum(pieces.notes)
    return {"val_nll": nats, "bits_per_note": nats * targets / max(notes, 1) / math.log(2),
            "val_tokens": targets, "val_notes": notes, "val_pieces": len(pieces)}


def _prefill(model: nn.Module, ids: list[int], device: torch.device):
    x = torch.tensor([ids], device=device)
    if hasattr(model, "prefill"):
        return model.prefill(x)
    state = model.init_state(1)
    for t in ids:
        logits, state = model.step(torch.tensor([t], device=device), state)
    return logits, state


@torch.no_grad()
def continue_bars(model: nn.Module, context: list[int], bars: int, params: SamplingParams,
                  gen: torch.Generator, device: torch.device) -> list[int]:
    """Sample until ``bars`` bars are complete (the next Bar) or the safety net."""
    v = vocab()
    grammar = RemiGrammar()
    meter = None  # the context's last TimeSig: continuations keep the meter, as in the app
    for t in context:
        grammar.update(int(t))
        if int(t) in grammar.v.timesig:
            meter = int(t)
    logits, state = _prefill(model, context, device)
    out: list[int] = []
    seen_bars = 0
    while len(out) < MAX_NEW_TOKENS:
        allowed = grammar.allowed_keeping_meter(meter)
        allowed[v.eos] = False  # as in the app: an answer ends by length, not by the model giving up
        mask = torch.from_numpy(allowed).to(logits.device)
        tok = int(sample(logits.float(), params, generator=gen, mask=mask)[0])
        if tok == v.bar:
            seen_bars += 1
            if seen_bars > bars:
                break
        out.append(tok)
        grammar.update(tok)
        if tok == v.eos:
            break
        logits, state = model.step(torch.tensor([tok], device=device), state)
    return out


def musical(model: nn.Module, pieces: PieceSet, device: torch.device, samples: int, seed: int,
            params: SamplingParams) -> dict[str, float]:
    seqs = pieces.sequences()
    win = completion_windows(seqs, 512)
    if not len(win) or samples <= 0:
        return {}
    pick = np.linspace(0, len(win) - 1, min(samples, len(win))).round().astype(int)
    gen = make_generator(seed, "cpu")
    rows, generated, truths = [], [], []
    for i in pick:
        seq = seqs[win.piece[i]]
        context = seq[win.start[i]:win.loss_start[i]].tolist()
        truth = seq[win.loss_start[i]:win.end[i]].tolist()
        g = continue_bars(model, context, COMPLETION_BARS, params, gen, device)
        rows.append(continuation_metrics(context, g, truth, COMPLETION_BARS))
        generated.append(g)
        truths.append(truth)
    out = aggregate(rows, generated, truths)
    out["samples"] = len(pick)
    return out


def evaluate_model(model_path: str, dirs: list[str], device: torch.device, samples: int = 64,
                   seed: int = 0, max_pieces: int = 0,
                   params: SamplingParams | None = None) -> dict[str, Any]:
    from trainer.models import load_any

    t0 = time.monotonic()
    model, side = load_any(model_path, str(device))
    model.float().eval()
    pieces, skipped = eval_pieces(dirs)
    if max_pieces and len(pieces) > max_pieces:
        keep = np.linspace(0, len(pieces) - 1, max_pieces).round().astype(int)
        sub = PieceSet()
        for k in keep:
            sub.add(pieces.ids[k], pieces.names[k], pieces.notes[k])
        pieces = sub
    params = params or SamplingParams(temperature=1.0, top_p=0.95)
    torch.manual_seed(seed)
    res: dict[str, Any] = {"model": str(model_path), "params": model.num_params()}
    res.update(nll(model, pieces, device))
    res["continuation"] = musical(model, pieces, device, samples, seed, params)
    res["sampling"] = {"temperature": params.temperature, "top_p": params.top_p}
    res["skipped"] = skipped
    res["wall_s"] = round(time.monotonic() - t0, 1)
    return res


_ROWS = [
    ("in_key", "in-key ratio", "in_key_truth"),
    ("pitch_class_overlap", "pitch-class histogram overlap", None),
    ("density_ratio", "note density ratio (gen/true)", None),
    ("onset_overlap", "onset-position histogram overlap", None),
    ("pitch_range", "pitch range (semitones)", "pitch_range_truth"),
    ("distinct_2", "distinct pitch 2-grams", "distinct_2_truth"),
    ("distinct_4", "distinct pitch 4-grams", "distinct_4_truth"),
    ("wrong_length_bars", "bars with the wrong length", None),
    ("one_over_f", "1/f slope of the pitch line", "one_over_f_truth"),
]


def format_table(res: dict[str, Any]) -> str:
    lines = [f"model {res['model']} ({res['params'] / 1e6:.2f}M parameters)",
             f"val NLL            {res['val_nll']:.4f} nats/token, {res['bits_per_note']:.3f} bits/note "
             f"({res['val_pieces']} pieces, {res['val_tokens']} tokens)"]
    cont = res.get("continuation") or {}
    if cont:
        lines.append(f"continuations of {cont['samples']} held-out 4-bar contexts "
                     f"(2 bars, T={res['sampling']['temperature']}, top-p={res['sampling']['top_p']}):")
        lines.append(f"  {'metric':<34}{'generated':>10}{'true':>10}")
        for key, label, truth in _ROWS:
            t = f"{cont[truth]:>10.3f}" if truth else f"{'':>10}"
            lines.append(f"  {label:<34}{cont.get(key, float('nan')):>10.3f}{t}")
    return "\n".join(lines)
