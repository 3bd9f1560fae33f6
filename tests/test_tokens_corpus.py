"""Corpus builder (trainer.corpus) on the test MIDI files and a few music21 scores."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.tokens.config import build_tokenizer, tokenizer_config
from model.tokens.grammar import RemiGrammar
from model.tokens.midi_io import encode_file
from trainer.corpus import add_corpus_args, load_corpus_tokenizer_check, run_corpus

DATA = Path(__file__).parent / "data"
NAMES = {i: t for t, i in build_tokenizer().vocab.items()}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_corpus_args(parser)
    return parser.parse_args([*argv, "--no-progress"])


@pytest.fixture
def midi_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my pieces"
    (folder / "sub").mkdir(parents=True)
    for path in sorted(DATA.glob("*.mid"))[:4]:
        shutil.copy(path, folder / "sub" / path.name)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00")
    drums = bytes.fromhex(
        "4d546864000000060000000101e0"  # MThd, type 0, 1 track, 480 tpq
        "4d54726b0000000c" "00992464" "60892400" "00ff2f00"  # channel-10 note, end
    )
    (folder / "drums.MIDI").write_bytes(drums)
    (folder / "notes.txt").write_text("not a midi file, ignored")
    return folder


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_midi_folder_corpus_resumes_and_reports(midi_folder, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert run_corpus(_args("--midi", str(midi_folder), "--out", str(out), "--workers", "2")) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["pieces"] == 4 and report["converted_units"] == 6
    assert len(report["skipped"]) == 2 and all("\n" not in r for r in report["skipped"])
    assert any("drum-only" in r for r in report["skipped"])
    assert any("broken.mid" in r for r in report["skipped"]) and "skipped: " in printed
    load_corpus_tokenizer_check(out)

    manifest = _manifest(out)
    arrays = {s: np.load(out / f"{s}.npy") for s in ("train", "val")}
    for entry in manifest:
        ids = arrays[entry["split"]][entry["offset"] : entry["offset"] + entry["tokens"]]
        tokens = [NAMES[int(i)] for i in ids]
        assert tokens == encode_file(midi_folder / entry["path"])
        assert entry["bars"] == sum(t == "Bar_None" for t in tokens)
        assert RemiGrammar().accepts(tokens)
    assert sum(e["tokens"] for e in manifest) == report["tokens"]

    # A rerun converts nothing and writes the same corpus.
    before = (out / "manifest.jsonl").read_bytes(), (out / "train.npy").read_bytes()
    assert run_corpus(_args("--midi", str(midi_folder), "--out", str(out), "--workers", "1")) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["converted_units"] == 0 and again["cached_units"] == 6
    assert ((out / "manifest.jsonl").read_bytes(), (out / "train.npy").read_bytes()) == before

    # --retry-skipped converts only the two skipped files again.
    args = _args("--midi", str(midi_folder), "--out", str(out), "--workers", "1", "--retry-skipped")
    assert run_corpus(args) == 0
    retried = json.loads((out / "report.json").read_text())
    assert retried["converted_units"] == 2 and retried["pieces"] == 4


def test_split_is_deterministic_per_piece(midi_folder, tmp_path):
    splits = []
    for name, seed in [("a", "0"), ("b", "0"), ("c", "7")]:
        out = tmp_path / name
        args = _args("--midi", str(midi_folder), "--out", str(out), "--workers", "1",
                     "--val-fraction", "0.5", "--seed", seed)
        assert run_corpus(args) == 0
        splits.append({e["id"]: e["split"] for e in _manifest(out)})
    assert splits[0] == splits[1]
    assert set(splits[0]) == set(splits[2])


def test_corpus_of_another_tokenizer_is_refused(midi_folder, tmp_path, capsys):
    out = tmp_path / "corpus"
    out.mkdir()
    other = tokenizer_config()
    other["version"] += 1
    (out / "tokenizer.json").write_text(json.dumps(other))
    assert run_corpus(_args("--midi", str(midi_folder), "--out", str(out))) == 2
    err = capsys.readouterr().err
    assert "another tokenizer" in err and err.count("\n") == 1


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert run_corpus(_args("--midi", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))) == 2
    assert run_corpus(_args("--music21", "no_such_source", "--out", str(tmp_path / "o"))) == 2
    assert run_corpus(_args("--val-fraction", "1.5", "--out", str(tmp_path / "o"))) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_music21_scores_become_pieces(tmp_path):
    pytest.importorskip("music21")
    out = tmp_path / "corpus"
    args = _args("--music21", "bach", "--out", str(out), "--max-files", "2", "--workers", "1")
    assert run_corpus(args) == 0
    manifest = _manifest(out)
    assert [e["source"] for e in manifest] == ["bach", "bach"]
    assert all(e["bars"] > 4 and e["tokens"] > 100 for e in manifest)


def test_default_corpus_dir_is_the_user_cache(monkeypatch, tmp_path):
    from trainer.corpus import default_corpus_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_corpus_dir() == tmp_path / "composer-copilot" / "corpus"
