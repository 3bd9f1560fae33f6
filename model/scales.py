"""Keys and scales: names, pitch-class sets, and the key a phrase suggests.

A key is written "<tonic> <scale>", e.g. "D dorian" or "F# minor pentatonic";
the steering controls, the CLI flags and the session file all use that text.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ALIASES = {"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "B#": 0, "E#": 5, "Fb": 4}

# Pitch classes above the tonic. "minor" keeps the leading tone beside the
# natural minor: the dominant chord of a minor key needs it (eval's in-key
# measure uses the same set).
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10, 11),
    "natural minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "chromatic": tuple(range(12)),
}

# Krumhansl-Kessler key profiles (major, minor), C first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def tonic_of(name: str) -> int:
    """Pitch class of a tonic name ("C", "F#", "Bb", ...)."""
    name = name.strip()
    if name[:1].islower():
        name = name[:1].upper() + name[1:]
    if name in TONICS:
        return TONICS.index(name)
    if name in _ALIASES:
        return _ALIASES[name]
    raise ValueError(f"unknown key {name!r} (use C, C#, Db, ... B)")


def parse_key(text: str) -> tuple[int, str]:
    """(tonic pitch class, scale name) of "<tonic> <scale>"; the scale defaults to major."""
    tonic, _, scale = text.strip().partition(" ")
    scale = " ".join(scale.lower().split()) or "major"
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r} (one of: {', '.join(SCALES)})")
    return tonic_of(tonic), scale


def key_name(tonic: int, scale: str) -> str:
    return f"{TONICS[tonic % 12]} {scale}"


def scale_pitch_classes(tonic: int, scale: str) -> frozenset[int]:
    return frozenset((tonic + step) % 12 for step in SCALES[scale])


def estimate_key(pitches: Sequence[int]) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor") by Krumhansl-Schmuckler correlation
    of the pitch-class histogram with the 24 key profiles (ties: the first of
    C major, C minor, C# major, ...)."""
    hist = np.bincount(np.asarray(pitches, dtype=int) % 12, minlength=12).astype(float)
    if hist.sum() == 0:
        return 0, "major"
    # One matrix product for all 24 keys: the answer is computed at every
    # trigger with "auto" on, inside the time to the first note.
    h = hist - hist.mean()
    norm = np.sqrt((h * h).sum())
    if norm == 0:
        return 0, "major"
    r = _KEY_PROFILES @ h / norm
    best = int(np.argmax(r))
    return best // 2, ("major", "minor")[best % 2]


def _centred_profiles() -> np.ndarray:
    rows = []
    for tonic in range(12):
        for profile in (_MAJOR_PROFILE, _MINOR_PROFILE):
            p = np.roll(profile, tonic) - profile.mean()
            rows.append(p / np.sqrt((p * p).sum()))
    return np.array(rows)


_KEY_PROFILES = _centred_profiles()  # [24, 12], rows C major, C minor, C# major, ...
