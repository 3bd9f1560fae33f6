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
import re
from dataclasses import dataclass, field
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from ..atomic_io import ReadRefused, atomic_write_bytes, read_regular_file
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
# A file's tempo outside this range is a broken event (0 us a quarter reads as
# an infinite tempo, 0xFFFFFF us as 3.6 BPM), not music: the default is used.
MIN_TEMPO_QPM, MAX_TEMPO_QPM = 10.0, 1000.0
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
    # One line each for what was read other than the file says (a broken
    # tempo replaced by the default); callers show them as warnings.
    warnings: list[str] = field(default_factory=list)


def read_score(path: str | os.PathLike[str]) -> Score:
    """Parse a .mid/.midi file with symusic; ``MidiReadError`` if unusable."""
    path = Path(path)
    return score_from_bytes(read_midi_bytes(path), str(path.name))


def read_midi_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file of at most ``MAX_FILE_BYTES``; ``MidiError`` otherwise.

    A symlink to /dev/zero, a FIFO or a folder named x.mid is refused with
    its kind, never read (``read_regular_file`` says why that matters).
    """
    path = Path(path)
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except ReadRefused as exc:
        if exc.too_large:
            raise PieceTooLargeError(f"{path.name}: {exc.reason}, too large") from None
        raise MidiReadError(str(exc)) from None
    except OSError as exc:
        raise MidiReadError(f"{path}: cannot read ({exc.strerror or exc})") from None


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
        # symusic drops tracks without notes (a file of velocity-0 note-ons
        # is one), so "no tracks" would mislead: what is missing is notes.
        raise EmptyPieceError(f"{name}: no notes")
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
    tempo, warning = first_tempo(score, name)
    velocities = {n.velocity for t in melodic for n in t.notes}
    pedals = sum(1 for t in melodic for c in t.controls if c.number == 64)
    return PianoPiece(piece, events, tempo, dropped, len(velocities), pedals,
                      [warning] if warning else [])


def first_tempo(score: Score, name: str = "piece") -> tuple[float, str | None]:
    """The file's opening tempo in BPM, or the default and a warning line if unusable."""
    if not len(score.tempos):
        return DEFAULT_TEMPO_QPM, None
    mspq = int(score.tempos[0].mspq)  # microseconds a quarter, as stored in the file
    qpm = float(score.tempos[0].qpm) if mspq > 0 else float("inf")
    if MIN_TEMPO_QPM <= qpm <= MAX_TEMPO_QPM:
        return qpm, None
    return DEFAULT_TEMPO_QPM, _tempo_warning(name, f"a tempo of {mspq} us a quarter")


def _tempo_warning(name: str, what: str) -> str:
    return f"{name}: {what} is not usable; using {DEFAULT_TEMPO_QPM:g} BPM"


def load_piano_piece(path: str | os.PathLike[str], strict_meter: bool = False) -> PianoPiece:
    name = Path(path).name
    data = read_midi_bytes(path)
    piano = piano_piece(score_from_bytes(data, name), name, strict_meter)
    if malformed_tempo_event(data):
        # symusic reads a short tempo event's value from the bytes after it:
        # a plausible-looking tempo that the file never said.
        piano.tempo_qpm = DEFAULT_TEMPO_QPM
        piano.warnings = [_tempo_warning(name, "a tempo event that is not 3 bytes long")]
    return piano


_SHORT_TEMPO = re.compile(rb"\xff\x51[^\x03]")


def malformed_tempo_event(data: bytes) -> bool:
    """Whether a track holds a tempo meta event whose length is not 3.

    Only a structural walk of the events can tell a tempo event from bytes
    that merely look like one (a delta time can contain FF 51), so the walk
    runs only where such bytes occur at all - in real files, almost never.
    """
    if not _SHORT_TEMPO.search(data):
        return False
    pos = 8 + int.from_bytes(data[4:8], "big")
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        if data[pos:pos + 4] == b"MTrk" and _track_has_short_tempo(data[pos + 8:pos + 8 + size]):
            return True
        pos += 8 + size
    return False


def _vlq(buf: bytes, i: int) -> tuple[int, int]:
    """A variable-length quantity at ``i`` -> (value, index after it)."""
    value = 0
    for _ in range(4):
        if i >= len(buf):
            break
        byte = buf[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value, i


def _track_has_short_tempo(track: bytes) -> bool:
    i, status = 0, 0
    while i < len(track):
        _delta, i = _vlq(track, i)
        if i >= len(track):
            return False
        if track[i] >= 0x80:
            status = track[i]
            i += 1
        elif status < 0x80 or status >= 0xF0:
            return False  # data without a status: symusic's error to report, not ours
        if status == 0xFF:
            kind = track[i] if i < len(track) else 0
            length, i = _vlq(track, i + 1)
            if kind == 0x51 and length != 3:
                return True
            i += length
        elif status in (0xF0, 0xF7):
            length, i = _vlq(track, i)
            i += length
        else:
            i += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
    return False


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


def midi_bytes(score: Score) -> bytes:
    """``score`` as .mid file bytes, with the default tempo and meter if it has none."""
    if not len(score.tempos):
        score.tempos.append(Tempo(0, DEFAULT_TEMPO_QPM))
    if not len(score.time_signatures):
        score.time_signatures.append(TimeSignature(0, 4, 4))
    return score.dumps_midi()


def write_midi(score: Score, path: str | os.PathLike[str]) -> None:
    """Write ``score`` to ``path`` atomically: readers never see half a file."""
    atomic_write_bytes(Path(path), midi_bytes(score))


def write_notes(
    path: str | os.PathLike[str],
    notes: Sequence[GridNote],
    meters: Iterable[tuple[int, int, int]] = ((0, 4, 4),),
    tempo_qpm: float = DEFAULT_TEMPO_QPM,
    name: str = TRACK_NAME,
) -> None:
    write_midi(grid_score(notes, meters, tempo_qpm, name), path)
