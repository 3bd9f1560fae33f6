"""Token ids the trainer needs by role (special tokens, bars, pitches).

Built from the app's tokenizer once, so the trainer never hard-codes ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.tokens.config import PITCH_RANGE, build_tokenizer


@dataclass(frozen=True)
class Vocab:
    size: int
    pad: int
    bos: int
    eos: int
    bar: int
    pitch_lo: int  # id of Pitch_<PITCH_RANGE[0]>
    pitch_hi: int  # id of Pitch_<PITCH_RANGE[1]>
    names: tuple[str, ...]  # id -> token string

    def is_pitch(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= self.pitch_lo) & (ids <= self.pitch_hi)

    def pitch_of(self, token_id: int) -> int:
        """MIDI pitch of a Pitch token id."""
        return PITCH_RANGE[0] + token_id - self.pitch_lo


@lru_cache(maxsize=1)
def vocab() -> Vocab:
    v = build_tokenizer().vocab
    lo, hi = v[f"Pitch_{PITCH_RANGE[0]}"], v[f"Pitch_{PITCH_RANGE[1]}"]
    # Transposition adds a constant to Pitch ids: that needs them contiguous.
    if hi - lo != PITCH_RANGE[1] - PITCH_RANGE[0]:
        raise RuntimeError("Pitch token ids are not contiguous; transposition needs them so")
    names = [""] * len(v)
    for tok, i in v.items():
        names[i] = tok
    return Vocab(len(v), v["PAD_None"], v["BOS_None"], v["EOS_None"], v["Bar_None"], lo, hi,
                 tuple(names))
