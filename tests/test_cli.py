"""The command-line contract: every --help works, errors are one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from copilot_app import cli
from model import command_runner

REPO = Path(__file__).resolve().parent.parent
SUBCOMMANDS = ["continue", "listen", "train", "eval", "tokenize", "bench"]


def run_main(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *argv],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_top_level_help_lists_every_subcommand():
    result = run_main("--help")
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name):
    result = run_main(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: composer-copilot {name}")


def test_trainer_module_help():
    result = subprocess.run([sys.executable, "-m", "trainer", "--help"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    for name in ("corpus", "train", "eval"):
        assert name in result.stdout


def test_every_command_is_wired_to_an_owner_module():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) | {"gui"} == set(cli.COMMANDS)
    for target in cli.COMMANDS.values():
        module, func = target.split(":")
        assert module.split(".")[0] in {"copilot_app", "model", "trainer"}
        assert func.startswith("run_")


def test_missing_third_party_dependency_is_one_line(tmp_path, monkeypatch, capsys):
    # A module that exists but needs a package that does not: exit 1, one line,
    # and the message names the missing package rather than blaming the command.
    (tmp_path / "needs_missing_dep.py").write_text("import no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = command_runner.run(cli.PROG, "x", "needs_missing_dep:run_x", cli.build_parser().parse_args([]))
    err = capsys.readouterr().err
    assert code == 1 and "no_such_package_xyz" in err and err.count("\n") == 1


def _raise_user_error(_args):
    raise ValueError("phrase.mid: not a MIDI file")


def test_user_error_is_one_line_not_a_traceback(capsys):
    code = command_runner.run(cli.PROG, "x", "tests.test_cli:_raise_user_error", cli.build_parser().parse_args([]))
    assert code == 1
    assert capsys.readouterr().err == "composer-copilot: error: phrase.mid: not a MIDI file\n"


def test_model_option_before_subcommand_is_kept():
    args = cli.build_parser().parse_args(["--model", "mine.safetensors", "continue", "a.mid", "-o", "b.mid"])
    assert args.model == "mine.safetensors" and args.command == "continue"
    args = cli.build_parser().parse_args(["continue", "a.mid", "-o", "b.mid", "--model", "x"])
    assert args.model == "x"


def test_bench_runner(tmp_path, monkeypatch):
    from copilot_app import bench_runner

    monkeypatch.setattr(bench_runner, "BENCH_DIR", tmp_path)
    assert bench_runner.run_bench(cli.build_parser().parse_args(["bench"])) == 2
    (tmp_path / "tiny_bench.py").write_text("import sys; sys.exit(3 if '--json' in sys.argv else 0)\n")
    with pytest.raises(ValueError, match="unknown benchmark"):
        bench_runner.run_bench(cli.build_parser().parse_args(["bench", "nope"]))
    assert bench_runner.run_bench(cli.build_parser().parse_args(["bench", "tiny_bench"])) == 0
    # --json is passed through to the script
    assert bench_runner.run_bench(cli.build_parser().parse_args(["bench", "--json"])) == 3


def test_every_trainer_command_is_wired_to_its_handler():
    import importlib

    from trainer import __main__ as trainer_main

    sub = next(a for a in trainer_main.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(trainer_main.COMMANDS)
    for target in trainer_main.COMMANDS.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))


def test_bench_runner_runs_benchmarks_only():
    from copilot_app import bench_runner

    names = set(bench_runner.discover())
    assert {"live_bench", "model_bench"} <= names
    assert "render_figures" not in names and not any(n.startswith("_") for n in names)
