"""Seeded fuzz (issue 21): a few hundred malformed .mid files and tampered
checkpoints. Every one either loads or is refused with the module's own
one-line error; no other exception, no hang, a few seconds in all."""
from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest
import torch

from model import CheckpointError, RWKV7, RWKVConfig, load_checkpoint, save_checkpoint
from model.checkpoint import sidecar_path
from model.tokens.midi_io import MidiError, encode_piece, load_piano_piece

DATA = Path(__file__).parent / "data"
MIDI_CASES = 300
CHECKPOINT_CASES = 120


def _mutate_midi(data: bytes, rng: random.Random) -> bytes:
    """One of the ways files break in the wild: flipped bytes, truncation,
    inserted or removed runs, broken tempo events, absurd chunk lengths."""
    out = bytearray(data)
    op = rng.randrange(6)
    if op == 0:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif op == 1:
        out = out[:rng.randrange(len(out))]
    elif op == 2:
        at = rng.randrange(len(out))
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 3:
        at = rng.randrange(14, len(out))
        length = rng.choice([0, 1, 2, 3, 4, 0x7F])
        out[at:at] = b"\x00\xff\x51" + bytes([length]) + bytes(rng.randrange(256) for _ in range(3))
    elif op == 4:
        at = rng.choice([4, 18])  # the header's and the first track's length fields
        out[at:at + 4] = rng.randrange(2 ** 32).to_bytes(4, "big")
    else:
        at = rng.randrange(len(out))
        del out[at:at + rng.randint(1, 64)]
    return bytes(out)


def test_malformed_midi_files_load_or_give_one_line(tmp_path):
    rng = random.Random(21)
    sources = [p.read_bytes() for p in sorted(DATA.glob("*.mid"))]
    path = tmp_path / "case.mid"
    t0 = time.monotonic()
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(MIDI_CASES):
        path.write_bytes(_mutate_midi(rng.choice(sources), rng))
        try:
            encode_piece(load_piano_piece(path).piece)
            outcomes["loaded"] += 1
        except MidiError as exc:
            assert "\n" not in str(exc) and str(exc), case
            outcomes["refused"] += 1
    assert outcomes["refused"] > MIDI_CASES // 4, outcomes  # the fuzz does break files
    assert time.monotonic() - t0 < 60


_ODD_VALUES = [-5, 0, 330.5, 10 ** 6, 10 ** 30, -(10 ** 30), "x", None, True, [], {}, 1e308, float("nan")]


def _tamper(path: Path, good_side: dict, blob: bytes, rng: random.Random) -> None:
    """A sidecar field set to an odd value, or weights bytes changed with the
    sidecar's hash updated to vouch for them (so parsing itself is tried)."""
    side = json.loads(json.dumps(good_side))
    weights = bytearray(blob)
    if rng.random() < 0.5:
        where = side["config"] if rng.random() < 0.7 else side
        where[rng.choice(sorted(where))] = rng.choice(_ODD_VALUES)
    else:
        header = int.from_bytes(blob[:8], "little") + 8
        for _ in range(rng.randint(1, 4)):  # mostly in the JSON header: that is what is parsed
            at = rng.randrange(header) if rng.random() < 0.8 else rng.randrange(len(weights))
            weights[at] = rng.randrange(256)
        if rng.random() < 0.3:
            weights = weights[:rng.randrange(len(weights))]
        side["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    path.write_bytes(bytes(weights))
    sidecar_path(path).write_text(json.dumps(side))


def test_tampered_checkpoints_load_or_give_one_line(tmp_path):
    rng = random.Random(21)
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, RWKV7(RWKVConfig(vocab_size=41, n_layer=1, n_embd=64, head_size=32)))
    good_side, blob = json.loads(sidecar_path(path).read_text()), path.read_bytes()
    t0 = time.monotonic()
    refused = 0
    for case in range(CHECKPOINT_CASES):
        _tamper(path, good_side, blob, rng)
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(path.parent) in str(exc), case
            refused += 1
    assert refused > CHECKPOINT_CASES // 2
    assert time.monotonic() - t0 < 60


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
