"""The end of every bench script: results JSON written (atomically), then the
JSON or the script's table printed."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.atomic_io import atomic_write_bytes  # noqa: E402


def utc_stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write_and_print(res: dict, out: str | Path, as_json: bool, table: Callable[[dict], str]) -> int:
    """Write ``res`` to ``out`` and print it (``as_json``) or ``table(res)``; returns 0."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(res, indent=2) + "\n").encode())
    print(json.dumps(res, indent=2) if as_json else table(res))
    return 0


def corpus_dirs(given: list[str] | None) -> list[str]:
    """The folders a script was given, or the trainer's corpus folder; a missing
    one ends the script with one line instead of a traceback."""
    if given is None:
        from trainer.corpus import default_corpus_dir

        given = [str(default_corpus_dir())]
    for d in given:
        if not Path(d).expanduser().is_dir():
            raise SystemExit(f"{Path(sys.argv[0]).name}: error: no corpus at {d} "
                             "(build one with `python -m trainer corpus`, or pass a folder)")
    return given
