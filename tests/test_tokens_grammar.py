"""The REMI grammar mask: real encodings pass, junk is masked, sampling under
the mask only produces canonical sequences (decode -> encode is the identity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.tokens.config import build_tokenizer
from model.tokens.grammar import GrammarError, RemiGrammar
from model.tokens.midi_io import decode_tokens, encode_piece, load_piano_piece
from model.tokens.performance import GridNote, QuantizedPiece, dedupe_and_sort

DATA = Path(__file__).parent / "data"
VOCAB = build_tokenizer().vocab
NAMES = {i: t for t, i in VOCAB.items()}


def _allowed_names(g: RemiGrammar) -> set[str]:
    return {NAMES[i] for i in np.flatnonzero(g.allowed())}


@pytest.mark.parametrize("path", sorted(DATA.glob("*.mid")), ids=lambda p: p.stem)
def test_real_encodings_are_accepted(path):
    tokens = encode_piece(load_piano_piece(path).piece)
    assert RemiGrammar().accepts(["BOS_None", *tokens, "EOS_None", "PAD_None"])


def test_start_of_sequence():
    g = RemiGrammar()
    assert _allowed_names(g) == {"BOS_None", "Bar_None"}
    g.update("Bar_None")
    assert {t.split("_")[0] for t in _allowed_names(g)} == {"TimeSig"}


def test_positions_stay_inside_the_bar_and_move_forward():
    g = RemiGrammar()
    for t in ["Bar_None", "TimeSig_3/4"]:
        g.update(t)
    positions = {t for t in _allowed_names(g) if t.startswith("Position")}
    assert positions == {f"Position_{i}" for i in range(36)}
    for t in ["Position_10", "Pitch_60", "Duration_1.0.12"]:
        g.update(t)
    allowed = _allowed_names(g)
    assert "Position_10" not in allowed and "Position_11" in allowed
    assert "Position_36" not in allowed
    assert {"Bar_None", "EOS_None"} <= allowed
    with pytest.raises(GrammarError):
        g.update("Position_3")


def test_notes_of_one_onset_are_in_canonical_order():
    g = RemiGrammar()
    for t in ["Bar_None", "TimeSig_4/4", "Position_0", "Pitch_64", "Duration_1.0.12"]:
        g.update(t)
    allowed = _allowed_names(g)
    assert "Pitch_64" not in allowed and "Pitch_60" in allowed  # no pitch twice
    g.update("Pitch_60")  # lower pitch: must be strictly longer
    durations = {t for t in _allowed_names(g)}
    assert "Duration_1.0.12" not in durations and "Duration_1.1.12" in durations
    assert "Duration_0.6.12" not in durations
    g2 = RemiGrammar()
    for t in ["Bar_None", "TimeSig_4/4", "Position_0", "Pitch_64", "Duration_1.0.12", "Pitch_67"]:
        g2.update(t)
    assert "Duration_1.0.12" in _allowed_names(g2)  # higher pitch: may be as long


def test_incomplete_and_invalid_sequences_are_rejected():
    assert not RemiGrammar().accepts(["Bar_None", "TimeSig_4/4", "Position_0", "Pitch_60"])
    assert not RemiGrammar().accepts(["Pitch_60", "Duration_1.0.12"])
    assert not RemiGrammar().accepts(["Bar_None", "Position_0"])
    assert RemiGrammar().accepts([])


def test_mask_works_with_ids_and_torch():
    torch = pytest.importorskip("torch")
    g = RemiGrammar()
    g.update(VOCAB["Bar_None"])
    mask = g.allowed_torch()
    assert mask.dtype == torch.bool and mask.shape == (len(VOCAB),)
    assert bool(mask[VOCAB["TimeSig_6/8"]]) and not bool(mask[VOCAB["Pitch_60"]])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 120))
def test_sampling_under_the_mask_gives_canonical_sequences(seed, length):
    """Random walks under the mask decode and re-encode to themselves."""
    rng = np.random.default_rng(seed)
    g, tokens = RemiGrammar(), []
    for _ in range(length):
        allowed = np.flatnonzero(g.allowed())
        tid = int(rng.choice(allowed))
        name = NAMES[tid]
        if name in ("BOS_None", "EOS_None", "PAD_None"):
            if name == "BOS_None":
                g.update(tid)
            continue
        g.update(tid)
        tokens.append(name)
    while tokens and not RemiGrammar().accepts(tokens):
        tokens.pop()  # cut back to the last complete note
    if not tokens:
        return
    score = decode_tokens(tokens)
    notes = [GridNote(n.time, n.duration, n.pitch, 100) for n in score.tracks[0].notes]
    meters = [(ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures]
    last = max(n.start for n in notes)
    meters = [m for m in meters if m[0] <= last]
    assert encode_piece(QuantizedPiece(dedupe_and_sort(notes), meters)) == tokens


def test_fork_is_independent_and_shares_the_vocabulary():
    from model.tokens.grammar import RemiGrammar

    g = RemiGrammar()
    for tok in ["BOS_None", "Bar_None", "TimeSig_4/4", "Position_0", "Pitch_60", "Duration_1.0.12"]:
        g.update(tok)
    twin = g.fork()
    assert twin.v is g.v
    twin.update("Pitch_64")
    twin.update("Duration_1.0.12")
    assert twin.pitches_here == {60, 64} and g.pitches_here == {60}
    assert (g.allowed() != twin.allowed()).any()


def test_allowed_keeping_meter_pins_the_time_signature_after_a_bar():
    vocab = build_tokenizer().vocab
    g = RemiGrammar()
    waltz = vocab["TimeSig_3/4"]
    for t in ("Bar_None", "TimeSig_3/4", "Position_0", "Pitch_60", "Duration_1.0.12"):
        g.update(t)
    assert np.array_equal(g.allowed_keeping_meter(waltz), g.allowed())  # mid-bar: untouched
    g.update("Bar_None")
    pinned = g.allowed_keeping_meter(waltz)
    assert g.allowed()[vocab["TimeSig_4/4"]] and list(np.flatnonzero(pinned)) == [waltz]
    assert np.array_equal(g.allowed_keeping_meter(None), g.allowed())
