"""`eval`: validation NLL and musical metrics of continuations, per source.

NLL: whole held-out pieces (``[BOS] ids [EOS]``, windows of up to
``EVAL_CTX`` tokens), in nats per token and bits per note.

Continuations are made by the app's own generation code
(``model.generation``: the same prefill, grammar and time-floor masks, meter
rule and stop rule as the live engine and ``continue``) at the app's default
temperature, top-p and steering (the auto register): for held-out pieces cut at a bar line, the model hears
``[BOS]`` and the 4 bars before the cut and answers 2 bars, which are
compared with the piece's real next 2 bars (chords and keys from the
annotations where the corpus has them, e.g. POP909).

Beside the model, the same metrics for two answers that need no model: the
heard bars played again (the last 2, and the 2 from 4 bars back, moved to
the answer's bars). They are real music of the same song at the same
moment, so they show how much of each metric a plausible answer gets
without knowing the song's future: the reference the targets are read
against.
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from model.generation import ContextTrack, generate, prime
from model.sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, SamplingParams
from model.steering import Steering
from trainer.datasets import (COMPLETION_BARS, CONTEXT_BARS, PieceSet, is_corpus_dir, load_corpus,
                              load_midi_folder, lm_windows)
from trainer.loop import evaluate_loss
from trainer.metrics import aggregate, continuation_metrics, estimate_key
from trainer.vocab import vocab

EVAL_CTX = 2048  # long windows: the NLL of a piece should see its own past


@dataclass
class EvalSet:
    """Held-out pieces of one source, with their annotations where known."""

    pieces: PieceSet = field(default_factory=PieceSet)
    notes: list[dict | None] = field(default_factory=list)  # {"chords", "keys"} per piece

    def add(self, ids: np.ndarray, name: str, n_notes: int, notes: dict | None) -> None:
        self.pieces.add(ids, name, n_notes)
        self.notes.append(notes)


def read_annotations(corpus: Path) -> dict[str, dict]:
    path = corpus / "annotations.jsonl"
    if not path.exists():
        return {}
    out = {}
    with path.open() as fh:
        for line in fh:
            entry = json.loads(line)
            out[entry.pop("id")] = entry
    return out


def source_group(source: str) -> str:
    """What eval reports a corpus source under: POP909 and each MIDI folder on
    their own, the music21 corpus's folders (bach, oneills1850, ...) as one."""
    return source if source == "pop909" or source.startswith("midi:") else "music21"


def eval_sets(dirs: list[str]) -> tuple[dict[str, EvalSet], list[str]]:
    """Held-out pieces by source: a corpus's val split, or every piece of a MIDI
    folder. Files that cannot be used are skipped with their name and reason."""
    sets: dict[str, EvalSet] = defaultdict(EvalSet)
    skipped: list[str] = []
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise ValueError(f"not a folder: {d}")
        if is_corpus_dir(path):
            notes = read_annotations(path)
            val = load_corpus(path, splits=("val",))["val"]
            for ids, name, n in zip(val.ids, val.names, val.notes):
                sets[source_group(name.split("/")[0])].add(ids, name, n, notes.get(name))
        else:
            pieces, bad = load_midi_folder(path)
            skipped += bad
            for ids, name, n in zip(pieces.ids, pieces.names, pieces.notes):
                sets[f"midi:{path.name}"].add(ids, name, n, None)
    if not sets:
        raise ValueError(f"no usable pieces to evaluate in {', '.join(dirs)}")
    return dict(sorted(sets.items())), skipped


def nll(model: nn.Module, pieces: PieceSet, device: torch.device) -> dict[str, float]:
    seqs = pieces.sequences()
    win = lm_windows(seqs, EVAL_CTX)
    nats = evaluate_loss(model, win, device, limit=0, batch=4)
    targets = sum(len(s) - 1 for s in seqs)
    notes = sum(pieces.notes)
    return {"val_nll": nats, "bits_per_note": nats * targets / max(notes, 1) / math.log(2),
            "val_tokens": targets, "val_notes": notes, "val_pieces": len(pieces)}


def bar_lines(ids: np.ndarray) -> tuple[list[int], list[int]]:
    """(token index, tick) of every Bar of a piece, read off the tokens."""
    track = ContextTrack.fresh()
    index, ticks = [], []
    for i, t in enumerate(ids.tolist()):
        track.update(t)
        if t == track.grammar.v.bar:
            index.append(i)
            ticks.append(track.bar_start_tick)
    return index, ticks


def cut_points(pieces: PieceSet, samples: int) -> list[tuple[int, int]]:
    """(piece, bar) pairs spread evenly over every bar where 4 bars of context,
    2 bars of truth and the bar line after them exist."""
    cases = []
    for p, ids in enumerate(pieces.ids):
        n_bars = int((ids == vocab().bar).sum())
        cases += [(p, j) for j in range(CONTEXT_BARS, n_bars - COMPLETION_BARS)]  # bar j+2 exists
    if not cases or samples <= 0:
        return []
    pick = np.linspace(0, len(cases) - 1, min(samples, len(cases))).round().astype(int)
    return [cases[i] for i in pick]


@dataclass
class Case:
    """One continuation and the truth it is compared with (ticks of the piece)."""

    generated: list[tuple[int, int]]
    truth: list[tuple[int, int]]
    context_pitches: list[int]
    wrong_bars: int
    cut_tick: int
    repeats: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


# The answers without a model: (name, how many bars back the repeated 2 bars start).
REPEATS = (("repeat_last_2", 2), ("repeat_4_back", 4))


def repeated_bars(notes: list[tuple[int, int]], ticks: list[int], j: int, back: int) -> list[tuple[int, int]]:
    """The 2 bars starting ``back`` bars before bar ``j``, moved to start at bar
    ``j``, cut at the end of the answer (bars of other lengths stay inside)."""
    shift, end = ticks[j] - ticks[j - back], ticks[j + COMPLETION_BARS]
    lo, hi = ticks[j - back], ticks[j - back + COMPLETION_BARS]
    return [(t + shift, p) for t, p in notes if lo <= t < hi and t + shift < end]


def continue_case(model: nn.Module, ids: np.ndarray, bars: tuple[list[int], list[int]], j: int,
                  params: SamplingParams, seed: int) -> Case:
    """Answer the 4 bars before bar ``j`` with 2 bars, through the app's generator."""
    index, ticks = bars
    context = [vocab().bos] + ids[index[j - CONTEXT_BARS]:index[j]].tolist()
    truth_ids = ids[index[j]:index[j + COMPLETION_BARS]].tolist()
    origin = ticks[j - CONTEXT_BARS]
    start, end = ticks[j] - origin, ticks[j + COMPLETION_BARS] - origin
    track, logits, state = prime(model, context)
    replay = track.fork()
    truth = [n for n in (replay.update(t) for t in truth_ids) if n is not None]
    tokens: list[list[int]] = []
    # The app's default steering too (the auto register around the heard bars).
    steer = Steering().resolve(track.decoder.notes)
    rows = generate(model, state, logits, track, start, end, 1, params, seed=seed, tokens_out=tokens, steer=steer)
    # Bars of the wrong length: a TimeSig other than the context's, or bars never reached.
    out = track.fork()
    for t in tokens[0]:
        out.update(t)
    v = track.grammar.v
    wrong = sum(1 for t in tokens[0] if t in v.timesig and t != track.timesig_id)
    if out.decoder.position_tick < end:
        wrong += COMPLETION_BARS
    ctx_pitches = [v.pitch[t] for t in context if t in v.pitch]
    heard = [(n.start + origin, n.pitch) for n in track.decoder.notes]  # the context's notes
    return Case([(n.start + origin, n.pitch) for n in rows[0]],
                [(n.start + origin, n.pitch) for n in truth if start <= n.start < end],
                ctx_pitches, min(wrong, COMPLETION_BARS), ticks[j],
                {name: repeated_bars(heard, ticks, j, back) for name, back in REPEATS})


def key_at(notes: dict | None, tick: int, pitches: list[int]) -> tuple[int, str]:
    """The annotated key at ``tick``, or the key the context's pitches suggest."""
    for start, end, tonic, mode in (notes or {}).get("keys", []):
        if start <= tick < end:
            return int(tonic), str(mode)
    return estimate_key(pitches)


@torch.no_grad()
def musical(model: nn.Module, data: EvalSet, samples: int, seed: int,
            params: SamplingParams, skipped: list[str]) -> dict[str, float]:
    """Continuation metrics; a piece whose tokens cannot be continued is named
    in ``skipped`` with the reason, and the others are still scored."""
    rows, gen_lines, true_lines = [], [], []
    reference: dict[str, list[dict[str, float]]] = {name: [] for name, _ in REPEATS}
    bars_cache: dict[int, tuple[list[int], list[int]]] = {}
    bad: set[int] = set()
    for n, (p, j) in enumerate(cut_points(data.pieces, samples)):
        ids = data.pieces.ids[p]
        if p in bad:
            continue
        try:
            if p not in bars_cache:
                bars_cache[p] = bar_lines(ids)
            case = continue_case(model, ids, bars_cache[p], j, params, seed + n)
        except ValueError as exc:  # GrammarError and friends: a token stream we cannot follow
            bad.add(p)
            skipped.append(f"{data.pieces.names[p]}: cannot be continued ({exc})")
            continue
        notes = data.notes[p]
        key = key_at(notes, case.cut_tick, case.context_pitches)
        chords = (notes or {}).get("chords")
        rows.append(continuation_metrics(case.generated, case.truth, key, chords,
                                         case.wrong_bars, COMPLETION_BARS))
        for name, repeat in case.repeats.items():
            reference[name].append(continuation_metrics(repeat, case.truth, key, chords))
        gen_lines.append([p for _, p in case.generated])
        true_lines.append([p for _, p in case.truth])
    if not rows:
        return {}
    out = aggregate(rows, gen_lines, true_lines)
    out["samples"] = len(rows)
    out["reference"] = {name: {k: v for k, v in aggregate(r, [], []).items() if not k.startswith("distinct")}
                        for name, r in reference.items()}
    return out


def evaluate_model(model_path: str, dirs: list[str], device: torch.device, samples: int = 64,
                   seed: int = 0, max_pieces: int = 0,
                   params: SamplingParams | None = None) -> dict[str, Any]:
    """NLL and continuation metrics per source, plus NLL over all pieces."""
    from trainer.models import load_any

    t0 = time.monotonic()
    model, _side = load_any(model_path, str(device))
    model.float().eval()
    stepper: Any = model
    if not hasattr(model, "prefill"):  # a baseline: the same generator, through its step()
        from trainer.baselines.common import AsRecurrent

        stepper = AsRecurrent(model)
    sets, skipped = eval_sets(dirs)
    params = params or SamplingParams(temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P)
    torch.manual_seed(seed)
    res: dict[str, Any] = {"model": str(model_path), "params": model.num_params(), "sources": {}}
    total_nats = total_targets = total_notes = total_pieces = 0.0
    for name, data in sets.items():
        pieces = _subset(data, max_pieces)
        r = nll(model, pieces.pieces, device)
        r["continuation"] = musical(stepper, pieces, samples, seed, params, skipped)
        res["sources"][name] = r
        total_nats += r["val_nll"] * r["val_tokens"]
        total_targets += r["val_tokens"]
        total_notes += r["val_notes"]
        total_pieces += r["val_pieces"]
    res.update(val_nll=total_nats / total_targets,
               bits_per_note=total_nats / max(total_notes, 1) / math.log(2),
               val_tokens=int(total_targets), val_pieces=int(total_pieces))
    res["sampling"] = {"temperature": params.temperature, "top_p": params.top_p}
    res["skipped"] = skipped
    res["wall_s"] = round(time.monotonic() - t0, 1)
    return res


def _subset(data: EvalSet, max_pieces: int) -> EvalSet:
    if not max_pieces or len(data.pieces) <= max_pieces:
        return data
    out = EvalSet()
    for k in np.linspace(0, len(data.pieces) - 1, max_pieces).round().astype(int):
        out.add(data.pieces.ids[k], data.pieces.names[k], data.pieces.notes[k], data.notes[k])
    return out


_ROWS = [
    ("chord_tone", "chord-tone ratio (annotated chords)", "chord_tone_truth"),
    ("in_key", "in-key ratio", "in_key_truth"),
    ("density_ratio", "note density ratio gen/true (median)", None),
    ("near_silent", "near-silent answers (< 25% of notes)", None),
    ("notes_per_onset", "notes per onset", "notes_per_onset_truth"),
    ("pitch_class_similarity", "pitch-class histogram similarity", None),
    ("median_pitch_distance", "median pitch distance (semitones)", None),
    ("pitch_range", "pitch range (semitones)", "pitch_range_truth"),
    ("distinct_4", "distinct pitch 4-grams", "distinct_4_truth"),
    ("wrong_length_bars", "bars with the wrong length", None),
]


_REF_LABELS = {"repeat_last_2": "repeat last 2", "repeat_4_back": "repeat 4 back"}


def format_table(res: dict[str, Any]) -> str:
    lines = [f"model {res['model']} ({res['params'] / 1e6:.2f}M parameters)",
             f"all sources: val NLL {res['val_nll']:.4f} nats/token, {res['bits_per_note']:.3f} bits/note "
             f"({res['val_pieces']} pieces, {res['val_tokens']} tokens)"]
    for name, r in res["sources"].items():
        lines.append(f"{name}: val NLL {r['val_nll']:.4f} nats/token, {r['bits_per_note']:.3f} bits/note "
                     f"({r['val_pieces']} pieces, {r['val_tokens']} tokens)")
        cont = r.get("continuation") or {}
        if not cont:
            continue
        lines.append(f"  continuations of {cont['samples']} held-out 4-bar contexts "
                     f"(2 bars, T={res['sampling']['temperature']}, top-p={res['sampling']['top_p']}):")
        ref = cont.get("reference") or {}
        lines.append(f"    {'metric':<40}{'generated':>10}{'true':>10}"
                     + "".join(f"{_REF_LABELS[name]:>14}" for name in ref))
        for key, label, truth in _ROWS:
            value = cont.get(key, float("nan"))
            if key == "chord_tone" and not math.isfinite(value):
                continue  # no chord annotations in this source
            t = f"{cont.get(truth, float('nan')):>10.3f}" if truth else f"{'':>10}"
            r = "".join(f"{ref[name][key]:>14.3f}" if key in ref[name] else f"{'':>14}" for name in ref)
            lines.append(f"    {label:<40}{value:>10.3f}{t}{r}")
        if ref:
            lines.append("    (repeat: the heard bars played again as the answer, no model)")
    return "\n".join(lines)
