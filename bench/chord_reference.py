"""What the chord-tone and pitch-class targets ask of an answer (not a test).

    python bench/chord_reference.py --data POP909_CORPUS [--model PATH] [--cuts 160] [--json]

On held-out POP909 songs cut at a bar line with at least 16 bars before the
cut, scores answers that need no model against the song's real next 2 bars,
with eval's own metrics (trainer.metrics): the 2 bars starting 2, 4, 8 and 16
bars back played again; a random other 2 bars of the same song; and the best
2 bars of the song (an oracle: it knows the answer). Then, for the model, the
share of its pitch probability that falls on the annotated chord's tones
when it is given the real answer's tokens so far (teacher forcing): whether it
follows a chord once the chord sounds. Writes bench/results/chord_reference.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._report import utc_stamp, write_and_print  # noqa: E402
from model.generation import ContextTrack  # noqa: E402
from trainer.datasets import COMPLETION_BARS, CONTEXT_BARS  # noqa: E402
from trainer.evaluate import bar_lines, cut_points, eval_sets, key_at, repeated_bars  # noqa: E402
from trainer.metrics import aggregate, continuation_metrics  # noqa: E402
from trainer.vocab import vocab  # noqa: E402

BACKS = (2, 4, 8, 16)
HISTORY_BARS = max(BACKS)
KEYS = ("chord_tone", "pitch_class_similarity", "in_key")


def notes_of(ids: np.ndarray) -> list[tuple[int, int]]:
    """(tick, pitch) of every note of a piece, decoded as the app decodes."""
    track, out = ContextTrack.fresh(), []
    for t in ids.tolist():
        note = track.update(t)
        if note is not None:
            out.append((note.start, note.pitch))
    return out


def segment_scores(notes, ticks, j, chords, truth, key, rng) -> tuple[dict, dict]:
    """Metrics of a random other 2 bars of the song, and of the best ones by chord tones."""
    scored = []
    for b in range(len(ticks) - COMPLETION_BARS):
        if abs(b - j) < COMPLETION_BARS:
            continue  # overlaps the answer itself
        seg = repeated_bars(notes, ticks, j, j - b)  # bars b, b+1 moved onto the answer
        if seg:
            scored.append(continuation_metrics(seg, truth, key, chords))
    scored = [s for s in scored if s["chord_tone"] == s["chord_tone"]]
    best = max(scored, key=lambda s: (s["chord_tone"], s["pitch_class_similarity"]))
    return scored[int(rng.integers(len(scored)))], best


@torch.no_grad()
def chord_mass(model, ids, index, ticks, j, chords) -> list[float]:
    """Pitch probability on the annotated chord's tones at each real answer note."""
    v = vocab()
    pitch_ids = np.arange(v.pitch_lo, v.pitch_hi + 1)
    pcs = np.array([v.pitch_of(int(t)) % 12 for t in pitch_ids])
    ctx = [v.bos] + ids[index[j - CONTEXT_BARS]:index[j + COMPLETION_BARS]].tolist()
    logits = model(torch.tensor([ctx]))[0]
    starts = np.array([c[0] for c in chords])
    first = index[j] - index[j - CONTEXT_BARS] + 1
    track, out = ContextTrack.fresh(), []
    for i, t in enumerate(ctx):
        if i >= first and v.pitch_lo <= t <= v.pitch_hi:
            tick = track.decoder.position_tick + ticks[j - CONTEXT_BARS]
            k = int(np.searchsorted(starts, tick, side="right")) - 1
            if k >= 0 and tick < chords[k][1]:
                p = torch.softmax(logits[i - 1, pitch_ids], -1).numpy()
                out.append(float((p * ((chords[k][2] >> pcs) & 1)).sum()))
        track.update(t)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a corpus folder with POP909 (its val split)")
    ap.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.safetensors"))
    ap.add_argument("--cuts", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "chord_reference.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = eval_sets([a.data])[0].get("pop909")
    if data is None:
        raise SystemExit("chord_reference.py: error: no POP909 songs in the corpus's val split")
    from trainer.models import load_any

    model, _ = load_any(a.model, "cpu")
    model.float().eval()
    rng = np.random.default_rng(a.seed)
    rows: dict[str, list[dict]] = {f"repeat {b} back": [] for b in BACKS}
    rows.update({"random other 2 bars": [], "best 2 bars of the song (oracle)": []})
    mass: list[float] = []
    cases = [c for c in cut_points(data.pieces, 4 * a.cuts) if c[1] >= HISTORY_BARS][: a.cuts]
    for p, j in cases:
        ids, ann = data.pieces.ids[p], data.notes[p] or {}
        index, ticks = bar_lines(ids)
        notes, chords = notes_of(ids), ann.get("chords") or []
        truth = [(t, q) for t, q in notes if ticks[j] <= t < ticks[j + COMPLETION_BARS]]
        key = key_at(ann, ticks[j], [q for t, q in notes if ticks[j - CONTEXT_BARS] <= t < ticks[j]])
        for b in BACKS:
            rows[f"repeat {b} back"].append(continuation_metrics(repeated_bars(notes, ticks, j, b), truth, key, chords))
        rand, best = segment_scores(notes, ticks, j, chords, truth, key, rng)
        rows["random other 2 bars"].append(rand)
        rows["best 2 bars of the song (oracle)"].append(best)
        mass += chord_mass(model, ids, index, ticks, j, chords)
    truth_ct = aggregate(rows["repeat 2 back"], [], [])["chord_tone_truth"]
    res = {"cuts": len(cases), "history_bars": HISTORY_BARS, "model": a.model, "date": utc_stamp(),
           "truth_chord_tone": truth_ct, "teacher_forced_chord_mass": float(np.mean(mass)),
           "answers": {name: {k: aggregate(r, [], [])[k] for k in KEYS} for name, r in rows.items()}}
    return write_and_print(res, a.out, a.json, table)


def table(r: dict) -> str:
    lines = [f"{r['cuts']} cuts of held-out POP909 songs with >= {r['history_bars']} bars before them; "
             "answers without a model against the real next 2 bars",
             f"{'answer':<36}{'chord tones':>12}{'pc similarity':>15}{'in key':>8}"]
    for name, m in r["answers"].items():
        lines.append(f"{name:<36}{m['chord_tone']:>12.3f}{m['pitch_class_similarity']:>15.3f}{m['in_key']:>8.3f}")
    lines.append(f"{'the real next 2 bars':<36}{r['truth_chord_tone']:>12.3f}")
    lines.append(f"model's pitch probability on the sounding chord's tones (teacher forcing): "
                 f"{r['teacher_forced_chord_mass']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
