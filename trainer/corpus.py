"""Token corpus from the music21 scores and the user's MIDI folders.

``python -m trainer corpus [--music21 [SOURCE ...]] [--midi DIR ...] [--out DIR]``

Sources: every score of the public-domain corpus shipped in the music21 wheel
(grouped by its top folder: bach, palestrina, ryansMammoth, essenFolksong,
oneills1850, monteverdi, beethoven, mozart, ...; Roman-numeral analyses are
not music and are left out) and every .mid/.midi under the given folders.
Each piece goes music21 -> MIDI bytes -> ``model.tokens.midi_io`` -> REMI ids,
the same path a user's file takes in the app.

On disk, in ``--out`` (default ``$XDG_CACHE_HOME/composer-copilot/corpus``)::

    tokenizer.json     the model.tokens tokenizer_config() the ids belong to;
                       a corpus made with another tokenizer is refused
    manifest.jsonl     one JSON object per piece, in array order:
                       {"id", "source", "title", "path", "number", "split",
                        "offset", "tokens", "bars", "notes"}
    train.npy, val.npy uint16 token ids of all pieces of that split, one
                       after the other: piece i is array[offset:offset+tokens]
                       (no BOS/EOS/PAD in between: the trainer adds them)
    report.json        per-source figures, skipped units with a one-line
                       reason, build time, the velocity/pedal measurements
    units/*.json       per-unit cache (a file, or one tune of an ABC
                       collection); a rerun only converts what is missing

The train/val split is per piece and deterministic: a hash of (seed, source,
path, tune number) decides, so adding pieces never moves existing ones.
A bad, empty, drum-only or huge file is skipped with its reason; one bad
file never aborts a run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from model.paths import user_cache_dir
from model.tokens.config import TokenizerMismatchError, check_compatible, tokenizer_config

MIDI_SUFFIXES = {".mid", ".midi"}
MUSIC21_SUFFIXES = [".mxl", ".musicxml", ".xml", ".krn", ".abc"]  # preferred first
UNIT_FORMAT = 1  # bump when the per-unit cache layout changes


def default_corpus_dir() -> Path:
    return user_cache_dir("corpus")


@dataclass(frozen=True)
class Unit:
    """One thing a worker converts: a file, or one tune of an ABC collection."""

    source: str
    path: str  # absolute
    rel: str  # stable name inside its source (for ids and the split)
    kind: str  # "music21" | "midi"
    number: int | None = None  # ABC tune number (X:)

    def key(self) -> str:
        size, mtime_ns = _size_and_mtime(self.path)
        blob = json.dumps(
            [UNIT_FORMAT, tokenizer_config(), self.kind, self.rel, self.number,
             size, mtime_ns],
            sort_keys=True,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:20]

    def label(self) -> str:
        return f"{self.source}/{self.rel}" + (f"#{self.number}" if self.number is not None else "")


def _size_and_mtime(path: str) -> tuple[int, int]:
    """For cache keys and scheduling; a dangling link or a looping one is
    (-1, -1) here and refused with its reason when converted."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


# -- finding the units -----------------------------------------------------------
def music21_root() -> Path:
    from music21 import corpus

    return Path(corpus.__file__).resolve().parent


def music21_units(sources: Iterable[str] | None) -> list[Unit]:
    """Units of the music21 core corpus, for ``sources`` (top folders) or all."""
    root = music21_root()
    wanted = set(sources) if sources else None
    by_stem: dict[tuple[str, str], Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in MUSIC21_SUFFIXES or len(rel.parts) < 2:
            continue
        if wanted is not None and rel.parts[0] not in wanted:
            continue
        stem = (str(rel.parent), path.stem)
        old = by_stem.get(stem)  # same piece in two formats: keep the better one
        if old is None or _rank(path) < _rank(old):
            by_stem[stem] = path
    if wanted is not None:
        found = {p.relative_to(root).parts[0] for p in by_stem.values()}
        missing = sorted(wanted - found)
        if missing:
            raise ValueError(f"no music21 corpus source named {', '.join(missing)}")
    units = []
    for path in sorted(by_stem.values()):
        rel = path.relative_to(root)
        source, name = rel.parts[0], str(rel.relative_to(rel.parts[0]))
        numbers = _abc_tune_numbers(path) if path.suffix.lower() == ".abc" else []
        if len(numbers) > 1:
            units += [Unit(source, str(path), name, "music21", n) for n in numbers]
        else:
            units.append(Unit(source, str(path), name, "music21"))
    return units


def _rank(path: Path) -> int:
    return MUSIC21_SUFFIXES.index(path.suffix.lower())


def _abc_tune_numbers(path: Path) -> list[int]:
    text = path.read_text(encoding="latin-1")
    return sorted({int(n) for n in re.findall(r"(?m)^X:\s*(\d+)", text)})


def midi_units(folders: Iterable[str]) -> list[Unit]:
    units = []
    for folder in folders:
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise ValueError(f"not a folder: {folder}")
        source = f"midi:{root.name}"
        for path in sorted(root.rglob("*")):
            # Not only regular files: the reader refuses a FIFO, a device, a
            # dangling link or a folder named x.mid with a reason, so the
            # report lists it as skipped instead of leaving it out unsaid.
            if path.suffix.lower() in MIDI_SUFFIXES:
                units.append(Unit(source, str(path), str(path.relative_to(root)), "midi"))
    return units


def pop909_units(folders: Iterable[str]) -> list[Unit]:
    """One unit per song folder of a POP909 layout (see ``trainer.pop909``)."""
    from trainer.pop909 import is_pop909_dir, song_folders

    units = []
    for folder in folders:
        root = Path(folder).expanduser().resolve()
        if not root.is_dir() or not is_pop909_dir(root):
            raise ValueError(f"not a POP909 folder (NNN/NNN.mid + NNN/beat_midi.txt): {folder}")
        for song in song_folders(root):
            units.append(Unit("pop909", str(song / f"{song.name}.mid"), song.name, "pop909"))
    return units


def source_license(source: str) -> str:
    """What the corpus report says a source's pieces may be used under."""
    if source == "pop909":
        from trainer.pop909 import LICENSE

        return LICENSE
    if source.startswith("midi:"):
        return "the user's own files"
    return "public domain (music21 corpus)"


# -- converting one unit (runs in a worker process) ------------------------------
def convert_unit(unit: Unit) -> dict[str, Any]:
    """{"pieces": [...], "skipped": [reasons]}; never raises for bad input."""
    from model.tokens.midi_io import (
        MidiError,
        encode_piece,
        load_piano_piece,
        piano_piece,
        score_from_bytes,
        tokens_to_ids,
    )

    pieces, skipped = [], []

    def add(piano, title: str, number: int | None, notes: dict | None = None) -> None:
        tokens = encode_piece(piano.piece)
        pieces.append({
            "annotations": notes,
            "title": title,
            "number": number,
            "ids": tokens_to_ids(tokens),
            "bars": sum(1 for t in tokens if t.startswith("Bar")),
            "notes": len(piano.piece.notes),
            "velocities": piano.distinct_velocities,
            "pedal_events": piano.pedal_events,
        })

    try:
        if unit.kind == "midi":
            add(load_piano_piece(unit.path, strict_meter=True), Path(unit.path).stem, None)
        elif unit.kind == "pop909":
            from trainer.pop909 import load_song

            piano, notes = load_song(Path(unit.path).parent)
            add(piano, f"POP909 {unit.rel}", None, notes)
        else:
            for title, number, data in _music21_midi(unit):
                where = unit.label() + (f"#{number}" if unit.number is None and number else "")
                try:
                    add(piano_piece(score_from_bytes(data, where), where, strict_meter=True),
                        title, number)
                except MidiError as exc:
                    skipped.append(str(exc))
    except MidiError as exc:
        skipped.append(str(exc))
    except Exception as exc:  # a parser bug on one file must not end the run
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        skipped.append(f"{unit.label()}: {type(exc).__name__}: {first}")
    return {"format": UNIT_FORMAT, "pieces": pieces, "skipped": skipped}


def _music21_midi(unit: Unit) -> Iterable[tuple[str, int | None, bytes]]:
    """(title, tune number, MIDI bytes) for each score in a music21 file."""
    from music21 import converter
    from music21.midi.translate import streamToMidiFile

    parsed = converter.parse(unit.path, number=unit.number, forceSource=True)
    scores = list(parsed.scores) if hasattr(parsed, "scores") else [parsed]
    for i, score in enumerate(scores):
        _unshare_time_signatures(score)
        number = unit.number
        if number is None and len(scores) > 1:
            number = i + 1
        title = (score.metadata.title if score.metadata and score.metadata.title else None)
        title = title or Path(unit.rel).stem + (f" #{number}" if number is not None else "")
        yield title, number, streamToMidiFile(score).writestr()


def _unshare_time_signatures(score: Any) -> None:
    """Give every measure its own TimeSignature object.

    music21's ABC reader puts one TimeSignature object into several measures
    of a tune whose meter changes (a few hundred Essen songs); its MIDI
    writer then fails with "the object ... is already found in this Stream".
    """
    import copy

    seen: set[int] = set()
    for measure in score.recurse().getElementsByClass("Measure"):
        for ts in list(measure.getElementsByClass("TimeSignature")):
            if id(ts) in seen:
                measure.replace(ts, copy.deepcopy(ts))
            else:
                seen.add(id(ts))


def _work(unit: Unit) -> tuple[Unit, dict[str, Any], float]:
    t0 = time.perf_counter()
    result = convert_unit(unit)
    return unit, result, time.perf_counter() - t0


# -- the build -----------------------------------------------------------------
def is_val(seed: int, unit: Unit, number: int | None, val_fraction: float) -> bool:
    h = hashlib.sha1(f"{seed}|{unit.source}|{unit.rel}|{number}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < val_fraction


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _check_tokenizer(out: Path) -> None:
    marker = out / "tokenizer.json"
    if marker.exists():
        try:
            check_compatible(json.loads(marker.read_text()))
        except (TokenizerMismatchError, json.JSONDecodeError) as exc:
            raise TokenizerMismatchError(
                f"corpus in {out} was built with another tokenizer ({exc}); "
                "use another --out or delete it"
            ) from None
    else:
        _write_json_atomic(marker, tokenizer_config())


def load_corpus_tokenizer_check(out: str | os.PathLike[str]) -> None:
    """For readers (the trainer): refuse a corpus made with another tokenizer."""
    path = Path(out) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a token corpus (no tokenizer.json)")
    check_compatible(json.loads(path.read_text()))


def build_corpus(
    units: list[Unit],
    out: Path,
    workers: int,
    val_fraction: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    retry_skipped: bool = False,
) -> dict[str, Any]:
    """Convert (or reuse) every unit, then write manifest, arrays and report.

    ``retry_skipped`` converts again the cached units that had skipped pieces
    (after fixing a file, or upgrading music21).
    """
    t0 = time.perf_counter()
    (out / "units").mkdir(parents=True, exist_ok=True)
    _check_tokenizer(out)
    keyed = [(u, u.key()) for u in units]
    todo = [u for u, k in keyed if _needs_work(out / "units" / f"{k}.json", retry_skipped)]
    # Big files first so no worker is left with one long parse at the end.
    todo.sort(key=lambda u: -_size_and_mtime(u.path)[0])
    convert_seconds = 0.0
    bar = _progress(len(todo), progress)
    if todo:
        if workers > 1 and len(todo) > 1:
            ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ctx.Pool(workers, maxtasksperchild=200) as pool:
                for unit, result, secs in pool.imap_unordered(_work, todo, chunksize=1):
                    convert_seconds += secs
                    _write_json_atomic(out / "units" / f"{unit.key()}.json", result)
                    bar.update(1)
        else:
            for unit in todo:
                unit, result, secs = _work(unit)
                convert_seconds += secs
                _write_json_atomic(out / "units" / f"{unit.key()}.json", result)
                bar.update(1)
    bar.close()
    report = _assemble(keyed, out, val_fraction, seed)
    report.update(
        converted_units=len(todo),
        cached_units=len(units) - len(todo),
        workers=workers,
        convert_cpu_seconds=round(convert_seconds, 1),
        build_seconds=round(time.perf_counter() - t0, 1),
    )
    _write_json_atomic(out / "report.json", report)
    return report


def _needs_work(cached: Path, retry_skipped: bool) -> bool:
    if not cached.exists():
        return True
    return retry_skipped and bool(json.loads(cached.read_text())["skipped"])


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc="corpus", unit="file", disable=not enabled or total == 0,
                    file=sys.stderr, mininterval=2.0)
    except ImportError:  # tqdm is optional: stay silent
        class _Null:
            def update(self, n: int) -> None: ...
            def close(self) -> None: ...

        return _Null()


def _assemble(keyed: list[tuple[Unit, str]], out: Path, val_fraction: float, seed: int) -> dict:
    arrays: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    offsets = {"train": 0, "val": 0}
    per_source: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    skipped: list[str] = []
    velocity_flat = pedal_pieces = total_notes = 0
    tmp_manifest = out / f".manifest.jsonl.{os.getpid()}.tmp"
    tmp_notes = out / f".annotations.jsonl.{os.getpid()}.tmp"
    with tmp_manifest.open("w") as manifest, tmp_notes.open("w") as notes_file:
        for unit, key in keyed:
            result = json.loads((out / "units" / f"{key}.json").read_text())
            skipped += result["skipped"]
            per_source[unit.source]["skipped"] += len(result["skipped"])
            for piece in result["pieces"]:
                split = "val" if is_val(seed, unit, piece["number"], val_fraction) else "train"
                ids = np.asarray(piece["ids"], dtype=np.uint16)
                entry = {
                    "id": f"{unit.source}/{unit.rel}"
                    + (f"#{piece['number']}" if piece["number"] is not None else ""),
                    "source": unit.source,
                    "title": piece["title"],
                    "path": unit.rel,
                    "number": piece["number"],
                    "split": split,
                    "offset": offsets[split],
                    "tokens": int(ids.size),
                    "bars": piece["bars"],
                    "notes": piece["notes"],
                }
                manifest.write(json.dumps(entry) + "\n")
                if piece.get("annotations"):
                    notes_file.write(json.dumps({"id": entry["id"]} | piece["annotations"]) + "\n")
                arrays[split].append(ids)
                offsets[split] += int(ids.size)
                src = per_source[unit.source]
                src["pieces"] += 1
                src["bars"] += piece["bars"]
                src["tokens"] += int(ids.size)
                src["notes"] += piece["notes"]
                src[f"{split}_pieces"] += 1
                velocity_flat += piece["velocities"] <= 1
                pedal_pieces += piece["pedal_events"] > 0
                total_notes += piece["notes"]
    for split, parts in arrays.items():
        data = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
        tmp = out / f".{split}.{os.getpid()}.npy"
        np.save(tmp, data)
        os.replace(tmp, out / f"{split}.npy")
    os.replace(tmp_notes, out / "annotations.jsonl")
    os.replace(tmp_manifest, out / "manifest.jsonl")
    for name, src in per_source.items():
        src["license"] = source_license(name)  # type: ignore[assignment]
    pieces = sum(s["pieces"] for s in per_source.values())
    tokens = sum(s["tokens"] for s in per_source.values())
    from model.tokens.config import build_tokenizer

    return {
        "tokenizer": tokenizer_config(),
        "vocab_size": len(build_tokenizer().vocab),
        "sources": {k: dict(v) for k, v in sorted(per_source.items())},
        "pieces": pieces,
        "tokens": tokens,
        "train_tokens": offsets["train"],
        "val_tokens": offsets["val"],
        "skipped": skipped,
        "measurements": {
            "pieces_with_one_velocity": velocity_flat,
            "pieces_with_pedal": pedal_pieces,
            "notes": total_notes,
            # What Velocity tokens would add: one token per note.
            "velocity_token_overhead": round(total_notes / tokens, 4) if tokens else 0.0,
        },
    }


# -- command line ------------------------------------------------------------------
def add_corpus_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help=f"corpus folder (default {default_corpus_dir()})")
    parser.add_argument("--music21", nargs="*", default=None, metavar="SOURCE",
                        help="music21 corpus sources (top folders, e.g. bach palestrina); "
                             "no names = all; the default when no --midi is given")
    parser.add_argument("--midi", nargs="+", default=[], metavar="DIR",
                        help="folders of .mid/.midi files (searched recursively)")
    parser.add_argument("--pop909", nargs="+", default=[], metavar="DIR",
                        help="POP909 folders (NNN/NNN.mid with beat, chord and key annotations): "
                             "bar lines from the annotated beats, chords kept for eval")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores)")
    parser.add_argument("--val-fraction", type=float, default=0.05,
                        help="share of pieces in the validation split (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split hash")
    parser.add_argument("--max-files", type=int, default=None, metavar="N",
                        help="only the first N units (files/tunes) in name order, for a quick run")
    parser.add_argument("--retry-skipped", action="store_true",
                        help="convert again the cached files that were skipped")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_corpus(args: argparse.Namespace) -> int:
    if not 0.0 <= args.val_fraction < 1.0:
        print("error: --val-fraction must be in [0, 1)", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser() if args.out else default_corpus_dir()
    try:
        units: list[Unit] = []
        if args.music21 is not None or not (args.midi or args.pop909):
            units += music21_units(args.music21 or None)
        units += midi_units(args.midi)
        units += pop909_units(args.pop909)
        units = list(dict.fromkeys(units))  # a folder given twice counts once
        if args.max_files is not None:
            units = units[: max(0, args.max_files)]
        if not units:
            print("error: nothing to convert", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        report = build_corpus(units, out, args.workers, args.val_fraction, args.seed,
                              progress=not args.no_progress,
                              retry_skipped=args.retry_skipped)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: converted files are cached in {out}; rerun to resume",
              file=sys.stderr)
        return 130
    for line in summary_lines(report):
        print(line)
    print(f"corpus written to {out}")
    return 0


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"{'source':<22}{'pieces':>8}{'bars':>10}{'tokens':>12}{'skipped':>9}  license"]
    for name, s in report["sources"].items():
        lines.append(f"{name:<22}{s.get('pieces', 0):>8}{s.get('bars', 0):>10}"
                     f"{s.get('tokens', 0):>12}{s.get('skipped', 0):>9}  {s.get('license', '')}")
    lines.append(f"{'total':<22}{report['pieces']:>8}"
                 f"{sum(s.get('bars', 0) for s in report['sources'].values()):>10}"
                 f"{report['tokens']:>12}{len(report['skipped']):>9}")
    lines.append(f"vocab {report['vocab_size']}, train {report['train_tokens']} / "
                 f"val {report['val_tokens']} tokens, {report['converted_units']} converted, "
                 f"{report['cached_units']} cached, {report['build_seconds']} s")
    for reason in report["skipped"][:20]:
        lines.append(f"skipped: {reason}")
    if len(report["skipped"]) > 20:
        lines.append(f"... {len(report['skipped']) - 20} more skipped (see report.json)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corpus", description=__doc__.splitlines()[0])
    add_corpus_args(parser)
    return run_corpus(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
