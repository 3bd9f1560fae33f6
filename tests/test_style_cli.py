"""`continue --style` and `listen --style` end to end, with the bundled model."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model import load_checkpoint
from model.style import STYLE_FILE, Style, save_style
from tests.helpers import perturbed_model
from tests.test_engine_continue import notes_of

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
BUNDLED = REPO / "resources" / "models" / "default.safetensors"
PHRASE = DATA / "bach_bwv66_6.mid"


def main_py(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *argv], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def random_style(model, path: Path, name: str) -> Path:
    g = torch.Generator().manual_seed(7)
    state = model.init_state(1)
    for t in (state.att_x, state.wkv, state.ffn_x):
        t.copy_(torch.randn(t.shape, generator=g))
    save_style(path, Style.from_state(state, model, name))
    return path


@pytest.fixture(scope="module")
def bundled_style(tmp_path_factory) -> Path:
    model, _ = load_checkpoint(BUNDLED)
    return random_style(model, tmp_path_factory.mktemp("styles") / "strong.safetensors", "strong")


def test_continue_with_a_style_answers_differently(tmp_path, bundled_style):
    plain, styled = tmp_path / "plain.mid", tmp_path / "styled.mid"
    for out, extra in ((plain, []), (styled, ["--style", str(bundled_style)])):
        proc = main_py("continue", str(PHRASE), "-o", str(out), "--seed", "0", "--only-new", *extra)
        assert proc.returncode == 0, proc.stderr
    assert "style strong" in proc.stdout
    assert [(n.time, n.pitch) for n in notes_of(plain)] != [(n.time, n.pitch) for n in notes_of(styled)]


def test_a_style_learned_with_train_style_continues_the_bundled_model(tmp_path):
    out = tmp_path / "my-style"
    proc = main_py("train", "--style", "--data", str(DATA), "--base", str(BUNDLED), "--out", str(out),
                   "--steps", "2", "--threads", "1", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert (out / STYLE_FILE).stat().st_size <= 1024 * 1024
    proc = main_py("continue", str(PHRASE), "-o", str(tmp_path / "c.mid"), "--seed", "0", "--style", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "style my-style" in proc.stdout and (tmp_path / "c.mid").exists()


def test_a_style_for_another_model_or_a_missing_one_is_one_line(tmp_path):
    foreign = random_style(perturbed_model(vocab_size=330, n_layer=2, n_embd=64, head_size=32),
                           tmp_path / "foreign.safetensors", "foreign")
    for style, words in ((foreign, "learned for another model"), (tmp_path / "nope.safetensors", "not found")):
        for command in (["continue", str(PHRASE), "-o", str(tmp_path / "x.mid")],
                        ["listen", "--virtual"]):
            proc = main_py(*command, "--style", str(style))
            assert proc.returncode != 0
            assert words in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
        assert not (tmp_path / "x.mid").exists()
