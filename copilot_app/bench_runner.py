"""`composer-copilot bench`: run the benchmark scripts in bench/.

The benchmarks are scripts, not tests (they print a table and write JSON);
this runs each one in its own process so one benchmark's threads, caches and
compiled extensions never colour another's figures.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
# Scripts in bench/ that measure nothing: shared helpers start with "_", and
# render_figures turns the benchmarks' JSON into the README's tables and
# learning_curve draws a training run's validation curve.
NOT_BENCHMARKS = {"render_figures", "learning_curve"}


def discover(bench_dir: Path | None = None) -> dict[str, Path]:
    """Benchmark scripts by name (file stem), in a stable order."""
    bench_dir = bench_dir or BENCH_DIR
    if not bench_dir.is_dir():
        return {}
    return {p.stem: p for p in sorted(bench_dir.glob("*.py"))
            if not p.name.startswith("_") and p.stem not in NOT_BENCHMARKS}


def run_bench(args: argparse.Namespace) -> int:
    """Run the named benchmarks (default: all); exit code 2 when there are none."""
    scripts = discover()
    if not scripts:
        print("composer-copilot: error: no benchmarks in bench/ yet", file=sys.stderr)
        return 2
    names = args.names or list(scripts)
    unknown = [n for n in names if n not in scripts]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; available: {', '.join(scripts)}")
    worst = 0
    for name in names:
        cmd = [sys.executable, str(scripts[name])] + (["--json"] if args.json else [])
        worst = max(worst, subprocess.call(cmd, cwd=REPO_ROOT))
    return worst
