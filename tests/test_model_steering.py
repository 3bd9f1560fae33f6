"""model/scales.py and model/steering.py: parsing, masks, pace; density and texture on the bundled model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_checkpoint
from model.generation import answer_span, context_window, generate, prime
from model.sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, SamplingParams
from model.scales import estimate_key, key_name, parse_key, scale_pitch_classes
from model.steering import (MIN_REGISTER, REGISTER_MARGIN, Steer, Steering, check_key, parse_pitch,
                            parse_register, phrase_pace)
from model.tokens.config import PITCH_RANGE, build_tokenizer
from model.tokens.midi_io import encode_piece, load_piano_piece
from model.tokens.performance import GridNote

ROOT = Path(__file__).resolve().parent.parent


def test_keys_and_scales_parse_with_aliases_and_refuse_unknowns_in_one_line():
    assert parse_key("D dorian") == (2, "dorian")
    assert parse_key("f# Minor  Pentatonic") == (6, "minor pentatonic")
    assert parse_key("Db") == (1, "major") and parse_key("A#  blues") == (10, "blues")
    assert key_name(*parse_key("Gb major")) == "F# major"
    assert scale_pitch_classes(9, "minor") == {9, 11, 0, 2, 4, 5, 7, 8}  # with the leading tone G#
    assert scale_pitch_classes(0, "chromatic") == set(range(12))
    assert check_key(" Auto ") == "auto" and check_key("off") == "off"
    for bad in ("H major", "C bebop", ""):
        with pytest.raises(ValueError) as err:
            check_key(bad)
        assert "\n" not in str(err.value)


def test_estimate_key_of_scales_and_of_nothing():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    assert estimate_key(c_major) == (0, "major")
    assert estimate_key([p + 2 for p in c_major]) == (2, "major")
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57, 57]
    assert estimate_key(a_minor) == (9, "minor")
    assert estimate_key([]) == (0, "major")


def test_pitches_and_registers_parse():
    assert parse_pitch("C4") == 60 and parse_pitch("F#2") == 42 and parse_pitch("Bb5") == 82
    assert parse_pitch("72") == 72
    assert parse_register("auto") == (None, None) and parse_register("off") == PITCH_RANGE
    assert parse_register("48-84") == (48, 84) and parse_register("C3-C6") == (48, 84)
    assert parse_register("auto-72") == (None, 72) and parse_register("C2-auto") == (36, None)
    for bad in ("84-60", "C9-C10", "60", "x-y", "-5-60"):
        with pytest.raises(ValueError) as err:
            parse_register(bad)
        assert "\n" not in str(err.value)


def test_the_auto_register_is_the_phrase_widened_and_never_narrower_than_an_octave():
    heard = [60, 64, 67, 72]
    assert Steering().register(heard) == (60 - REGISTER_MARGIN, 72 + REGISTER_MARGIN)
    assert Steering().register([]) == PITCH_RANGE
    assert Steering().register([22, 107]) == PITCH_RANGE  # clamped to the piano
    assert Steering(register_low=50).register(heard) == (50, 72 + REGISTER_MARGIN)
    assert Steering(register_low=80).register(heard) == (74, 86)  # fixed low above the auto high: an octave
    lo, hi = Steering(register_low=60, register_high=62).register(heard)
    assert hi - lo == MIN_REGISTER and lo <= 60 and hi >= 62


def test_the_pitch_mask_is_the_scale_inside_the_register():
    steer = Steer.build((2, "dorian"), (50, 70))
    allowed = [p for p in range(PITCH_RANGE[0], PITCH_RANGE[1] + 1) if steer.allows(p)]
    assert allowed == [p for p in range(50, 71) if p % 12 in scale_pitch_classes(2, "dorian")]
    # No note of the scale in the register: the register alone (never an empty mask).
    narrow = Steer.build((0, "major pentatonic"), (61, 61))
    assert [p for p in range(21, 109) if narrow.allows(p)] == [61]
    # Non-pitch tokens are never masked.
    assert steer.pitch_ok.sum() == len(steer.pitch_ok) - 88 + len(allowed)


def test_phrase_pace_is_notes_per_quarter_note():
    notes = [GridNote(0, 24, 60, 80), GridNote(24, 24, 62, 80), GridNote(48, 48, 64, 80)]  # 3 notes, 4 quarters
    assert phrase_pace(notes) == pytest.approx(0.75)
    assert phrase_pace([]) is None
    assert Steering(density=1.0).resolve(notes).pace == pytest.approx(1.5)
    assert Steering(density=-1.0).resolve(notes).pace == pytest.approx(0.375)
    assert Steering().resolve(notes).pace is None  # density 0: the model's own pace
    with pytest.raises(ValueError):
        Steering(density=1.5)


def test_texture_aims_from_the_phrases_notes_per_onset_toward_one_or_a_chord():
    notes = [GridNote(0, 24, 60, 80), GridNote(0, 24, 64, 80), GridNote(24, 24, 62, 80)]  # 1.5 per onset
    aim = {t: Steering(texture=t).resolve(notes).chord for t in (-1.0, -0.5, 0.0, 0.5, 1.0)}
    assert aim[-1.0] is None and aim[0.0] is None  # a hard single line; the model's own
    assert aim[-0.5] == pytest.approx(1.25) and aim[0.5] == pytest.approx(2.75) and aim[1.0] == pytest.approx(4.0)
    assert Steering(texture=1.0).resolve([]).chord is None  # nothing heard: nothing to aim from


@pytest.fixture(scope="module")
def bundled():
    torch.set_num_threads(1)
    model, _ = load_checkpoint(ROOT / "resources" / "models" / "default.safetensors")
    return model.eval()


def answers(model, steering: Steering, seeds=(1, 2, 3), bars=4):
    vocab = build_tokenizer().vocab
    piece = load_piano_piece(ROOT / "resources" / "phrases" / "01-pop-ballad-4-4.mid").piece
    context, offset = context_window(encode_piece(piece), 4)
    track, logits, state = prime(model, [vocab["BOS_None"]] + [vocab[t] for t in context])
    start, end = answer_span(track, max(n.start + n.duration for n in piece.notes) - offset, bars)
    steer = steering.resolve(track.decoder.notes)
    params = SamplingParams(temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P)
    rows = [row for s in seeds for row in generate(model, state, logits, track, start, end, 4, params, seed=s,
                                                  steer=steer)]
    notes = sum(len(r) for r in rows)
    onsets = sum(len({n.start for n in r}) for r in rows)
    return notes / (len(rows) * bars), notes / max(onsets, 1)


def test_density_moves_notes_per_bar_monotonically_on_the_bundled_model(bundled):
    per_bar = [answers(bundled, Steering(density=d))[0] for d in (-1.0, 0.0, 1.0)]
    assert per_bar[0] < per_bar[1] < per_bar[2], per_bar
    assert per_bar[2] >= 2 * per_bar[0], per_bar


def test_texture_moves_notes_per_onset_monotonically_on_the_bundled_model(bundled):
    per_onset = [answers(bundled, Steering(texture=t))[1] for t in (-1.0, 0.0, 1.0)]
    assert per_onset[0] == 1.0  # single line
    assert per_onset[0] < per_onset[1] < per_onset[2], per_onset
    assert np.isfinite(per_onset).all()
