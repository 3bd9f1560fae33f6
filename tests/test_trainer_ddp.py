"""DDP: 2 CPU processes (gloo, torchrun) match one process with the same global batch.

``--batch-size`` is the global batch, so one process with 4 windows is "the
doubled batch" of two processes with 2 windows each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
ARGS = ["train", "--data", str(DATA), "--n-layer", "1", "--n-embd", "64", "--ctx-len", "64",
        "--batch-size", "4", "--steps", "5", "--eval-every", "5", "--lr", "3e-3", "--warmup", "1",
        "--threads", "1", "--progress", "json", "--seed", "1"]


def _run(prefix: list[str], out: Path) -> dict[int, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([*prefix, "-m", "trainer", *ARGS, "--out", str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    events = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert sum(e["event"] == "done" for e in events) == 1  # only rank 0 reports
    return {e["step"]: e["loss"] for e in events if e["event"] == "step"}


def test_two_gloo_processes_match_one_process(tmp_path):
    single = _run([sys.executable], tmp_path / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    double = _run(torchrun, tmp_path / "two")
    assert single.keys() == double.keys() == set(range(1, 6))
    for step in single:
        assert double[step] == pytest.approx(single[step], rel=1e-4, abs=1e-5), step
    # the weights moved, so equal later losses are not a coincidence of the start
    assert single[5] < single[1]
