"""The one REMI configuration of Composer Copilot, and its checkpoint contract.

Every checkpoint stores ``tokenizer_config()`` verbatim in its JSON sidecar
under ``"tokenizer"``; the app rebuilds the tokenizer from it with
``build_tokenizer`` and refuses a checkpoint whose dict differs from the app's
own (``check_compatible``).  Token ids are positions in miditok's vocabulary,
so any change below (grid, ranges, special tokens) is a new ``VERSION``.

Choices (figures behind them are in the issue note / corpus report):

* one stream, piano only: Bar, TimeSig, Position, Pitch, Duration;
* no Velocity tokens: the score corpus is flat (music21 exports one velocity
  per piece), and they would cost a token per note; playback follows the
  player's own dynamics instead;
* no Pedal tokens: the sustain pedal is folded into note durations before
  tokenizing (``midi_io.fold_sustain_pedal``);
* 12 positions per beat for durations up to 4 beats (straight 16ths and
  eighth/16th triplets are exact), quarter-beat steps up to 8 beats, the
  longest note token; longer notes are clipped to it;
* time signatures with denominators 2, 4 and 8; the tick grid is then
  ``TICKS_PER_QUARTER`` = 24 ticks per quarter note (miditok's time division).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from miditok import REMI, TokenizerConfig

#: Bump whenever anything that changes token ids or their meaning changes.
VERSION = 1

PITCH_RANGE = (21, 108)  # piano keys A0..C8, both ends included (miditok style)
BEAT_RES = {(0, 4): 12, (4, 8): 4}  # positions per beat, by duration range in beats
SPECIAL_TOKENS = ["PAD", "BOS", "EOS"]
# Numerators allowed per denominator.  12 per beat at x/8 and x/4 and 12 per
# half note at x/2; the longest bar (12/8, 12/4) has 144 positions.
TIME_SIGNATURE_RANGE = {
    2: [1, 2, 3, 4, 6, 8],
    4: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    8: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
}
DEFAULT_TIME_SIGNATURE = (4, 4)
DEFAULT_VELOCITY = 100  # what miditok's decoder gives every note (no Velocity tokens)
TICKS_PER_QUARTER = 24  # = miditok time_division for this config; checked in tests

_NAME = "composer-copilot-remi"


class TokenizerMismatchError(ValueError):
    """A checkpoint or corpus was made with a tokenizer other than this one."""


def tokenizer_config() -> dict[str, Any]:
    """The JSON-serialisable description stored in every checkpoint sidecar."""
    return {
        "name": _NAME,
        "version": VERSION,
        "kind": "REMI",
        "pitch_range": list(PITCH_RANGE),
        # JSON keys must be strings: "lo-hi" -> positions per beat.
        "beat_res": {f"{lo}-{hi}": res for (lo, hi), res in BEAT_RES.items()},
        "special_tokens": list(SPECIAL_TOKENS),
        "time_signature_range": {
            str(den): list(nums) for den, nums in TIME_SIGNATURE_RANGE.items()
        },
        "use_velocities": False,
        "use_sustain_pedals": False,
        "use_tempos": False,
        "use_rests": False,
        "use_programs": False,
        "use_time_signatures": True,
    }


def _miditok_config(cfg: dict[str, Any]) -> TokenizerConfig:
    beat_res = {
        tuple(int(x) for x in key.split("-")): int(res)
        for key, res in cfg["beat_res"].items()
    }
    ts_range = {int(den): list(nums) for den, nums in cfg["time_signature_range"].items()}
    return TokenizerConfig(
        pitch_range=tuple(cfg["pitch_range"]),
        beat_res=beat_res,
        special_tokens=list(cfg["special_tokens"]),
        use_velocities=cfg["use_velocities"],
        use_sustain_pedals=cfg["use_sustain_pedals"],
        use_tempos=cfg["use_tempos"],
        use_rests=cfg["use_rests"],
        use_programs=cfg["use_programs"],
        use_time_signatures=cfg["use_time_signatures"],
        use_chords=False,
        use_pitch_bends=False,
        use_pitchdrum_tokens=False,  # drums are dropped before tokenizing
        time_signature_range=ts_range,
    )


def build_tokenizer(cfg: dict[str, Any] | None = None) -> REMI:
    """A miditok REMI tokenizer for ``cfg`` (a ``tokenizer_config()`` dict).

    ``None`` means this app's configuration; that one is built once and
    shared, so treat the returned object as read-only.
    """
    if cfg is None:
        return _app_tokenizer()
    check_compatible(cfg)
    return REMI(_miditok_config(copy.deepcopy(cfg)))


@lru_cache(maxsize=1)
def _app_tokenizer() -> REMI:
    return REMI(_miditok_config(tokenizer_config()))


def check_compatible(sidecar_tokenizer: Any) -> None:
    """Raise ``TokenizerMismatchError`` (one line) unless it equals ours.

    Compared after a JSON round trip so tuples/lists and int keys from a
    reloaded sidecar compare equal to the freshly made dict.
    """
    ours = json.loads(json.dumps(tokenizer_config()))
    if not isinstance(sidecar_tokenizer, dict):
        raise TokenizerMismatchError(
            "checkpoint has no tokenizer description (expected a dict under 'tokenizer')"
        )
    theirs = json.loads(json.dumps(sidecar_tokenizer))
    if theirs == ours:
        return
    if theirs.get("name") != ours["name"]:
        raise TokenizerMismatchError(
            f"checkpoint tokenizer {theirs.get('name')!r} is not this app's "
            f"{ours['name']!r}"
        )
    diffs = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    raise TokenizerMismatchError(
        f"checkpoint tokenizer v{theirs.get('version')} differs from this app's "
        f"v{ours['version']} in: {', '.join(diffs)}; use a model trained for this version"
    )
