"""Training loop: the loss goes down, kill -9 + --resume continues exactly,
trainer checkpoints load in the app, bad files are reported, not fatal."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import RWKV7, RWKVConfig
from trainer.datasets import build_windows, lm_windows, load_data
from trainer.loop import TrainConfig, Trainer, evaluate_loss
from trainer.progress import Progress

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
TINY = ["--n-layer", "1", "--n-embd", "64", "--ctx-len", "64", "--batch-size", "4",
        "--threads", "1", "--max-transpose", "3"]


def tiny_model(vocab_size: int = 330) -> RWKV7:
    torch.manual_seed(0)
    return RWKV7(RWKVConfig(vocab_size=vocab_size, n_layer=1, n_embd=64, head_size=32,
                            ctx_len=64, chunk_len=16))


def _cli(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "trainer", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _losses(stdout: str) -> dict[int, float]:
    lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    return {e["step"]: e["loss"] for e in lines if e["event"] == "step"}


def test_tiny_run_lowers_the_loss(tmp_path):
    data = load_data([str(DATA)], seed=0)
    seqs = data.train.sequences()
    model = tiny_model()
    cfg = TrainConfig(steps=30, batch_size=4, lr=3e-3, warmup=3, eval_every=30, max_transpose=0)
    train_win, val_win = build_windows(seqs, "lm", 64), lm_windows(seqs, 64)
    before = evaluate_loss(model, val_win, torch.device("cpu"), limit=16)
    result = Trainer(model, train_win, val_win, cfg, tmp_path, torch.device("cpu"), Progress("none")).run()
    after = evaluate_loss(model, val_win, torch.device("cpu"), limit=16)
    assert result.step == 30 and result.stopped == "steps"
    assert after < before - 0.8, (before, after)  # from ~ln(330)=5.8 towards the data
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "resume.safetensors").exists()


def test_kill_9_then_resume_gives_the_same_next_losses(tmp_path):
    common = ["train", "--data", str(DATA), *TINY, "--steps", "24", "--eval-every", "4",
              "--lr", "3e-3", "--warmup", "2", "--progress", "json", "--seed", "3"]
    full = _cli(*common, "--out", str(tmp_path / "full"))
    killed = _cli(*common, "--out", str(tmp_path / "killed"))
    seen = []
    for line in killed.stdout:  # kill -9 right after the first resume point is on disk
        seen.append(line)
        if '"checkpoint"' in line:
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    ref = _losses(full.communicate(timeout=120)[0])
    resumed = _cli(*common, "--out", str(tmp_path / "killed"), "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    after = _losses(out)
    first = min(after)
    assert 4 < first <= 24 and after.keys() == set(range(first, 25))
    for step, loss in after.items():
        assert loss == pytest.approx(ref[step], rel=1e-5, abs=1e-6), step
    # and the first steps before the kill matched too
    for step, loss in _losses("".join(seen)).items():
        assert loss == pytest.approx(ref[step], rel=1e-5, abs=1e-6)


def _main(*argv: str) -> int:
    from trainer.__main__ import main

    return main(list(argv))


def test_trainer_checkpoints_load_in_the_app(tmp_path, capsys):
    from copilot_app.engine.model_loader import load_model
    from model import load_checkpoint
    from model.tokens.config import check_compatible

    assert _main("train", "--data", str(DATA), *TINY, "--steps", "3", "--eval-every", "3",
                 "--progress", "none", "--out", str(tmp_path)) == 0
    assert "val NLL after" in capsys.readouterr().out
    for name in ("best", "last"):
        model, side = load_checkpoint(tmp_path / f"{name}.safetensors")
        check_compatible(side["tokenizer"])
        assert side["metrics"]["step"] == 3 and side["data"]["train_pieces"] >= 1
        model, meta, _ = load_model(str(tmp_path / f"{name}.safetensors"), "cpu")
        state = model.init_state(1)
        logits, state = model.step(torch.tensor([1]), state)  # BOS
        assert logits.shape == (1, model.cfg.vocab_size) and torch.isfinite(logits).all()


def test_folder_with_bad_files_fine_tunes_on_the_good_ones(tmp_path, capsys):
    from model import save_checkpoint
    from model.tokens.config import tokenizer_config

    folder = tmp_path / "mine"
    folder.mkdir()
    for f in sorted(DATA.glob("*.mid")):
        shutil.copy(f, folder / f.name)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00")
    (folder / "text.mid").write_text("hello")
    base = tmp_path / "base.safetensors"
    save_checkpoint(base, tiny_model(), tokenizer=tokenizer_config())
    assert _main("train", "--data", str(folder), "--base", str(base), "--ctx-len", "64", "--steps", "6",
                 "--threads", "1", "--progress", "none", "--out", str(tmp_path / "ft")) == 0
    out, err = capsys.readouterr()
    assert "skipped 2 file(s)" in err and "broken.mid" in err and "text.mid" in err
    assert "val NLL before" in out and "val NLL after" in out
    summary = json.loads((tmp_path / "ft" / "train_summary.json").read_text())
    assert summary["data"]["train_pieces"] + summary["data"]["val_pieces"] == 6
    assert summary["data"]["val_pieces"] == 1 and len(summary["skipped"]) == 2
    assert summary["best_val_nll"] <= summary["val_nll_before"] + 1e-9
    assert summary["best_val_nll"] < summary["val_nll_before"]  # it learned something


def test_grad_checkpointing_gives_the_same_gradients():
    from trainer.loop import enable_grad_checkpointing

    data = load_data([str(DATA)], seed=0)
    from trainer.datasets import make_batch

    win = lm_windows(data.train.sequences(), 64)
    x, y = make_batch(win, np.arange(3))
    grads = []
    for ckpt in (False, True):
        model = tiny_model()
        if ckpt:
            enable_grad_checkpointing(model)
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=-100).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in (["--data", str(tmp_path / "nope")], ["--data", str(empty)],
                 ["--data", str(DATA), "--base", str(tmp_path / "missing.safetensors")],
                 ["--data", str(DATA), "--resume"],
                 ["--data", str(DATA), "--ctx-len", "50"]):
        rc = _main("train", *argv, "--out", str(tmp_path / "o"), "--threads", "1", "--steps", "1")
        err = capsys.readouterr().err
        assert rc != 0 and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_progress_json_lines_for_the_app(tmp_path, capsys):
    assert _main("train", "--data", str(DATA), *TINY, "--steps", "4", "--eval-every", "2",
                 "--progress", "json", "--out", str(tmp_path)) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # every line is JSON
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    for e in steps:
        assert {"step", "steps", "loss", "val_loss", "tokens_per_s", "eta_s"} <= e.keys()
        assert (e["val_loss"] is not None) == (e["step"] % 2 == 0)
    assert steps[-1]["eta_s"] == 0
    done = events[-1]
    assert done["event"] == "done" and done["steps"] == 4 and done["best_val_nll"] is not None


def test_resume_may_shorten_the_schedule_and_still_anneal(tmp_path, capsys):
    """A long run that will not finish in time resumes with fewer steps: it ends
    at the new count, with the cosine brought down to its floor by then."""
    out = str(tmp_path / "run")
    common = ["--data", str(DATA), *TINY, "--lr", "1e-3", "--warmup", "1", "--eval-every", "2",
              "--progress", "json", "--out", out]
    assert _main("train", *common, "--steps", "40", "--time-budget", "0.0001") == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stopped_at = [e for e in first if e["event"] == "step"][-1]["step"]
    assert stopped_at < 40
    assert _main("train", *common, "--resume", "--steps", str(stopped_at)) != 0  # nothing left to do
    capsys.readouterr()
    assert _main("train", *common, "--resume", "--steps", str(stopped_at + 4), "--time-budget", "60") == 0
    steps = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    steps = [e for e in steps if e["event"] == "step"]
    assert steps[-1]["step"] == stopped_at + 4 and steps[-1]["steps"] == stopped_at + 4
    # The cosine is recomputed over the new total: far below where the old
    # 40-step schedule stood at this step, heading for its floor.
    from trainer.schedule import lr_at

    last = steps[-1]["step"] - 1
    assert steps[-1]["lr"] == pytest.approx(lr_at(last, 1e-3, 1, stopped_at + 4), rel=0.02)
    assert steps[-1]["lr"] < 0.5 * lr_at(last, 1e-3, 1, 40)


def test_a_resumed_fine_tune_keeps_its_base_and_counts_every_legs_time(tmp_path, capsys):
    """The checkpoints and summary of a run resumed from its resume point still
    name the model it was fine-tuned from, and its training time adds up."""
    base, out = tmp_path / "base", tmp_path / "tuned"
    common = ["--data", str(DATA), *TINY, "--warmup", "1", "--eval-every", "2", "--progress", "json"]
    assert _main("train", *common, "--steps", "2", "--out", str(base)) == 0
    base_ckpt = str(base / "best.safetensors")
    assert _main("train", *common, "--base", base_ckpt, "--steps", "40", "--time-budget", "0.0001",
                 "--patience", "0", "--out", str(out)) == 0
    first = json.loads((out / "train_summary.json").read_text())
    assert first["steps"] < 40
    assert _main("train", *common, "--resume", "--steps", str(first["steps"] + 2), "--time-budget", "60",
                 "--out", str(out)) == 0
    capsys.readouterr()
    second = json.loads((out / "train_summary.json").read_text())
    assert second["steps"] == first["steps"] + 2
    assert second["train_wall_s"] > first["train_wall_s"]  # both legs
    for name in ("best.json", "last.json"):
        assert json.loads((out / name).read_text())["extra"]["base"] == base_ckpt, name
