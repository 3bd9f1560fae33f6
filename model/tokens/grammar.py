"""REMI grammar: which token may come next, as a mask for the sampler.

The language is what ``StreamingEncoder``/miditok produce for this config::

    [BOS] ( Bar TimeSig ( Position ( Pitch Duration )+ )* )* [EOS PAD*]

with, inside a bar, Positions strictly increasing and below the bar's length
(12 positions a beat, so ``numerator * 12``), and inside one Position the
notes in canonical order: durations non-decreasing, pitches increasing among
equal durations, no pitch twice.  Keeping generated sequences canonical keeps
them in the training distribution and makes every sampled sequence decode to
exactly the notes the streaming decoder plays.

Usage while sampling::

    g = RemiGrammar()
    for tok in prompt_ids: g.update(tok)
    logits[~g.allowed_torch(logits.device)] = -inf; tok = sample(logits)
    g.update(tok)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np

from .config import BEAT_RES, build_tokenizer

_POS_PER_BEAT = max(BEAT_RES.values())
# Parser states: what the last token was.
(_START, _AFTER_BOS, _AFTER_BAR, _AFTER_TIMESIG, _AFTER_POSITION, _AFTER_PITCH,
 _AFTER_DURATION, _ENDED) = range(8)


class GrammarError(ValueError):
    """A token that may not follow the sequence so far."""


class _Vocab:
    """Token ids grouped by role, built once from the app's tokenizer."""

    def __init__(self) -> None:
        vocab = build_tokenizer().vocab
        self.size = len(vocab)
        self.names = {i: t for t, i in vocab.items()}
        self.pad, self.bos, self.eos = vocab["PAD_None"], vocab["BOS_None"], vocab["EOS_None"]
        self.bar = vocab["Bar_None"]
        self.timesig: dict[int, tuple[int, int]] = {}
        self.position: dict[int, int] = {}
        self.pitch: dict[int, int] = {}
        durations: list[tuple[tuple[int, int, int], int]] = []
        for tok, i in vocab.items():
            kind, _, value = tok.partition("_")
            if kind == "TimeSig":
                num, den = value.split("/")
                self.timesig[i] = (int(num), int(den))
            elif kind == "Position":
                self.position[i] = int(value)
            elif kind == "Pitch":
                self.pitch[i] = int(value)
            elif kind == "Duration":
                beat, pos, res = (int(x) for x in value.split("."))
                # Length in 1/96 beat (a multiple of every resolution) orders them.
                durations.append(((beat * res + pos) * 96 // res, i))
        # Rank = order of length, the same under every time signature.
        self.duration_rank = {i: r for r, (_, i) in enumerate(sorted(durations))}
        self.max_rank = len(durations) - 1
        self.pitch_ids = np.array(sorted(self.pitch), dtype=np.int64)
        self.pitch_values = np.array([self.pitch[i] for i in self.pitch_ids])
        self.pitch_index = {int(p): k for k, p in enumerate(self.pitch_values)}  # pitch -> slot in pitch_ids
        self.dur_ids = np.array(sorted(self.duration_rank, key=self.duration_rank.get))
        self.pos_ids = np.array(sorted(self.position, key=self.position.get))

    def mask(self, ids: Iterable[int]) -> np.ndarray:
        m = np.zeros(self.size, dtype=bool)
        m[list(ids)] = True
        return m


_VOCAB: _Vocab | None = None


def _vocab() -> _Vocab:
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = _Vocab()
    return _VOCAB


def token_roles() -> _Vocab:
    """The token ids by role (Bar, Positions, Pitches, ...), built once and shared."""
    return _vocab()


class RemiGrammar:
    """Grammar state, advanced token by token (ids or token strings)."""

    def __init__(self) -> None:
        self.v = _vocab()
        self._base = {
            _START: self.v.mask([self.v.bos, self.v.bar]),
            _AFTER_BOS: self.v.mask([self.v.bar]),
            _AFTER_BAR: self.v.mask(self.v.timesig),
            _ENDED: self.v.mask([self.v.pad]),
        }
        self.state = _START
        self.bar_positions = 4 * _POS_PER_BEAT
        self.position = -1
        self.last_note: tuple[int, int] | None = None  # (duration rank, pitch)
        self.pitches_here: set[int] = set()
        self.pitch: int | None = None
        self._allowed: np.ndarray | None = None  # cache of allowed() for this state

    # -- queries -------------------------------------------------------------
    def allowed(self) -> np.ndarray:
        """Bool array over the vocabulary: True where the token may come next."""
        # Cached per state: a sampler asks for the mask and update() checks the
        # token against it again, once per token of a live take.
        if self._allowed is None:
            self._allowed = self._compute_allowed()
        return self._allowed.copy()

    def _compute_allowed(self) -> np.ndarray:
        s, v = self.state, self.v
        if s in self._base:
            return self._base[s]
        m = np.zeros(v.size, dtype=bool)
        if s in (_AFTER_TIMESIG, _AFTER_DURATION):
            m[v.pos_ids[self.position + 1 : self.bar_positions]] = True
            m[v.bar] = True
        if s == _AFTER_DURATION:
            m[v.eos] = True
        if s in (_AFTER_POSITION, _AFTER_DURATION):
            ok = np.ones(len(v.pitch_values), dtype=bool)
            for p in self.pitches_here:  # a pitch sounds once per position
                ok[v.pitch_index[p]] = False
            if self.last_note is not None and self.last_note[0] == v.max_rank:
                ok &= v.pitch_values > self.last_note[1]
            m[v.pitch_ids[ok]] = True
        if s == _AFTER_PITCH:
            lo = 0
            if self.last_note is not None:
                rank, pitch = self.last_note
                lo = rank if self.pitch > pitch else rank + 1
            m[v.dur_ids[lo:]] = True
        return m

    def allowed_keeping_meter(self, timesig: int | None) -> np.ndarray:
        """allowed(), with the TimeSig after a Bar pinned to the id ``timesig``:
        a continuation keeps the player's meter instead of switching it."""
        m = self.allowed()
        if timesig is not None and self.state == _AFTER_BAR and m[timesig]:
            m[:] = False
            m[timesig] = True
        return m

    def allowed_torch(self, device=None):  # -> torch.BoolTensor
        import torch

        return torch.from_numpy(self.allowed()).to(device)

    def fork(self) -> "RemiGrammar":
        """An independent copy of the state; the vocabulary tables are shared
        (read-only), which makes forking K rows for a take cheap."""
        twin = copy.copy(self)
        twin.pitches_here = set(self.pitches_here)
        return twin

    def is_complete(self) -> bool:
        """True where the sequence may end (nothing half-written)."""
        return self.state in (_START, _AFTER_BOS, _AFTER_DURATION, _ENDED)

    # -- updates -------------------------------------------------------------
    def update(self, token: int | str) -> None:
        tid = self._id(token)
        if self._allowed is None:
            self._allowed = self._compute_allowed()
        if not 0 <= tid < self.v.size or not self._allowed[tid]:
            raise GrammarError(f"token {self.v.names[tid] if 0 <= tid < self.v.size else tid} may not follow here")
        self._allowed = None
        v = self.v
        if tid == v.bos:
            self.state = _AFTER_BOS
        elif tid in (v.eos, v.pad):
            self.state = _ENDED
        elif tid == v.bar:
            self.state, self.position = _AFTER_BAR, -1
            self._new_position()
        elif tid in v.timesig:
            num, _ = v.timesig[tid]
            self.bar_positions = num * _POS_PER_BEAT
            self.state = _AFTER_TIMESIG
        elif tid in v.position:
            self.position = v.position[tid]
            self._new_position()
            self.state = _AFTER_POSITION
        elif tid in v.pitch:
            self.pitch = v.pitch[tid]
            self.state = _AFTER_PITCH
        else:  # Duration
            self.last_note = (v.duration_rank[tid], self.pitch)
            self.pitches_here.add(self.pitch)
            self.state = _AFTER_DURATION

    def accepts(self, tokens: Iterable[int | str]) -> bool:
        """Whether ``tokens`` is a complete sentence from this state on."""
        try:
            for t in tokens:
                self.update(t)
        except GrammarError:
            return False
        return self.is_complete()

    def _new_position(self) -> None:
        self.last_note, self.pitch = None, None
        self.pitches_here = set()

    def _id(self, token: int | str) -> int:
        if isinstance(token, str):
            return build_tokenizer().vocab[token]
        return int(token)
