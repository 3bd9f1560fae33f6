"""Training data: pieces from a token corpus or a MIDI folder, cut into windows.

Two kinds of window over a piece's sequence ``[BOS] ids [EOS]``:

* language-model windows: ``ctx_len + 1`` tokens, stride ``ctx_len``, loss on
  every target (the last one of a piece may be shorter);
* completion windows: 4 bars of context then 2 bars of completion, sliding by
  one bar; the loss is taken only on the completion tokens, and the model's
  ``target_index`` runs the LM head only there ("physical slicing").

A window is 4 integers (piece, start, end, loss_start) in sequence
coordinates: inputs ``seq[start:end-1]``, targets ``seq[start+1:end]``, and a
target at sequence index ``i`` counts when ``i >= loss_start``.

Batches are a pure function of (seed, step): the window order of epoch ``e``
is a permutation seeded by (seed, e) and the transpositions of step ``s`` come
from a generator seeded by (seed, s). Resuming therefore needs only the step,
and every DDP rank can build the same global batch and keep its own rows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from trainer.vocab import Vocab, vocab

IGNORE = -100  # target value cross_entropy skips
CONTEXT_BARS, COMPLETION_BARS = 4, 2
MIDI_SUFFIXES = {".mid", ".midi"}


# -- pieces ------------------------------------------------------------------------
@dataclass
class PieceSet:
    """Token ids of whole pieces (no BOS/EOS), with names and note counts."""

    ids: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    notes: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, name: str, notes: int) -> None:
        self.ids.append(np.asarray(ids, dtype=np.int64))
        self.names.append(name)
        self.notes.append(int(notes))

    def extend(self, other: "PieceSet") -> None:
        self.ids += other.ids
        self.names += other.names
        self.notes += other.notes

    @property
    def tokens(self) -> int:
        return int(sum(len(x) for x in self.ids))

    def sequences(self) -> list[np.ndarray]:
        """``[BOS] ids [EOS]`` per piece: the trainer adds the markers, the corpus does not."""
        v = vocab()
        return [np.concatenate(([v.bos], x, [v.eos])).astype(np.int64) for x in self.ids]


@dataclass
class Data:
    train: PieceSet
    val: PieceSet
    skipped: list[str]  # one line per MIDI file that could not be used
    sources: list[str]  # what was read, for the checkpoint's data summary
    corpus_skipped: int = 0  # units a corpus build skipped (listed in its report.json)
    excluded_sources: tuple[str, ...] = ()


    def summary(self) -> dict:
        return {
            "sources": self.sources,
            "train_pieces": len(self.train),
            "val_pieces": len(self.val),
            "train_tokens": self.train.tokens,
            "val_tokens": self.val.tokens,
            "skipped": len(self.skipped) + self.corpus_skipped,
        } | ({"excluded_sources": list(self.excluded_sources)} if self.excluded_sources else {})


def is_corpus_dir(path: Path) -> bool:
    return (path / "tokenizer.json").exists() and (path / "manifest.jsonl").exists()


def load_corpus(path: Path, splits: Sequence[str] = ("train", "val"),
                exclude_sources: Sequence[str] = ()) -> dict[str, PieceSet]:
    """The pieces of a ``python -m trainer corpus`` folder, per split, without
    the pieces of ``exclude_sources`` (e.g. a base model that never saw folk tunes)."""
    from trainer.corpus import load_corpus_tokenizer_check

    load_corpus_tokenizer_check(path)  # refuses another tokenizer's ids
    seen_sources: set[str] = set()
    arrays = {s: np.load(path / f"{s}.npy", mmap_mode="r") for s in splits}
    out = {s: PieceSet() for s in splits}
    with (path / "manifest.jsonl").open() as fh:
        for line in fh:
            e = json.loads(line)
            seen_sources.add(e["source"])
            if e["split"] in out and e["source"] not in exclude_sources:
                arr = arrays[e["split"]][e["offset"]: e["offset"] + e["tokens"]]
                out[e["split"]].add(np.array(arr), e["id"], e["notes"])
    unknown = sorted(set(exclude_sources) - seen_sources)
    if unknown:  # a typo would silently train on everything
        raise ValueError(f"{path}: no source named {', '.join(unknown)} "
                         f"(sources: {', '.join(sorted(seen_sources))})")
    return out


def load_midi_folder(path: Path) -> tuple[PieceSet, list[str]]:
    """Every .mid/.midi under ``path`` (recursively); bad files are reported, not fatal."""
    from trainer.corpus import Unit, convert_unit

    pieces, skipped = PieceSet(), []
    # Every entry with a MIDI name, not only regular files: a FIFO, a device,
    # a dangling link or a folder named x.mid is refused by the reader with a
    # reason, so the user sees it skipped instead of silently missing.
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    for f in files:
        rel = str(f.relative_to(path))
        result = convert_unit(Unit(f"midi:{path.name}", str(f), rel, "midi"))
        skipped += result["skipped"]
        for p in result["pieces"]:
            if p["ids"]:
                pieces.add(np.asarray(p["ids"]), rel, p["notes"])
    return pieces, skipped


def hold_out(pieces: PieceSet, fraction: float, seed: int) -> tuple[PieceSet, PieceSet]:
    """Split whole pieces: at least one validation piece when there are two or more.

    The choice hashes the piece names, so adding files does not reshuffle the rest.
    """
    n = len(pieces)
    n_val = 0 if n < 2 else min(n - 1, max(1, round(fraction * n)))
    rank = sorted(range(n), key=lambda i: hashlib.sha1(f"{seed}|{pieces.names[i]}".encode()).digest())
    val_idx = set(rank[:n_val])
    train, val = PieceSet(), PieceSet()
    for i in range(n):
        (val if i in val_idx else train).add(pieces.ids[i], pieces.names[i], pieces.notes[i])
    return train, val


def load_data(dirs: Iterable[str], val_fraction: float = 0.15, seed: int = 0,
              exclude_sources: Sequence[str] = ()) -> Data:
    """Corpus folders give their own split; MIDI folders are split here by piece.
    ``exclude_sources`` drops a corpus's pieces of those sources (MIDI folders have none)."""
    train, val, skipped, sources = PieceSet(), PieceSet(), [], []
    corpus_skipped = 0
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise ValueError(f"not a folder: {d}")
        if is_corpus_dir(path):
            parts = load_corpus(path, exclude_sources=exclude_sources)
            train.extend(parts["train"])
            val.extend(parts["val"])
            report = path / "report.json"
            if report.exists():
                corpus_skipped += len(json.loads(report.read_text()).get("skipped", []))
        else:
            pieces, bad = load_midi_folder(path)
            skipped += bad
            t, v = hold_out(pieces, val_fraction, seed)
            train.extend(t)
            val.extend(v)
        sources.append(str(path.resolve()))
    if not len(train):
        raise ValueError(f"no usable pieces in {', '.join(map(str, dirs))}"
                         + (f" ({len(skipped)} files skipped)" if skipped else ""))
    if not len(val):  # a single piece: validate on it rather than not at all
        val = train
    return Data(train, val, skipped, sources, corpus_skipped, tuple(exclude_sources))


# -- windows -------------------------------------------------------------------------
@dataclass
class Windows:
    seqs: list[np.ndarray]  # [BOS] ids [EOS] per piece
    piece: np.ndarray
    start: np.ndarray
    end: np.ndarray
    loss_start: np.ndarray

    def __len__(self) -> int:
        return len(self.piece)

    @staticmethod
    def concat(parts: Sequence["Windows"]) -> "Windows":
        """Windows of several kinds over the same sequences."""
        assert all(p.seqs is parts[0].seqs for p in parts)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return Windows(parts[0].seqs, cat("piece"), cat("start"), cat("end"), cat("loss_start"))


def _windows(seqs: list[np.ndarray], rows: list[tuple[int, int, int, int]]) -> Windows:
    a = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return Windows(seqs, a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def lm_windows(seqs: list[np.ndarray], ctx_len: int) -> Windows:
    rows = []
    for p, seq in enumerate(seqs):
        for start in range(0, max(len(seq) - 1, 0), ctx_len):
            rows.append((p, start, min(start + ctx_len + 1, len(seq)), start + 1))
    return _windows(seqs, rows)


def bar_bounds(seq: np.ndarray, bar_id: int) -> np.ndarray:
    """Start index of every bar, then the index of the closing EOS (end of the last bar)."""
    return np.concatenate((np.flatnonzero(seq == bar_id), [len(seq) - 1]))


def completion_windows(seqs: list[np.ndarray], ctx_len: int,
                       context_bars: int = CONTEXT_BARS,
                       completion_bars: int = COMPLETION_BARS) -> Windows:
    """Bar-aligned windows sliding by one bar; too-long contexts are cut on the left."""
    v = vocab()
    rows = []
    span = context_bars + completion_bars
    for p, seq in enumerate(seqs):
        bounds = bar_bounds(seq, v.bar)
        n_bars = len(bounds) - 1
        for j in range(n_bars - span + 1):
            start = 0 if j == 0 else int(bounds[j])  # the first window keeps BOS
            comp, end = int(bounds[j + context_bars]), int(bounds[j + span])
            start = max(start, end - 1 - ctx_len)
            if start >= comp:  # not even one context token fits
                continue
            rows.append((p, start, end, comp))
    return _windows(seqs, rows)


def transpose_range(window: np.ndarray, v: Vocab, max_shift: int) -> tuple[int, int]:
    """Semitone shifts that keep every pitch of the window on the piano."""
    pitches = window[v.is_pitch(window)]
    if max_shift <= 0 or not len(pitches):
        return 0, 0
    lo = max(-max_shift, v.pitch_lo - int(pitches.min()))
    hi = min(max_shift, v.pitch_hi - int(pitches.max()))
    return lo, hi


def make_batch(win: Windows, idx: Sequence[int], shifts: Sequence[int] | None = None,
               pad_multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs [B,T], targets [B,T]) for windows ``idx``; padding targets are IGNORE.

    Right padding is harmless: the model is causal, so padded steps never
    reach an earlier position, and their targets are ignored.
    """
    v = vocab()
    lens = [int(win.end[i] - win.start[i] - 1) for i in idx]
    T = max(lens)
    T = -(-T // pad_multiple) * pad_multiple
    x = np.full((len(idx), T), v.pad, dtype=np.int64)
    y = np.full((len(idx), T), IGNORE, dtype=np.int64)
    for row, i in enumerate(idx):
        s, e, ls = int(win.start[i]), int(win.end[i]), int(win.loss_start[i])
        w = win.seqs[win.piece[i]][s:e].copy()
        if shifts is not None and shifts[row]:
            w[v.is_pitch(w)] += shifts[row]
        n = e - s - 1
        x[row, :n] = w[:-1]
        y[row, :n] = w[1:]
        y[row, : max(0, ls - s - 1)] = IGNORE  # target at seq index s+1+t counts if >= ls
    return torch.from_numpy(x), torch.from_numpy(y)


class BatchSchedule:
    """Which windows (and transpositions) make the global batch of each step."""

    def __init__(self, win: Windows, batch_size: int, seed: int, max_shift: int = 0) -> None:
        if not len(win):
            raise ValueError("no training windows (pieces too short for this window kind?)")
        self.win, self.batch_size, self.seed, self.max_shift = win, batch_size, seed, max_shift
        self._perm_epoch, self._perm = -1, np.zeros(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, 7, epoch]).permutation(len(self.win))
            self._perm_epoch = epoch
        return self._perm

    def epoch_of(self, step: int) -> float:
        return step * self.batch_size / len(self.win)

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(window indices [B], semitone shifts [B]) of global batch ``step``."""
        n = len(self.win)
        g = step * self.batch_size + np.arange(self.batch_size)
        idx = np.array([self._permutation(int(k // n))[k % n] for k in g], dtype=np.int64)
        rng = np.random.default_rng([self.seed, 11, step])
        shifts = np.zeros(len(idx), dtype=np.int64)
        for r, i in enumerate(idx):
            lo, hi = transpose_range(self.win.seqs[self.win.piece[i]][self.win.start[i]:self.win.end[i]],
                                     vocab(), self.max_shift)
            shifts[r] = rng.integers(lo, hi + 1) if hi > lo else lo
        return idx, shifts

    def batch(self, step: int, pad_multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        idx, shifts = self.indices(step)
        return make_batch(self.win, idx, shifts, pad_multiple)


def build_windows(seqs: list[np.ndarray], objective: str, ctx_len: int) -> Windows:
    """``lm``, ``completion`` or ``mix`` (both kinds in one pool)."""
    if objective == "lm":
        return lm_windows(seqs, ctx_len)
    if objective == "completion":
        return completion_windows(seqs, ctx_len)
    if objective == "mix":
        return Windows.concat([lm_windows(seqs, ctx_len), completion_windows(seqs, ctx_len)])
    raise ValueError(f"unknown objective {objective!r} (lm, completion or mix)")
