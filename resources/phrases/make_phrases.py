"""Write the example phrases of File > Open example (resources/phrases/*.mid).

    python resources/phrases/make_phrases.py

Short phrases written for this project (public domain, CC0), in different
styles and meters, each with a player's dynamics (accents, swells) so the
answer has something to follow. Deterministic: running it again rewrites the
same bytes.
"""
from __future__ import annotations

from pathlib import Path

import mido

HERE = Path(__file__).resolve().parent
TPQ = 480

# A phrase: (name, BPM in quarters, (numerator, denominator), notes), each
# note (start in quarters, length in quarters, pitch, velocity).
Note = tuple[float, float, int, int]


def pop_ballad() -> list[Note]:
    """4/4, 72 BPM: C - G - Am - F, broken chords under a singing line, a swell to bar 3."""
    chords = [(48, 55, 60, 64), (43, 50, 59, 62), (45, 52, 60, 64), (41, 48, 57, 60)]
    melody = [[(0, 1.5, 67), (1.5, 0.5, 67), (2, 1, 69), (3, 1, 67)],
              [(0, 1.5, 67), (1.5, 0.5, 65), (2, 2, 62)],
              [(0, 1, 64), (1, 1, 67), (2, 1, 72), (3, 1, 71)],
              [(0, 1.5, 69), (1.5, 0.5, 67), (2, 2, 65)]]
    swell = [0, 6, 14, 4]
    notes: list[Note] = []
    for bar, (chord, line) in enumerate(zip(chords, melody)):
        t0 = bar * 4
        for i, beat in enumerate((0, 1, 2, 3)):
            pitch = chord[(0, 1, 2, 1)[i]]
            notes.append((t0 + beat, 1.0, pitch, 52 + swell[bar] + (8 if beat == 0 else 0)))
        for start, length, pitch in line:
            notes.append((t0 + start, length, pitch, 74 + swell[bar] + (6 if start in (0, 2) else 0)))
    return notes


def waltz() -> list[Note]:
    """3/4, 150 BPM: oom-pah-pah, a strong one, a light two and three."""
    roots = [48, 43, 48, 41, 48, 43, 43, 48]
    chords = {48: (64, 67), 43: (62, 65), 41: (65, 69)}
    melody = [(76, 74, 72), (71, 74, 79), (76, 72, 67), (69, 72, 77),
              (76, 74, 72), (71, 72, 74), (77, 76, 74), (72, 67, 72)]
    notes: list[Note] = []
    for bar, (root, tune) in enumerate(zip(roots, melody)):
        t0 = bar * 3
        notes.append((t0, 1.0, root, 78))
        for beat in (1, 2):
            for pitch in chords[root]:
                notes.append((t0 + beat, 0.9, pitch, 50))
        for beat, pitch in enumerate(tune):
            notes.append((t0 + beat, 1.0, pitch, 88 if beat == 0 else 66))
    return notes


def jig() -> list[Note]:
    """6/8, dotted quarter = 100 (150 quarters a minute): running eighths, accents on 1 and 4."""
    eighths = [67, 71, 74, 72, 71, 69, 67, 69, 71, 74, 76, 74,
               72, 71, 69, 67, 69, 71, 72, 71, 69, 67, 66, 64,
               62, 66, 69, 72, 71, 69, 67, 71, 74, 79, 78, 76,
               74, 72, 71, 69, 67, 66]
    notes: list[Note] = []
    for i, pitch in enumerate(eighths):
        accent = 90 if i % 6 == 0 else (78 if i % 6 == 3 else 60)
        notes.append((i * 0.5, 0.5, pitch, accent))
    notes.append((len(eighths) * 0.5, 1.0, 67, 86))  # a dotted quarter ends the phrase
    for bar, (bass, fifth) in enumerate([(43, 50), (48, 55), (50, 57), (43, 50), (48, 55), (50, 57), (43, 50)]):
        notes.append((bar * 3, 1.5, bass, 70))
        notes.append((bar * 3 + 1.5, 1.5, fifth, 58))
    return notes


def chorale() -> list[Note]:
    """4/4, 66 BPM: four voices in quarter notes, a cadence, softer at the end."""
    voices = [  # soprano, alto, tenor, bass, one chord a beat
        (72, 67, 64, 48), (71, 67, 62, 43), (72, 69, 64, 45), (74, 69, 65, 41),
        (76, 67, 64, 48), (74, 69, 65, 50), (72, 67, 64, 52), (71, 67, 62, 55),
        (72, 69, 64, 57), (71, 67, 62, 55), (69, 65, 60, 53), (67, 64, 60, 52),
        (69, 65, 60, 50), (67, 64, 59, 55), (67, 62, 59, 43), (64, 60, 55, 48)]
    notes: list[Note] = []
    for beat, chord in enumerate(voices):
        level = 70 - (beat // 4) * 4 + (6 if beat % 4 == 0 else 0)
        length = 2.0 if beat == len(voices) - 1 else 0.95
        for voice, pitch in enumerate(chord):
            notes.append((beat, length, pitch, level + (8 if voice == 0 else 0)))
    return notes


PHRASES = [("01-pop-ballad-4-4", 72.0, (4, 4), pop_ballad),
           ("02-waltz-3-4", 150.0, (3, 4), waltz),
           ("03-jig-6-8", 150.0, (6, 8), jig),
           ("04-chorale-4-4", 66.0, (4, 4), chorale)]


def write(path: Path, bpm: float, meter: tuple[int, int], notes: list[Note]) -> None:
    events = []
    for start, length, pitch, velocity in notes:
        on, off = round(start * TPQ), round((start + length) * TPQ)
        events.append((on, 1, mido.Message("note_on", note=pitch, velocity=velocity)))
        events.append((off, 0, mido.Message("note_off", note=pitch, velocity=0)))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=path.stem, time=0),
                            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                            mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0),
                            mido.Message("program_change", program=0, time=0)])
    now = 0
    for tick, _order, msg in sorted(events, key=lambda e: (e[0], e[1], e[2].note)):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    mid.tracks.append(track)
    mid.save(str(path))


def main() -> None:
    for name, bpm, meter, make in PHRASES:
        path = HERE / f"{name}.mid"
        write(path, bpm, meter, make())
        print(f"{path.name}: {len(make())} notes, {meter[0]}/{meter[1]}, {bpm:g} BPM")


if __name__ == "__main__":
    main()
