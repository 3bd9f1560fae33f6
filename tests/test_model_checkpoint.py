"""Checkpoints: round trip, and every kind of bad file refused with one error."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from model import CheckpointError, RWKV7, RWKVConfig, load_checkpoint, save_checkpoint
from tests.helpers import perturbed_model
from model.checkpoint import sidecar_path

CFG = dict(vocab_size=41, n_layer=2, n_embd=64, head_size=32)
TOKENIZER = {"kind": "remi", "vocab": ["Bar", "Pitch_60"], "version": 3}


def make_model(seed: int = 0) -> RWKV7:
    return perturbed_model(seed, **CFG)  # every weight random: a round trip that drops one shows


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "ckpt" / "model.safetensors"
    save_checkpoint(path, make_model(), tokenizer=TOKENIZER, data={"pieces": 12}, metrics={"val_loss": 1.5}, extra={"note": "x"})
    return path


def test_round_trip(saved: Path) -> None:
    side_file = sidecar_path(saved)
    assert side_file == saved.with_suffix(".json") and side_file.exists()
    m2, side = load_checkpoint(saved)
    m1 = make_model()
    assert not m2.training
    assert side["tokenizer"] == TOKENIZER and side["data"] == {"pieces": 12}
    assert side["metrics"] == {"val_loss": 1.5} and side["extra"] == {"note": "x"}
    assert side["config"] == m1.cfg.to_dict() and side["format_version"] == 1
    for (n1, p1), (n2, p2) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    tokens = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(m1.eval()(tokens), m2(tokens))
    assert not list(saved.parent.glob("*.tmp"))  # atomic writes leave no temp files


def test_overwrite_is_clean(saved: Path) -> None:
    save_checkpoint(saved, make_model(5), tokenizer=None)
    m, side = load_checkpoint(saved)
    assert side["tokenizer"] is None
    assert torch.equal(m.head.weight, make_model(5).head.weight)


def _expect_error(path: Path, named: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(named) in msg and "\n" not in msg
    assert isinstance(info.value, ValueError)
    return msg


def test_missing_files(saved: Path, tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.safetensors", tmp_path / "nope.json")
    saved.unlink()
    _expect_error(saved, saved)


def test_truncated_weights(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    _expect_error(saved, saved)


def test_flipped_byte(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[-10] ^= 0xFF
    saved.write_bytes(bytes(data))
    _expect_error(saved, saved)


def test_corrupt_header_with_matching_hash(saved: Path) -> None:
    # Even a sidecar that vouches for the garbage does not get it loaded.
    import hashlib

    junk = b"\xff" * 64
    saved.write_bytes(junk)
    side = json.loads(sidecar_path(saved).read_text())
    side["weights_sha256"] = hashlib.sha256(junk).hexdigest()
    sidecar_path(saved).write_text(json.dumps(side))
    _expect_error(saved, saved)


def test_pickle_is_never_loaded(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = pickle.dumps(Evil())
    saved.write_bytes(evil)
    _expect_error(saved, saved)
    assert not marker.exists()


def test_bad_sidecars(saved: Path) -> None:
    sp = sidecar_path(saved)
    good = json.loads(sp.read_text())
    sp.write_text("{not json")
    _expect_error(saved, sp)
    sp.write_text(json.dumps({**good, "format_version": 99}))
    assert "format_version" in _expect_error(saved, sp)
    sp.write_text(json.dumps({**good, "format": "something-else"}))
    _expect_error(saved, sp)
    sp.write_text(json.dumps({**good, "config": {**good["config"], "n_embd": "wide"}}))
    _expect_error(saved, sp)
    sp.write_bytes(b"\xff\xfe\x00")
    _expect_error(saved, sp)


def test_weights_config_mismatch(saved: Path, tmp_path: Path) -> None:
    # Weights of a different-sized model under this sidecar: shapes disagree.
    other = tmp_path / "other.safetensors"
    m = RWKV7(RWKVConfig(**{**CFG, "vocab_size": 50}))
    save_checkpoint(other, m)
    sp = sidecar_path(other)
    side = json.loads(sp.read_text())
    side["config"]["vocab_size"] = 41
    sp.write_text(json.dumps(side))
    assert "shape" in _expect_error(other, other)
    # Weights from another save beside an older sidecar: the hash says no.
    save_checkpoint(other, m)
    old_side = sp.read_text()
    torch.manual_seed(9)
    save_checkpoint(other, RWKV7(RWKVConfig(**{**CFG, "vocab_size": 50})))
    sp.write_text(old_side)
    assert "SHA-256" in _expect_error(other, other)


def test_sidecar_path_cannot_be_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "m.json", make_model())


def test_load_to_device_and_bf16(tmp_path: Path) -> None:
    m = make_model().to(torch.bfloat16)
    path = tmp_path / "bf.safetensors"
    save_checkpoint(path, m)
    m2, side = load_checkpoint(path, device="cpu")
    assert m2.dtype == torch.bfloat16 and side["dtype"] == "bfloat16"
    assert torch.equal(m2.head.weight, m.head.weight)


def test_checkpoint_files_get_the_usual_file_mode(tmp_path):
    # mkstemp creates 0600 files; a checkpoint shared with other tools/users
    # must get the mode the umask gives any new file.
    import os

    from model import RWKV7, RWKVConfig, save_checkpoint

    old = os.umask(0o022)
    try:
        path = tmp_path / "m.safetensors"
        side = save_checkpoint(path, RWKV7(RWKVConfig(vocab_size=16, n_layer=1, n_embd=64)))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert side.stat().st_mode & 0o777 == 0o644
