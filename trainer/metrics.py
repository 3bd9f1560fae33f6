"""Musical metrics of a continuation against the true bars, from REMI token ids.

Everything is read off the tokens (Pitch, Position, Bar, TimeSig), so the
metrics see exactly what the model produced, with no decoding heuristics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.vocab import Vocab, vocab

# Krumhansl-Kessler key profiles (major, minor), C first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR_SCALE = np.array([0, 2, 3, 5, 7, 8, 10, 11])  # natural minor + leading tone


@dataclass
class Parsed:
    """What the metrics need from a token sequence."""

    pitches: list[int]  # MIDI pitch per note, in token order
    positions: list[int]  # Position value per onset
    melody: list[int]  # highest pitch per onset (the line the 1/f slope is taken on)
    bars: int  # Bar tokens
    timesigs: list[str]  # TimeSig per bar
    ended: bool  # an EOS was produced


def parse(ids: list[int] | np.ndarray, v: Vocab | None = None) -> Parsed:
    v = v or vocab()
    p = Parsed([], [], [], 0, [], False)
    onset_top: int | None = None
    for i in map(int, ids):
        name = v.names[i]
        if v.pitch_lo <= i <= v.pitch_hi:
            pitch = v.pitch_of(i)
            p.pitches.append(pitch)
            onset_top = pitch if onset_top is None else max(onset_top, pitch)
            continue
        if name.startswith(("Position_", "Bar_", "EOS")) and onset_top is not None:
            p.melody.append(onset_top)
            onset_top = None
        if name.startswith("Position_"):
            p.positions.append(int(name.split("_")[1]))
        elif name == "Bar_None":
            p.bars += 1
        elif name.startswith("TimeSig_"):
            p.timesigs.append(name.split("_")[1])
        elif name == "EOS_None":
            p.ended = True
    if onset_top is not None:
        p.melody.append(onset_top)
    return p


def estimate_key(pitches: list[int]) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor") by Krumhansl-Schmuckler correlation."""
    hist = np.bincount(np.asarray(pitches, dtype=int) % 12, minlength=12).astype(float)
    if hist.sum() == 0:
        return 0, "major"
    best = (-2.0, 0, "major")
    for tonic in range(12):
        for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1]
            if np.isfinite(r) and r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def in_key_ratio(pitches: list[int], key: tuple[int, str]) -> float:
    if not pitches:
        return float("nan")
    scale = (key[0] + (_MAJOR_SCALE if key[1] == "major" else _MINOR_SCALE)) % 12
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


def one_over_f_slope(seq: list[int]) -> float:
    """Slope of log power vs log frequency of the mean-removed sequence.

    Voss & Clarke found music near -1 ("1/f"); white noise is 0, a random
    walk -2. NaN for sequences too short to fit.
    """
    x = np.asarray(seq, dtype=float)
    if len(x) < 16 or np.allclose(x, x[0]):
        return float("nan")
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    f = np.arange(len(power))
    keep = (f > 0) & (power > 0)
    if keep.sum() < 4:
        return float("nan")
    return float(np.polyfit(np.log(f[keep]), np.log(power[keep]), 1)[0])


def continuation_metrics(context: list[int], generated: list[int], truth: list[int],
                         bars: int = 2) -> dict[str, float]:
    """Metrics of one continuation; ``truth`` is the real next ``bars`` bars."""
    c, g, t = parse(context), parse(generated), parse(truth)
    key = estimate_key(c.pitches)
    meter = c.timesigs[-1] if c.timesigs else None
    wrong = sum(1 for ts in g.timesigs if meter is not None and ts != meter)
    wrong += max(0, bars - g.bars)  # bars that never came (EOS or token limit)
    density_truth = len(t.pitches) / max(t.bars, 1)
    return {
        "in_key": in_key_ratio(g.pitches, key),
        "in_key_truth": in_key_ratio(t.pitches, key),
        "pitch_class_overlap": histogram_overlap(g.pitches, t.pitches, 12),
        "density_ratio": (len(g.pitches) / max(g.bars, 1)) / density_truth if density_truth else float("nan"),
        "onset_overlap": histogram_overlap(g.positions, t.positions, 144),
        "pitch_range": float(max(g.pitches) - min(g.pitches)) if g.pitches else float("nan"),
        "pitch_range_truth": float(max(t.pitches) - min(t.pitches)) if t.pitches else float("nan"),
        "wrong_length_bars": wrong / bars,
        "one_over_f": one_over_f_slope(c.melody + g.melody),
        "one_over_f_truth": one_over_f_slope(c.melody + t.melody),
    }


def aggregate(rows: list[dict[str, float]], generated: list[list[int]],
              truths: list[list[int]]) -> dict[str, float]:
    """Means over samples (NaNs skipped) plus pooled n-gram diversity of pitches."""
    out: dict[str, float] = {}
    for k in rows[0] if rows else []:
        vals = np.array([r[k] for r in rows], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[k] = float(vals.mean()) if len(vals) else float("nan")
    gp = [parse(x).pitches for x in generated]
    tp = [parse(x).pitches for x in truths]
    for n in (2, 4):
        out[f"distinct_{n}"] = distinct_ngrams(gp, n)
        out[f"distinct_{n}_truth"] = distinct_ngrams(tp, n)
    return out
