"""Regenerate the .mid test files in this folder from the music21 corpus.

    python tests/data/make_test_midi.py

Public-domain pieces shipped in the music21 wheel, chosen to cover: a Bach
chorale (4 voices, pickup, fermatas), Palestrina (x/2 meter, long notes),
an Irish jig (6/8), a ragtime for piano (2/4, two staves, syncopation),
a Monteverdi madrigal (5 voices) and a German folk song (monophonic).
"""

from __future__ import annotations

from pathlib import Path

PIECES = {
    "bach_bwv66_6.mid": ("bach/bwv66.6", None),
    "palestrina_agnus_01.mid": ("palestrina/Agnus_01.krn", None),
    "joplin_maple_leaf_rag.mid": ("joplin/maple_leaf_rag", None),
    "monteverdi_madrigal_3_1.mid": ("monteverdi/madrigal.3.1.mxl", None),
    "essen_altdeu10_1.mid": ("essenFolksong/altdeu10.abc", 1),
    "ryans_jig.mid": ("ryansMammoth/BarneysGoatJig.abc", None),
}


def main() -> None:
    from music21 import corpus
    from music21.midi.translate import streamToMidiFile

    here = Path(__file__).resolve().parent
    for filename, (work, number) in PIECES.items():
        score = corpus.parse(work, number=number) if number else corpus.parse(work)
        if hasattr(score, "scores"):  # an Opus: keep the first tune
            score = score.scores[0]
        data = streamToMidiFile(score).writestr()
        (here / filename).write_bytes(data)
        print(f"{filename}: {len(data)} bytes from {work}")


if __name__ == "__main__":
    main()
