"""Musical metrics of a continuation against the true bars.

Notes come as (tick, pitch) pairs on one timeline: what the app's generator
decoded from the sampled tokens (what a user hears) and the piece's real
notes, so chords annotated on the piece's grid line up with both.
"""
from __future__ import annotations

import numpy as np

from model.scales import SCALES, estimate_key  # noqa: F401 -- estimate_key re-exported for eval


def in_key_ratio(pitches: list[int], key: tuple[int, str]) -> float:
    if not pitches:
        return float("nan")
    # Minor: the natural minor and the leading tone (SCALES["minor"]).
    scale = (key[0] + np.array(SCALES["major" if key[1] == "major" else "minor"])) % 12
    return float(np.isin(np.asarray(pitches) % 12, scale).mean())


def histogram_overlap(a: list[int], b: list[int], bins: int) -> float:
    """Sum of the bin-wise minimum of two normalised histograms (1 = identical)."""
    if not a or not b:
        return float("nan")
    ha = np.bincount(np.asarray(a) % bins if bins == 12 else np.asarray(a), minlength=bins)[:bins] / len(a)
    hb = np.bincount(np.asarray(b) % bins if bins == 12 else np.asarray(b), minlength=bins)[:bins] / len(b)
    return float(np.minimum(ha, hb).sum())


def distinct_ngrams(seqs: list[list[int]], n: int) -> float:
    """Distinct n-grams / all n-grams over the sequences (1 = never repeats)."""
    grams = [tuple(s[i:i + n]) for s in seqs for i in range(len(s) - n + 1)]
    return float(len(set(grams)) / len(grams)) if grams else float("nan")


def mode_is_major(mode: str) -> bool:
    """Keys come as "major"/"minor" (estimated) or "maj"/"min" (POP909's labels)."""
    return mode.startswith("maj")


def chord_tone_ratio(notes: list[tuple[int, int]], chords: list[list[int]]) -> float:
    """Share of (tick, pitch) notes whose pitch class is in the annotated chord
    sounding at their onset; notes where no chord is annotated do not count."""
    if not chords:
        return float("nan")
    starts = np.array([c[0] for c in chords])
    hits = total = 0
    for tick, pitch in notes:
        i = int(np.searchsorted(starts, tick, side="right")) - 1
        if i < 0 or tick >= chords[i][1]:
            continue
        total += 1
        hits += bool(chords[i][2] >> (pitch % 12) & 1)
    return hits / total if total else float("nan")


def notes_per_onset(onsets: list[int]) -> float:
    """Mean number of notes struck together (1 = a single line)."""
    return len(onsets) / len(set(onsets)) if onsets else float("nan")


def continuation_metrics(generated: list[tuple[int, int]], truth: list[tuple[int, int]],
                         key: tuple[int, str], chords: list[list[int]] | None = None,
                         wrong_bars: int = 0, bars: int = 2) -> dict[str, float]:
    """Metrics of one continuation: ``generated`` and ``truth`` (the real next
    ``bars`` bars) as (tick, pitch) notes on one timeline, the tick of the
    piece when ``chords`` (annotated ``[start, end, pitch-class mask]``) are given."""
    gp, tp = [p for _, p in generated], [p for _, p in truth]
    mode = "major" if mode_is_major(key[1]) else "minor"
    return {
        "chord_tone": chord_tone_ratio(generated, chords or []),
        "chord_tone_truth": chord_tone_ratio(truth, chords or []),
        "in_key": in_key_ratio(gp, (key[0], mode)),
        "in_key_truth": in_key_ratio(tp, (key[0], mode)),
        "density_ratio": len(gp) / len(tp) if tp else float("nan"),
        "notes_per_onset": notes_per_onset([t for t, _ in generated]),
        "notes_per_onset_truth": notes_per_onset([t for t, _ in truth]),
        "pitch_class_similarity": histogram_overlap(gp, tp, 12),
        "median_pitch_distance": (abs(float(np.median(gp)) - float(np.median(tp)))
                                  if gp and tp else float("nan")),
        "near_silent": float(len(gp) < 0.25 * len(tp)) if tp else float("nan"),
        "wrong_length_bars": wrong_bars / bars,
        "pitch_range": float(max(gp) - min(gp)) if gp else float("nan"),
        "pitch_range_truth": float(max(tp) - min(tp)) if tp else float("nan"),
    }


# Averaged over samples, except these (a ratio's median is the honest middle).
MEDIAN_KEYS = ("density_ratio",)


def aggregate(rows: list[dict[str, float]], generated: list[list[int]],
              truths: list[list[int]]) -> dict[str, float]:
    """Means over samples (NaNs skipped; medians for ``MEDIAN_KEYS``) plus pooled
    n-gram diversity of the pitch lines."""
    out: dict[str, float] = {}
    for k in rows[0] if rows else []:
        vals = np.array([r[k] for r in rows], dtype=float)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            out[k] = float("nan")
        else:
            out[k] = float(np.median(vals) if k in MEDIAN_KEYS else vals.mean())
    for n in (2, 4):
        out[f"distinct_{n}"] = distinct_ngrams(generated, n)
        out[f"distinct_{n}_truth"] = distinct_ngrams(truths, n)
    return out
