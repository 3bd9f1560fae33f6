"""The pieces of the style bench (bench/style_bench.py): one music21 source as
.mid folders, the "my pieces" a composer would point the app at and the
held-out pieces that score the result. (Not a test.)

Each score goes through the corpus builder's own conversion
(trainer.corpus.convert_unit: music21 -> MIDI -> canonical notes -> REMI)
and is written back as a .mid file, so training reads it the way it reads a
user's folder. Units are taken in a fixed hashed order; the first ``learn``
usable pieces are the learning pool (a run on N pieces uses the first N),
the next ``held_out`` are never trained on. A folder already filled is reused.

    python bench/_style_pieces.py --source palestrina --out DIR
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.tokens.midi_io import decode_tokens, write_midi  # noqa: E402
from trainer.corpus import convert_unit, music21_units  # noqa: E402

# Palestrina: ~1,300 pieces of Renaissance polyphony, not among the sources
# of the bundled model's last training (POP909, bach, oneills1850, joplin,
# schumann_robert); its base heard the whole music21 corpus only briefly.
DEFAULT_SOURCE = "palestrina"
# Pieces longer than this many tokens are passed over: a mass movement of
# 10k+ tokens would dominate both the learning pool and the held-out NLL.
MAX_TOKENS = 6000


def prepare(source: str, out: Path, learn: int, held_out: int) -> dict:
    """Fill ``out/learn`` and ``out/held_out`` with .mid files; returns what was written."""
    done = out / "pieces.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info["source"] == source and len(info["learn"]) >= learn and len(info["held_out"]) >= held_out:
            return info
    units = sorted(music21_units([source]), key=lambda u: hashlib.sha1(u.label().encode()).digest())
    picked: list[tuple[str, list[int]]] = []
    skipped: list[str] = []
    for unit in units:
        if len(picked) >= learn + held_out:
            break
        result = convert_unit(unit)
        skipped += result["skipped"]
        for piece in result["pieces"][:1]:  # one piece per file: no near-duplicates across the split
            if 0 < len(piece["ids"]) <= MAX_TOKENS:
                picked.append((unit.label(), piece["ids"]))
    if len(picked) < learn + held_out:
        raise SystemExit(f"only {len(picked)} usable pieces of {source}")
    info: dict = {"source": source, "learn": [], "held_out": [], "skipped": skipped}
    for k, (label, ids) in enumerate(picked):
        part = "learn" if k < learn else "held_out"
        index = k if part == "learn" else k - learn
        path = out / part / f"{index:03d}.mid"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_midi(decode_tokens(ids), path)
        info[part].append({"file": path.name, "unit": label, "tokens": len(ids)})
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=DEFAULT_SOURCE, help="music21 corpus source (top folder)")
    p.add_argument("--out", required=True, help="folder for learn/ and held_out/")
    p.add_argument("--learn", type=int, default=30)
    p.add_argument("--held-out", type=int, default=20)
    args = p.parse_args(argv)
    info = prepare(args.source, Path(args.out), args.learn, args.held_out)
    for part in ("learn", "held_out"):
        tokens = sum(r["tokens"] for r in info[part])
        print(f"{part}: {len(info[part])} pieces, {tokens} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
