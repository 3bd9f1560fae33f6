"""``tokenize FILE [--stream]`` (model.tokens.cli.run_tokenize)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from model.tokens.cli import run_tokenize

DATA = Path(__file__).parent / "data"


def _run(capsys, file, stream=False):
    code = run_tokenize(argparse.Namespace(file=str(file), stream=stream))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["bach_bwv66_6.mid", "ryans_jig.mid"])
def test_stream_prints_the_same_tokens(capsys, name):
    code, plain, err = _run(capsys, DATA / name)
    assert code == 0 and err == ""
    code, streamed, _ = _run(capsys, DATA / name, stream=True)
    assert code == 0 and streamed == plain
    lines = plain.splitlines()
    assert all(line.startswith("Bar_None") for line in lines[:-1])
    bars = len(lines) - 1
    assert lines[-1].startswith(f"bars: {bars}  notes: ")


def test_bad_file_is_one_line_on_stderr(capsys, tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    code, out, err = _run(capsys, bad)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_missing_file(capsys, tmp_path):
    code, _, err = _run(capsys, tmp_path / "missing.mid")
    assert code != 0 and "cannot read" in err and err.count("\n") == 1
