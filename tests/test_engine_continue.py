"""`continue` end to end: a real checkpoint file, a real MIDI file, real output."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import symusic
import torch

from model import RWKV7, RWKVConfig, save_checkpoint
from model.tokens.config import build_tokenizer, tokenizer_config

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = RWKV7(RWKVConfig(vocab_size=len(build_tokenizer().vocab), n_layer=2, n_embd=64, head_size=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model, tokenizer=tokenizer_config())
    return path


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *argv], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def notes_of(path: Path) -> list[symusic.Note]:
    score = symusic.Score(str(path), ttype="tick")
    return sorted((n for t in score.tracks for n in t.notes), key=lambda n: (n.time, n.pitch))


def test_continue_writes_input_plus_new_bars(tmp_path, checkpoint):
    src = DATA / "bach_bwv66_6.mid"
    out = tmp_path / "out.mid"
    result = run("continue", str(src), "-o", str(out), "--model", str(checkpoint), "--seed", "1",
                 "--bars", "2")
    assert result.returncode == 0, result.stderr
    original = symusic.Score(str(src), ttype="quarter")
    written = symusic.Score(str(out), ttype="quarter")
    end_in = max(n.time + n.duration for t in original.tracks for n in t.notes)
    new = [n for t in written.tracks for n in t.notes if n.time >= end_in - 1e-6]
    assert new, "no notes after the input"
    assert max(n.time for n in new) < end_in + 2 * 4 + 1  # within 2 bars of 4/4 (plus the beat rounding)
    assert written.tracks[0].name == "Composer Copilot"
    assert len(written.tempos) >= 1 and len(written.time_signatures) >= 1
    in_count = sum(len(t.notes) for t in original.tracks)
    assert sum(len(t.notes) for t in written.tracks) >= len(new) + in_count * 0.9  # input kept (merged unisons may drop)


def test_variations_write_k_files_and_only_new(tmp_path, checkpoint):
    out = tmp_path / "take.mid"
    result = run("continue", str(DATA / "essen_altdeu10_1.mid"), "-o", str(out), "--model", str(checkpoint),
                 "--variations", "3", "--only-new", "--seed", "2", "--temperature", "1.2")
    assert result.returncode == 0, result.stderr
    files = [tmp_path / f"take-{i}.mid" for i in (1, 2, 3)]
    contents = [notes_of(f) for f in files]
    assert all(contents)
    assert all(min(n.time for n in c) >= 0 for c in contents)
    assert len({tuple((n.time, n.pitch) for n in c) for c in contents}) > 1


@pytest.mark.parametrize("args, message", [
    (["missing.mid"], "cannot read"),
    ([str(REPO / "README.md")], "not a MIDI file"),
])
def test_bad_input_is_one_line(tmp_path, checkpoint, args, message):
    result = run("continue", *args, "-o", str(tmp_path / "x.mid"), "--model", str(checkpoint))
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 100)
    result = run("continue", str(DATA / "ryans_jig.mid"), "-o", str(tmp_path / "x.mid"), "--model", str(bad))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "broken" in result.stderr


def test_continue_follows_the_files_dynamics_or_a_fixed_velocity(tmp_path):
    """Answers are as loud as the phrase: a soft file gets a soft answer, a loud
    one a loud answer, and --velocity pins every new note."""
    import argparse

    from symusic import Note, Score, Tempo, TimeSignature, Track

    from copilot_app.engine.offline import run_continue
    from model.tokens.midi_io import load_piano_piece

    def phrase(level: int) -> Path:
        score = Score(480)
        score.tempos.append(Tempo(0, 100.0))
        score.time_signatures.append(TimeSignature(0, 4, 4))
        track = Track("piano", 0, False)
        for q in range(16):
            accent = 12 if q % 4 == 0 else 0
            track.notes.append(Note(q * 480, 400, [60, 64, 67, 72][q % 4], level + accent))
        score.tracks.append(track)
        path = tmp_path / f"level{level}.mid"
        path.write_bytes(score.dumps_midi())
        return path

    def answer(path: Path, **extra) -> list[int]:
        out = tmp_path / f"out-{path.stem}-{len(extra)}.mid"
        args = argparse.Namespace(input=str(path), output=str(out), bars=2, context_bars=4, variations=1,
                                  temperature=0.85, top_p=0.92, top_k=0, seed=0, only_new=True,
                                  model=None, device="cpu", velocity=extra.get("velocity"))
        assert run_continue(args) == 0
        return [n.velocity for n in load_piano_piece(out).piece.notes]

    soft, loud = answer(phrase(40)), answer(phrase(100))
    assert soft and loud
    assert max(soft) <= 52 and min(loud) >= 100  # inside each phrase's own range
    assert set(answer(phrase(40), velocity=90)) == {90}
