"""MIDI files in and out through symusic/miditok (no hand-written SMF parsing).

In: any type 0/1 file -> non-drum tracks merged into one piano "keyboard"
(sustain pedal folded into durations, see ``performance``) -> notes on the
REMI grid (``QuantizedPiece``) -> tokens through miditok.  The same events
replayed through ``StreamingEncoder`` give the same tokens.

Out: notes (or tokens) -> a type 1 .mid file with tempo, time signature and a
track name, written atomically (temp file + rename in the same folder).

Every failure a user can cause raises a ``MidiError`` subclass whose message
is one line fit for stderr.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from ..atomic_io import atomic_write_bytes
from .config import DEFAULT_VELOCITY, TICKS_PER_QUARTER, build_tokenizer
from .performance import (
    METER,
    NOTE_OFF,
    NOTE_ON,
    PEDAL,
    GridNote,
    PerfEvent,
    QuantizedPiece,
    UnsupportedMeterError,
    fold_stray_final_meter,
    is_supported_meter,
    quantize_performance,
)

MAX_FILE_BYTES = 8 * 1024 * 1024  # larger .mid files are not piano pieces
MAX_NOTES = 60_000
MAX_BEATS = 40_000  # ~5.5 hours at 120 BPM: anything longer is a broken file
DEFAULT_TEMPO_QPM = 120.0
TRACK_NAME = "Piano"

# At equal times: release keys, then pedal, then meter, then strike keys, so a
# repeated note ends before it starts again and a meter set at a bar line
# applies to the notes on it.
_ORDER = {NOTE_OFF: 0, PEDAL: 1, METER: 2, NOTE_ON: 3}


class MidiError(ValueError):
    """A MIDI file we cannot use; the message is one line."""


class MidiReadError(MidiError):
    pass


class EmptyPieceError(MidiError):
    pass


class PieceTooLargeError(MidiError):
    pass


class MeterError(MidiError):
    pass


@dataclass
class PianoPiece:
    """A file reduced to what the tokenizer sees, plus what playback needs."""

    piece: QuantizedPiece
    events: list[PerfEvent]  # the merged performance, in replay order
    tempo_qpm: float
    dropped_meters: list[str]  # unsupported time signatures that were ignored
    distinct_velocities: int  # for the velocity-token measurement
    pedal_events: int


def read_score(path: str | os.PathLike[str]) -> Score:
    """Parse a .mid/.midi file with symusic; ``MidiReadError`` if unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MidiReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise PieceTooLargeError(f"{path.name}: file is {size // 1024} KiB, too large")
    data = path.read_bytes()
    return score_from_bytes(data, str(path.name))


def score_from_bytes(data: bytes, name: str = "<bytes>") -> Score:
    if data[:4] != b"MThd":
        raise MidiReadError(f"{name}: not a MIDI file (no MThd header)")
    try:
        return Score.from_midi(data)
    except Exception as exc:  # symusic raises plain RuntimeError/ValueError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MidiReadError(f"{name}: malformed MIDI ({reason})") from None


def score_to_events(score: Score, strict_meter: bool = False) -> tuple[list[PerfEvent], list[str]]:
    """Merge the non-drum tracks into one keyboard performance (times in beats).

    Returns the events and the unsupported time signatures that were dropped
    (``strict_meter`` raises ``MeterError`` instead).
    """
    tpq = score.ticks_per_quarter
    if tpq <= 0:
        raise MidiReadError("invalid time division")
    keyed: list[tuple[float, int, int, PerfEvent]] = []
    serial = 0

    def add(ev: PerfEvent) -> None:
        nonlocal serial
        keyed.append((ev.time, _ORDER[ev.kind], serial, ev))
        serial += 1

    dropped: list[str] = []
    meters: list[tuple[float, int, int]] = []
    for ts in score.time_signatures:
        if is_supported_meter(ts.numerator, ts.denominator):
            meters.append((ts.time / tpq, ts.numerator, ts.denominator))
        elif strict_meter:
            raise MeterError(f"unsupported time signature {ts.numerator}/{ts.denominator}")
        else:
            dropped.append(f"{ts.numerator}/{ts.denominator}")
    last_onset = max((int(t.notes.numpy()["time"].max()) for t in score.tracks
                      if not t.is_drum and len(t.notes)), default=0) / tpq
    for time, num, den in fold_stray_final_meter(meters, last_onset):
        add(PerfEvent(time, METER, num, den))
    for track in score.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            add(PerfEvent(note.time / tpq, NOTE_ON, note.pitch, max(1, note.velocity)))
            add(PerfEvent((note.time + max(0, note.duration)) / tpq, NOTE_OFF, note.pitch))
        for cc in track.controls:
            if cc.number == 64:
                add(PerfEvent(cc.time / tpq, PEDAL, cc.value))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed], dropped


def piano_piece(score: Score, name: str = "piece", strict_meter: bool = False) -> PianoPiece:
    """Reduce a parsed score to the piano piece the tokenizer sees."""
    if not score.tracks:
        raise EmptyPieceError(f"{name}: no tracks")
    melodic = [t for t in score.tracks if not t.is_drum]
    if not any(len(t.notes) for t in melodic):
        kind = "drum-only" if any(len(t.notes) for t in score.tracks) else "no notes"
        raise EmptyPieceError(f"{name}: {kind}")
    n_notes = sum(len(t.notes) for t in melodic)
    if n_notes > MAX_NOTES:
        raise PieceTooLargeError(f"{name}: {n_notes} notes, more than {MAX_NOTES}")
    tpq = score.ticks_per_quarter
    if tpq > 0 and score.end() / tpq > MAX_BEATS:
        raise PieceTooLargeError(
            f"{name}: {score.end() / tpq:.0f} beats long, more than {MAX_BEATS}"
        )
    try:
        events, dropped = score_to_events(score, strict_meter)
    except (UnsupportedMeterError, MeterError) as exc:
        raise MeterError(f"{name}: {exc}") from None
    piece = quantize_performance(events)
    if not piece.notes:
        raise EmptyPieceError(f"{name}: no notes in the piano range")
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else DEFAULT_TEMPO_QPM
    velocities = {n.velocity for t in melodic for n in t.notes}
    pedals = sum(1 for t in melodic for c in t.controls if c.number == 64)
    return PianoPiece(piece, events, tempo, dropped, len(velocities), pedals)


def load_piano_piece(path: str | os.PathLike[str], strict_meter: bool = False) -> PianoPiece:
    return piano_piece(read_score(path), Path(path).name, strict_meter)


def grid_score(
    notes: Sequence[GridNote],
    meters: Iterable[tuple[int, int, int]] = ((0, 4, 4),),
    tempo_qpm: float = DEFAULT_TEMPO_QPM,
    name: str = TRACK_NAME,
) -> Score:
    """A one-track piano ``Score`` at ``TICKS_PER_QUARTER`` from grid notes."""
    score = Score(TICKS_PER_QUARTER)
    for tick, num, den in meters:
        score.time_signatures.append(TimeSignature(int(tick), int(num), int(den)))
    if not len(score.time_signatures) or score.time_signatures[0].time != 0:
        score.time_signatures.insert(0, TimeSignature(0, 4, 4))
    score.tempos.append(Tempo(0, float(tempo_qpm)))
    track = Track(name, 0, False)
    for n in notes:
        track.notes.append(Note(int(n.start), int(n.duration), int(n.pitch), int(n.velocity)))
    score.tracks.append(track)
    return score


def encode_piece(piece: QuantizedPiece) -> list[str]:
    """miditok's REMI tokens for a piece on the grid ([] for no notes).

    Without notes miditok would still give "Bar TimeSig"; the stream has no
    reason to emit a bar nothing happens in, so neither do we.
    """
    if not piece.notes:
        return []
    encoded = build_tokenizer().encode(grid_score(piece.notes, piece.meters))
    # Without Program tokens miditok gives one sequence per track; we have one.
    seq = encoded[0] if isinstance(encoded, list) else encoded
    return list(seq.tokens)


def encode_file(path: str | os.PathLike[str]) -> list[str]:
    return encode_piece(load_piano_piece(path).piece)


def tokens_to_ids(tokens: Iterable[str]) -> list[int]:
    vocab = build_tokenizer().vocab
    return [vocab[t] for t in tokens]


def decode_tokens(
    tokens: Sequence[str] | Sequence[int],
    tempo_qpm: float = DEFAULT_TEMPO_QPM,
    velocity: int = DEFAULT_VELOCITY,
    name: str = TRACK_NAME,
) -> Score:
    """miditok's decoding, with our tempo, velocity and track name."""
    tokenizer = build_tokenizer()
    ids = tokens_to_ids(tokens) if tokens and isinstance(tokens[0], str) else list(tokens)
    score = tokenizer.decode([[int(i) for i in ids]])  # one track
    out = grid_score([], [], tempo_qpm, name)
    out.time_signatures = score.time_signatures.copy()
    for track in score.tracks:
        for n in track.notes:
            out.tracks[0].notes.append(Note(n.time, n.duration, n.pitch, velocity))
    return out


def write_midi(score: Score, path: str | os.PathLike[str]) -> None:
    """Write ``score`` to ``path`` atomically: readers never see half a file."""
    path = Path(path)
    if not len(score.tempos):
        score.tempos.append(Tempo(0, DEFAULT_TEMPO_QPM))
    if not len(score.time_signatures):
        score.time_signatures.append(TimeSignature(0, 4, 4))
    atomic_write_bytes(path, score.dumps_midi())


def write_notes(
    path: str | os.PathLike[str],
    notes: Sequence[GridNote],
    meters: Iterable[tuple[int, int, int]] = ((0, 4, 4),),
    tempo_qpm: float = DEFAULT_TEMPO_QPM,
    name: str = TRACK_NAME,
) -> None:
    write_midi(grid_score(notes, meters, tempo_qpm, name), path)
