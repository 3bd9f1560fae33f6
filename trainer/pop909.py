"""POP909 songs as piano pieces on their annotated beat grid.

POP909 (Wang et al., ISMIR 2020; MIT license) gives each song as ``NNN/NNN.mid``
(tracks MELODY, BRIDGE, PIANO, played in time with the recording) beside
``beat_midi.txt`` (one quarter-note beat a line: ``time_s flag_a flag_b``,
``flag_b`` = 1 on downbeats), ``chord_midi.txt`` and ``key_audio.txt``.

The file's own ticks and tempo events only approximate the song's tempo and
bar 1 is not at tick 0, so quantizing from ticks puts bar lines in the wrong
place.  Here every annotated beat is one quarter note: note times in seconds
are mapped to beats by interpolating between the annotated beat times, bars
start on the annotated downbeats, and the notes then go through the same
``quantize_performance`` as every other file.  The three tracks together are
the piano part (sustain pedal folded into durations as usual).

Meter: the most common downbeat gap gives the song's bar (4 -> 4/4, 3 or 6 ->
3/4, 2 -> 2/4); a gap that is a multiple of it is that many bars, an odd gap
becomes a bar of its own length (a 2/4 or 5/4 bar, as real songs have) and a
stray single beat is folded into the bar before it.

Chords and keys are kept beside the tokens, in grid ticks
(``TICKS_PER_QUARTER`` a quarter note from the piece's first bar line), for
the chord-tone and in-key metrics of ``eval``.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.tokens.config import TICKS_PER_QUARTER
from model.tokens.midi_io import MidiError, MidiReadError, PianoPiece, read_score
from model.tokens.performance import (
    METER,
    NOTE_OFF,
    NOTE_ON,
    PEDAL,
    PerfEvent,
    is_supported_meter,
    quantize_performance,
)

LICENSE = "MIT (POP909-Dataset, Wang et al. 2020)"
BEAT_FILE, CHORD_FILE, KEY_FILE = "beat_midi.txt", "chord_midi.txt", "key_audio.txt"
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Chord qualities of POP909's labels -> intervals above the root.
CHORD_INTERVALS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10), "minmaj7": (0, 3, 7, 11), "dim7": (0, 3, 6, 9),
    "hdim7": (0, 3, 6, 10), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2), "min9": (0, 3, 7, 10, 2),
}
_DEGREES = {"1": 0, "2": 2, "3": 4, "4": 5, "5": 7, "6": 9, "7": 11, "9": 2, "11": 5, "13": 9}
_ORDER = {NOTE_OFF: 0, PEDAL: 1, METER: 2, NOTE_ON: 3}


class AnnotationError(MidiError):
    """A POP909 song folder whose annotations cannot be used."""


def is_song_folder(path: Path) -> bool:
    return (path / f"{path.name}.mid").is_file() and (path / BEAT_FILE).is_file()


def is_pop909_dir(root: Path) -> bool:
    """A folder of POP909 song folders (``NNN/NNN.mid`` + ``NNN/beat_midi.txt``)."""
    try:
        return any(is_song_folder(p) for p in root.iterdir() if p.is_dir())
    except OSError:
        return False


def song_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and is_song_folder(p))


# -- labels ------------------------------------------------------------------------
def pitch_class(name: str) -> int:
    """'F#' -> 6, 'Bb' -> 10."""
    if not name or name[0] not in PITCH_CLASSES:
        raise ValueError(f"bad pitch name {name!r}")
    pc = PITCH_CLASSES[name[0]]
    for accidental in name[1:]:
        pc += {"#": 1, "b": -1}.get(accidental, 0)
    return pc % 12


def chord_mask(label: str) -> int:
    """Bit mask of the chord's pitch classes (bit 0 = C); 0 for 'N' (no chord).

    'F#:min7' -> root F#, minor seventh; '/3' adds the bass, '(b7)' extensions.
    """
    if label in ("N", "X", ""):
        return 0
    root_name, _, quality = label.partition(":")
    root = pitch_class(root_name)
    quality, _, bass = quality.partition("/")
    quality, _, ext = quality.partition("(")
    intervals = list(CHORD_INTERVALS.get(quality or "maj")
                     or CHORD_INTERVALS["min" if quality.startswith("min") else "maj"])
    for degree in [d for d in ext.rstrip(")").split(",") if d] + ([bass] if bass else []):
        intervals.append(_degree(degree))
    mask = 0
    for i in intervals:
        mask |= 1 << ((root + i) % 12)
    return mask


def _degree(text: str) -> int:
    flats = text.count("b") - text.count("#")
    return (_DEGREES.get(text.strip("b#"), 0) - flats) % 12


def key_of(label: str) -> tuple[int, str]:
    """'Gb:maj' -> (6, 'maj')."""
    tonic, _, mode = label.partition(":")
    return pitch_class(tonic), ("min" if mode.startswith("min") else "maj")


# -- the beat grid -----------------------------------------------------------------
def read_table(path: Path, columns: int) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= columns:
            rows.append(parts[:columns])
    return rows


@dataclass
class BeatGrid:
    """Annotated beat times and the bars laid over them."""

    times: np.ndarray  # seconds of each annotated beat
    origin: int  # annotated beat index of quarter 0 (negative: a pickup before beat 0)
    bars: list[tuple[int, int]]  # (start quarter, length in quarters), in order

    def to_quarters(self, seconds: np.ndarray) -> np.ndarray:
        """Seconds -> quarter notes since the first bar line, linear between beats
        and extrapolated with the first/last beat length outside them."""
        t, idx = self.times, np.arange(len(self.times), dtype=np.float64)
        q = np.interp(seconds, t, idx)
        before, after = seconds < t[0], seconds > t[-1]
        q[before] = (seconds[before] - t[0]) / (t[1] - t[0])
        q[after] = idx[-1] + (seconds[after] - t[-1]) / (t[-1] - t[-2])
        return q - self.origin

    def meter_events(self) -> list[PerfEvent]:
        events, current = [], None
        for start, length in self.bars:
            if length != current:
                events.append(PerfEvent(float(start), METER, length, 4))
                current = length
        return events


def bar_unit(gaps: list[int]) -> int:
    """The song's bar length in quarters, from its most common downbeat gap."""
    if not gaps:
        return 4
    common = Counter(gaps).most_common(1)[0][0]
    if common % 4 == 0:
        return 4
    if common % 3 == 0:
        return 3
    return common if is_supported_meter(common, 4) else 4


def split_gap(gap: int, unit: int) -> list[int]:
    """Bar lengths filling ``gap`` quarters: whole bars of ``unit``, then the rest
    as a bar of its own (a single leftover quarter joins the bar before it)."""
    whole, rest = divmod(gap, unit)
    bars = [unit] * whole
    if rest == 1 and bars:
        bars[-1] += 1
    elif rest:
        bars.append(rest)
    return [b if is_supported_meter(b, 4) else unit for b in bars]


def beat_grid(rows: list[list[str]], n_extra_bars: int) -> BeatGrid:
    """Bars from the downbeat flags; ``n_extra_bars`` of the song's meter after the last."""
    times = np.array([float(r[0]) for r in rows])
    downs = [i for i, r in enumerate(rows) if float(r[2]) >= 0.5]
    if len(times) < 4 or not np.all(np.diff(times) > 0):
        raise AnnotationError(f"{BEAT_FILE}: fewer than 4 beats or times not increasing")
    if not downs:
        downs = [0]
    gaps = [b - a for a, b in zip(downs, downs[1:])]
    unit = bar_unit(gaps)
    # Quarter 0 is a bar line: the first downbeat, or a pickup bar before it.
    origin = downs[0] - unit * -(-downs[0] // unit)
    bars, q = [], 0
    for length in split_gap(downs[0] - origin, unit):  # the pickup, in whole bars
        bars.append((q, length))
        q += length
    for gap in gaps:
        for length in split_gap(gap, unit):
            if length == 1 and bars and is_supported_meter(bars[-1][1] + 1, 4):
                bars[-1] = (bars[-1][0], bars[-1][1] + 1)  # a stray beat joins its bar
            else:
                bars.append((q, length))
            q += length
    last = max(len(times) - downs[-1], 0)
    for _ in range(-(-last // unit) + n_extra_bars):
        bars.append((q, unit))
        q += unit
    bars = [(s, l if is_supported_meter(l, 4) else unit) for s, l in bars]
    return BeatGrid(times, origin, bars)


# -- one song ----------------------------------------------------------------------
def song_events(folder: Path, grid: BeatGrid, name: str) -> list[PerfEvent]:
    """All tracks' notes and sustain pedal, in quarters on the annotated grid."""
    from symusic import Score

    score = read_score(folder / f"{folder.name}.mid")  # checks size and header first
    try:
        sec = score.to("second")
    except Exception as exc:  # symusic: bad tempo map
        raise MidiReadError(f"{name}: cannot convert to seconds ({exc})") from None
    assert isinstance(sec, Score)
    keyed: list[tuple[float, int, int, PerfEvent]] = []
    for track in sec.tracks:
        if track.is_drum or not len(track.notes):
            continue
        notes = track.notes.numpy()
        starts = grid.to_quarters(notes["time"].astype(np.float64))
        ends = grid.to_quarters((notes["time"] + np.maximum(notes["duration"], 0)).astype(np.float64))
        for s, e, p, v in zip(starts, ends, notes["pitch"], notes["velocity"]):
            if s < 0:  # before the first bar line: no place on the grid
                continue
            keyed.append((s, _ORDER[NOTE_ON], len(keyed), PerfEvent(float(s), NOTE_ON, int(p), max(1, int(v)))))
            keyed.append((e, _ORDER[NOTE_OFF], len(keyed), PerfEvent(float(e), NOTE_OFF, int(p))))
        for cc in track.controls:
            if cc.number == 64:
                q = float(grid.to_quarters(np.array([cc.time], dtype=np.float64))[0])
                if q >= 0:
                    keyed.append((q, _ORDER[PEDAL], len(keyed), PerfEvent(q, PEDAL, int(cc.value))))
    for ev in grid.meter_events():
        keyed.append((ev.time, _ORDER[METER], len(keyed), ev))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def annotations(folder: Path, grid: BeatGrid) -> dict[str, list]:
    """Chords ``[start_tick, end_tick, pitch-class mask]`` and keys
    ``[start_tick, end_tick, tonic pc, 'maj'|'min']`` on the piece's grid."""
    def ticks(a: float, b: float) -> tuple[int, int]:
        q = grid.to_quarters(np.array([a, b], dtype=np.float64)) * TICKS_PER_QUARTER
        return int(round(q[0])), int(round(q[1]))

    chords, keys = [], []
    if (folder / CHORD_FILE).is_file():
        for start, end, label in read_table(folder / CHORD_FILE, 3):
            try:
                mask = chord_mask(label)
            except ValueError:
                continue
            s, e = ticks(float(start), float(end))
            if mask and e > max(s, 0):
                chords.append([max(s, 0), e, mask])
    if (folder / KEY_FILE).is_file():
        for start, end, label in read_table(folder / KEY_FILE, 3):
            try:
                tonic, mode = key_of(label)
            except ValueError:
                continue
            s, e = ticks(float(start), float(end))
            if e > max(s, 0):
                keys.append([max(s, 0), e, tonic, mode])
    return {"chords": chords, "keys": keys}


def load_song(folder: str | os.PathLike[str]) -> tuple[PianoPiece, dict[str, list]]:
    """The song as the tokenizer sees it, plus its chord/key annotations."""
    folder = Path(folder)
    name = f"pop909/{folder.name}"
    try:
        rows = read_table(folder / BEAT_FILE, 3)
        grid = beat_grid(rows, n_extra_bars=2)
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"{name}: unusable beat annotations ({exc})") from None
    events = song_events(folder, grid, name)
    piece = quantize_performance(events)
    if not piece.notes:
        raise MidiError(f"{name}: no notes on the annotated grid")
    velocities = {e.b for e in events if e.kind == NOTE_ON}
    pedals = sum(1 for e in events if e.kind == PEDAL)
    seconds_per_beat = float(np.median(np.diff(grid.times)))
    piano = PianoPiece(piece, events, 60.0 / seconds_per_beat, [], len(velocities), pedals)
    return piano, annotations(folder, grid)


def describe(folder: Path) -> dict[str, Any]:
    """A short summary of one song's grid (for the corpus report and debugging)."""
    grid = beat_grid(read_table(folder / BEAT_FILE, 3), 0)
    lengths = Counter(length for _, length in grid.bars)
    return {"bars": len(grid.bars), "meters": {f"{k}/4": v for k, v in sorted(lengths.items())}}
