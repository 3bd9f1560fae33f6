"""Hostile input files (issue 21): special files, broken tempos, empty pieces,
failed writes. Every refusal is one line that names the file; nothing blocks,
nothing reads without bound, nothing leaves temp files or half a set behind."""
from __future__ import annotations

import errno
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model.atomic_io import WriteError, atomic_write_bytes, atomic_write_many
from model.tokens.midi_io import (
    DEFAULT_TEMPO_QPM,
    EmptyPieceError,
    MidiReadError,
    grid_score,
    load_piano_piece,
    malformed_tempo_event,
    midi_bytes,
    read_score,
    write_notes,
)
from model.tokens.performance import GridNote

NOTES = [GridNote(0, 4, 60, 80), GridNote(4, 4, 64, 80), GridNote(8, 8, 67, 80)]


def _no_hang(fn: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Run ``fn`` in a daemon thread: a blocked call fails the test instead of hanging it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _special_files(folder: Path) -> dict[str, str]:
    """name -> the words its refusal must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.mid").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.mid")
    (folder / "folder.mid").mkdir()
    (folder / "dangling.mid").symlink_to(folder / "nowhere.mid")
    return {"zero.mid": "character device", "pipe.mid": "named pipe",
            "folder.mid": "folder", "dangling.mid": "cannot read"}


def _smf(track: bytes, tpq: int = 96) -> bytes:
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def _note_track(prefix: bytes = b"", velocity: int = 64) -> bytes:
    return prefix + b"\x00\x90\x3c" + bytes([velocity]) + b"\x60\x80\x3c\x40" + b"\x00\xff\x2f\x00"


# -- special files -----------------------------------------------------------------
def test_special_files_are_refused_by_name_without_reading(tmp_path):
    for name, words in _special_files(tmp_path).items():
        with pytest.raises(MidiReadError) as info:
            _no_hang(lambda: read_score(tmp_path / name))
        msg = str(info.value)
        assert name in msg and words in msg and "\n" not in msg, msg


def test_a_file_swapped_for_a_fifo_after_the_check_does_not_block(tmp_path, monkeypatch):
    # The check says "regular file"; by the open it has become a FIFO.
    import model.atomic_io as aio

    os.mkfifo(tmp_path / "late.mid")
    real_stat = os.stat
    monkeypatch.setattr(aio.os, "stat", lambda p, *a, **k: real_stat(__file__))
    with pytest.raises(MidiReadError, match="named pipe"):
        _no_hang(lambda: read_score(tmp_path / "late.mid"))
    monkeypatch.setattr(aio.os, "stat", real_stat)


def test_the_read_is_bounded_even_when_the_size_lies(tmp_path, monkeypatch):
    import model.atomic_io as aio
    from model.tokens import midi_io

    path = tmp_path / "big.mid"
    path.write_bytes(_smf(_note_track()) + b"\x00" * 5000)
    monkeypatch.setattr(midi_io, "MAX_FILE_BYTES", 1000)
    with pytest.raises(midi_io.PieceTooLargeError, match="big.mid"):
        read_score(path)
    real_fstat = os.fstat  # a file that claims 0 bytes (as /dev/zero does) is still cut off

    class Small:
        def __init__(self, st: os.stat_result) -> None:
            self.st_mode, self.st_size = st.st_mode, 0

    monkeypatch.setattr(aio.os, "fstat", lambda fd: Small(real_fstat(fd)))
    with pytest.raises(midi_io.PieceTooLargeError, match="big.mid"):
        read_score(path)


def test_tokenize_refuses_each_special_file_in_one_line(tmp_path, capsys):
    from model.tokens.cli import main

    for name, words in _special_files(tmp_path).items():
        code = _no_hang(lambda: main([str(tmp_path / name)]))
        err = capsys.readouterr().err
        assert code != 0 and name in err and words in err and err.count("\n") == 1, err


def test_continue_refuses_a_special_input_before_loading_a_model(tmp_path, capsys):
    from copilot_app.cli import main

    for name, words in _special_files(tmp_path / "in").items():
        code = _no_hang(lambda: main(["continue", str(tmp_path / "in" / name), "-o",
                                      str(tmp_path / "out.mid"), "--model", str(tmp_path / "none.safetensors")]))
        err = capsys.readouterr().err
        assert code == 1 and name in err and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.mid").exists()


def test_midi_folder_lists_every_special_file_as_skipped(tmp_path):
    from trainer.datasets import load_midi_folder
    from trainer.evaluate import eval_sets

    folder = tmp_path / "pieces"
    expected = _special_files(folder)
    write_notes(folder / "good.mid", NOTES)
    pieces, skipped = _no_hang(lambda: load_midi_folder(folder))
    assert pieces.names == ["good.mid"]
    assert len(skipped) == len(expected) and all("\n" not in line for line in skipped)
    for name, words in expected.items():
        assert any(name in line and words in line for line in skipped), (name, skipped)
    # eval reads MIDI folders the same way: skipped with the reason, not ignored.
    _sets, eval_skipped = _no_hang(lambda: eval_sets([str(folder)]))
    assert sorted(eval_skipped) == sorted(skipped)


def test_corpus_builder_reports_special_files_as_skipped(tmp_path, capsys):
    from trainer.corpus import build_corpus, midi_units

    folder = tmp_path / "pieces"
    expected = _special_files(folder)
    write_notes(folder / "good.mid", NOTES)
    units = midi_units([str(folder)])
    assert sorted(Path(u.path).name for u in units) == sorted([*expected, "good.mid"])
    report = _no_hang(lambda: build_corpus(units, tmp_path / "corpus", workers=1, progress=False), 60)
    assert report["pieces"] == 1
    lines = [str(s) for s in report["skipped"]]
    for name, words in expected.items():
        assert any(name in line and words in line for line in lines), (name, lines)


# -- tempo and empty pieces ----------------------------------------------------------
@pytest.mark.parametrize("event, words", [
    (b"\x00\xff\x51\x03\x00\x00\x00", "tempo of 0 us"),
    (b"\x00\xff\x51\x03\x00\x00\x01", "tempo of 1 us"),
    (b"\x00\xff\x51\x03\xff\xff\xff", "tempo of 16777215 us"),
    (b"\x00\xff\x51\x00", "not 3 bytes"),
    (b"\x00\xff\x51\x01\x07", "not 3 bytes"),
])
def test_a_broken_tempo_falls_back_to_the_default_and_says_so(tmp_path, event, words):
    path = tmp_path / "t.mid"
    path.write_bytes(_smf(_note_track(event)))
    piano = load_piano_piece(path)
    assert piano.tempo_qpm == DEFAULT_TEMPO_QPM
    assert len(piano.warnings) == 1 and words in piano.warnings[0] and "t.mid" in piano.warnings[0]
    # What `continue` writes from it carries the default tempo, not the garbage.
    out = read_score_bytes(midi_bytes(grid_score(piano.piece.notes, tempo_qpm=piano.tempo_qpm)))
    assert [t.mspq for t in out.tempos] == [500_000]


def read_score_bytes(data: bytes):
    from symusic import Score

    return Score.from_midi(data)


def test_a_good_tempo_is_kept_and_delta_bytes_are_not_mistaken_for_a_tempo(tmp_path):
    path = tmp_path / "ok.mid"
    path.write_bytes(_smf(_note_track(b"\x00\xff\x51\x03\x07\xa1\x20")))  # 500000 us = 120 BPM
    assert load_piano_piece(path).warnings == []
    # A delta time of 16337 ticks is the bytes FF 51: only the structural walk
    # can tell it is no tempo event.
    tricky = _smf(b"\x00\xff\x51\x03\x09\x27\xc0" + b"\xff\x51\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00")
    assert not malformed_tempo_event(tricky)
    path.write_bytes(tricky)
    piano = load_piano_piece(path)
    assert piano.warnings == [] and round(piano.tempo_qpm) == 100


def test_tokenize_warns_about_a_broken_tempo(tmp_path, capsys):
    from model.tokens.cli import main

    path = tmp_path / "t.mid"
    path.write_bytes(_smf(_note_track(b"\x00\xff\x51\x03\x00\x00\x00")))
    assert main([str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "tempo of 0 us" in err and err.count("\n") == 1


def test_all_velocity_zero_says_no_notes(tmp_path):
    path = tmp_path / "silent.mid"
    path.write_bytes(_smf(_note_track(velocity=0)))
    with pytest.raises(EmptyPieceError) as info:
        load_piano_piece(path)
    assert "no notes" in str(info.value) and "silent.mid" in str(info.value)
    assert "track" not in str(info.value)


# -- writing ---------------------------------------------------------------------------
def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import model.atomic_io as aio

    target = tmp_path / "out.mid"
    target.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(aio.os, "fsync", full)
    with pytest.raises(WriteError) as info:
        atomic_write_bytes(target, b"new")
    assert str(info.value) == f"{target}: cannot write (No space left on device)"
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.mid"]


def test_no_permission_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import model.atomic_io as aio

    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:  # root ignores the mode: fail the temp file's creation as it would
        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder / ".x.mid.123.tmp"))

        monkeypatch.setattr(aio.tempfile, "mkstemp", denied)
    try:
        with pytest.raises(WriteError) as info:
            atomic_write_bytes(folder / "x.mid", b"data")
    finally:
        folder.chmod(0o700)
    assert str(info.value) == f"{folder / 'x.mid'}: cannot write (Permission denied)"


def test_a_folder_as_target_is_named_not_a_temp_file(tmp_path):
    with pytest.raises(WriteError) as info:
        atomic_write_bytes(tmp_path, b"data")
    assert str(info.value).startswith(f"{tmp_path}: cannot write (it is a folder")
    assert ".tmp" not in str(info.value) and not list(tmp_path.iterdir())


def test_continue_with_o_dir_is_one_line_naming_it(tmp_path, capsys):
    from copilot_app.cli import main

    write_notes(tmp_path / "in.mid", NOTES)
    (tmp_path / "outdir").mkdir()
    code = main(["continue", str(tmp_path / "in.mid"), "-o", str(tmp_path / "outdir"),
                 "--model", str(tmp_path / "none.safetensors")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and str(tmp_path / "outdir") in err and ".tmp" not in err, err


def test_several_files_are_written_all_or_none(tmp_path, monkeypatch):
    import model.atomic_io as aio

    paths = [tmp_path / f"take-{i}.mid" for i in (1, 2, 3)]
    for p in paths:
        p.write_bytes(b"old")
    real_fsync, calls = os.fsync, []

    def fsync_fails_on_the_third(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(aio.os, "fsync", fsync_fails_on_the_third)
    with pytest.raises(WriteError, match="take-3.mid: cannot write"):
        atomic_write_many([(p, b"new") for p in paths])
    assert [p.read_bytes() for p in paths] == [b"old"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no temp files
    monkeypatch.setattr(aio.os, "fsync", real_fsync)
    atomic_write_many([(p, b"new") for p in paths])
    assert [p.read_bytes() for p in paths] == [b"new"] * 3


# -- end to end: continue and File > Open ------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from model import RWKV7, RWKVConfig, save_checkpoint
    from model.tokens.config import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    model = RWKV7(RWKVConfig(vocab_size=len(build_tokenizer().vocab), n_layer=1, n_embd=64, head_size=32))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model, tokenizer=tokenizer_config())
    return path


def _long_phrase(prefix: bytes) -> bytes:
    """Eight bars of quarter notes after ``prefix`` (a tempo event, say)."""
    body = b"".join(b"\x00\x90" + bytes([60 + i % 12]) + b"\x50\x60\x80" + bytes([60 + i % 12]) + b"\x40"
                    for i in range(32))
    return _smf(prefix + body + b"\x00\xff\x2f\x00")


def test_continue_writes_the_default_tempo_for_a_broken_one_and_warns(tmp_path, tiny_checkpoint, capsys):
    from copilot_app.cli import main

    src = tmp_path / "zero-tempo.mid"
    src.write_bytes(_long_phrase(b"\x00\xff\x51\x03\x00\x00\x00"))
    out = tmp_path / "out.mid"
    code = main(["continue", str(src), "-o", str(out), "--model", str(tiny_checkpoint), "--seed", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning: zero-tempo.mid: a tempo of 0 us a quarter is not usable; using 120 BPM" in err
    assert [t.mspq for t in read_score_bytes(out.read_bytes()).tempos] == [500_000]


def test_continue_variations_are_all_or_none_on_a_full_disk(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import model.atomic_io as aio
    from copilot_app.cli import main

    src = tmp_path / "in.mid"
    src.write_bytes(_long_phrase(b""))
    takes = [tmp_path / f"take-{i}.mid" for i in (1, 2, 3)]
    for take in takes:
        take.write_bytes(b"old")
    real_fsync, calls = os.fsync, []

    def disk_full_on_the_third(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(aio.os, "fsync", disk_full_on_the_third)
    code = main(["continue", str(src), "-o", str(tmp_path / "take.mid"), "--variations", "3",
                 "--model", str(tiny_checkpoint), "--seed", "1"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert f"{takes[2]}: cannot write (No space left on device)" in err
    assert [t.read_bytes() for t in takes] == [b"old"] * 3
    assert not list(tmp_path.glob(".*.tmp"))


def test_file_open_refuses_special_files_in_one_line(tmp_path):
    from copilot_app.engine.phrase_file import read_phrase

    for name, words in _special_files(tmp_path).items():
        with pytest.raises(MidiReadError) as info:
            _no_hang(lambda: read_phrase(tmp_path / name))
        assert name in str(info.value) and words in str(info.value) and "\n" not in str(info.value)
