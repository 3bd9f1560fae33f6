"""Tampered and torn checkpoints (issue 21): a sidecar is checked against its
schema and bounds before anything is allocated, NaN/Inf weights are refused,
and a save cut between its two renames never leaves ``best`` unloadable."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch

from model import CheckpointError, RWKV7, load_checkpoint, save_checkpoint
from tests.helpers import perturbed_model
from model.checkpoint import sidecar_path

CFG = dict(vocab_size=41, n_layer=2, n_embd=64, head_size=32)


def make_model(seed: int = 0) -> RWKV7:
    return perturbed_model(seed, **CFG)  # every weight random: a round trip that drops one shows


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "best.safetensors"
    save_checkpoint(path, make_model(), metrics={"val_nll": 2.0})
    return path


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- the sidecar's schema ------------------------------------------------------------
@pytest.mark.parametrize("field, value, words", [
    ("dim_ffn", -5, "config.dim_ffn=-5 is outside"),
    ("vocab_size", 330.5, "config.vocab_size must be an integer"),
    ("d_decay_lora", -3, "config.d_decay_lora=-3 is outside"),
    ("n_layer", 10 ** 6, "config.n_layer=1000000 is outside"),
    ("n_embd", "wide", "config.n_embd must be an integer"),
    ("n_layer", True, "config.n_layer must be an integer"),
    ("dropout", float("nan"), "config.dropout must be a number"),
    ("head_size", 48, "not a multiple of head_size"),
    ("wkv", "evil", "config.wkv must be one of"),
    ("sizes", 3, "unknown config field 'sizes'"),
])
def test_a_bad_config_field_is_named_before_anything_is_allocated(saved, field, value, words):
    sp = sidecar_path(saved)
    side = json.loads(sp.read_text())
    side["config"][field] = value
    sp.write_text(json.dumps(side))  # json writes NaN as NaN, which Python reads back
    t0 = time.monotonic()
    _refused(saved, str(sp), words)
    assert time.monotonic() - t0 < 5  # n_layer=10**6 once cost 84 s and 12 GB


@pytest.mark.parametrize("field, value", [("tokenizer", [1]), ("metrics", "x"), ("previous", 3),
                                          ("format_version", True), ("config", None)])
def test_wrong_types_in_the_sidecar_are_one_line(saved, field, value):
    sp = sidecar_path(saved)
    side = json.loads(sp.read_text())
    side[field] = value
    sp.write_text(json.dumps(side))
    _refused(saved, str(sp))


def test_a_200000_deep_sidecar_is_one_line_not_a_recursion_error(saved):
    sp = sidecar_path(saved)
    sp.write_text("[" * 200_000 + "]" * 200_000)
    _refused(saved, str(sp), "nested too deeply")
    deep_config = '{"format": "composer-copilot-rwkv7", "format_version": 1, "config": ' + "{\"a\":" * 100_000 + "1" + "}" * 100_000 + "}"
    sp.write_text(deep_config)
    _refused(saved, str(sp))


def test_special_checkpoint_files_are_refused_without_blocking(saved, tmp_path):
    from tests.test_hardening_files import _no_hang

    sp = sidecar_path(saved)
    good = sp.read_bytes()
    sp.unlink()
    os.mkfifo(sp)
    with pytest.raises(CheckpointError, match="named pipe"):
        _no_hang(lambda: load_checkpoint(saved))
    sp.unlink()
    sp.write_bytes(good)
    saved.unlink()
    saved.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="character device"):
        _no_hang(lambda: load_checkpoint(saved))


# -- the weights ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_by_name(tmp_path, bad):
    m = make_model()
    with torch.no_grad():
        m.head.weight[3, 5] = bad
    path = tmp_path / "diverged.safetensors"
    save_checkpoint(path, m)
    _refused(path, str(path), "head.weight", "NaN or infinite")


def test_baseline_loader_checks_its_sidecar_and_weights(tmp_path):
    from trainer.models import build_model, load_any, save_model

    path = tmp_path / "lstm.safetensors"
    model = build_model("lstm", 41, 1, 32)
    save_model(path, model)
    sp = path.with_suffix(".json")
    good = json.loads(sp.read_text())
    for field, value in (("n_layer", 10 ** 6), ("n_embd", -5), ("vocab_size", 330.5)):
        sp.write_text(json.dumps({**good, "config": {**good["config"], field: value}}))
        with pytest.raises(CheckpointError, match=f"config.{field}"):
            load_any(path)
    sp.write_text("[" * 200_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_any(path)
    sp.write_text(json.dumps(good))
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_model(path, model)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_any(path)


# -- best/last as one unit ---------------------------------------------------------------
def _fail_after(monkeypatch, calls: int) -> None:
    """os.replace works ``calls`` times, then fails as a kill there would leave things."""
    real, count = os.replace, [0]

    def replace(src, dst):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt("killed between the renames")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("completed_renames", [0, 1])
def test_a_save_cut_between_renames_loads_the_previous_checkpoint(saved, monkeypatch, completed_renames):
    _fail_after(monkeypatch, completed_renames)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(saved, make_model(7), metrics={"val_nll": 1.0})
    monkeypatch.undo()
    model, side = load_checkpoint(saved)
    assert _same_weights(model, make_model()) and side["metrics"] == {"val_nll": 2.0}
    assert not [p for p in saved.parent.iterdir() if p.suffix == ".tmp"]
    # The next save completes the pair, and its "previous" is the one that was loaded.
    save_checkpoint(saved, make_model(8), metrics={"val_nll": 0.5})
    model, side = load_checkpoint(saved)
    assert _same_weights(model, make_model(8)) and side["metrics"] == {"val_nll": 0.5}
    assert side["previous"]["metrics"] == {"val_nll": 2.0} and "previous" not in side["previous"]


def test_two_cut_saves_in_a_row_still_load_the_last_good_one(saved, monkeypatch):
    for seed in (7, 9):
        _fail_after(monkeypatch, 1)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(saved, make_model(seed))
        monkeypatch.undo()
    model, side = load_checkpoint(saved)
    assert _same_weights(model, make_model()) and side["metrics"] == {"val_nll": 2.0}


def test_trainer_best_survives_a_kill_inside_save(tmp_path, monkeypatch):
    from trainer.models import load_any, save_model

    best = tmp_path / "best.safetensors"
    save_model(best, make_model(), metrics={"val_nll": 2.0})
    _fail_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        save_model(best, make_model(3), metrics={"val_nll": 1.0})
    monkeypatch.undo()
    model, side = load_any(best)
    assert _same_weights(model, make_model()) and side["metrics"] == {"val_nll": 2.0}


def test_a_checkpoint_written_by_the_previous_code_still_loads(saved):
    # The previous format had no "previous" key; its sidecar still loads...
    sp = sidecar_path(saved)
    side = json.loads(sp.read_text())
    side.pop("previous")
    sp.write_text(json.dumps(side))
    model, loaded = load_checkpoint(saved)
    assert _same_weights(model, make_model()) and "previous" not in loaded
    # ...and a pair it tore (new weights, old sidecar) is named for what it is.
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in make_model(4).state_dict().items()}
    saved.write_bytes(save(tensors, metadata={"format": "composer-copilot-rwkv7", "format_version": "1"}))
    _refused(saved, str(saved), "SHA-256", "cut off between its two files")


def test_weights_that_match_neither_sidecar_are_refused(saved):
    save_checkpoint(saved, make_model(5))
    data = bytearray(saved.read_bytes())
    data[-10] ^= 0xFF
    saved.write_bytes(bytes(data))
    _refused(saved, str(saved), "SHA-256")


def _saver(path: Path, gap_fd: int | None, seed: int) -> None:
    """Child process: save checkpoints back to back until killed. With
    ``gap_fd`` it reports each first rename and waits there, so the kill lands
    exactly between the sidecar and the weights."""
    real = os.replace
    if gap_fd is not None:
        def replace(src, dst):
            real(src, dst)
            if str(dst).endswith(".json"):
                os.write(gap_fd, b"x")
                time.sleep(0.2)

        os.replace = replace
    while True:  # every save a different model, so a torn pair is always a mismatch
        seed += 1
        save_checkpoint(path, make_model(seed), metrics={"seed": seed})


def test_ten_kill_9s_inside_saves_leave_a_loadable_checkpoint(tmp_path):
    import random
    import signal

    path = tmp_path / "best.safetensors"
    save_checkpoint(path, make_model(), metrics={"seed": 0})
    rng = random.Random(21)
    for trial in range(10):
        in_gap = trial % 2 == 1
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                os.close(read_fd)
                _saver(path, write_fd if in_gap else None, 1000 * (trial + 1))
            finally:
                os._exit(0)
        os.close(write_fd)
        if in_gap:
            assert os.read(read_fd, 1) == b"x"
        else:
            time.sleep(rng.uniform(0.05, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_fd)
        if in_gap:  # the new sidecar is in place, the weights it names are not
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert json.loads(sidecar_path(path).read_text())["weights_sha256"] != digest
        model, side = load_checkpoint(path)  # never CheckpointError
        assert _same_weights(model, make_model(side["metrics"]["seed"]))
    for junk in tmp_path.glob(".*.tmp"):  # a kill may leave a temp file, never a torn pair
        junk.unlink()
