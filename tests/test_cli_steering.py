"""--key / --register / --density / --texture on `continue` and `listen`, with the bundled model."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import pytest

from copilot_app import cli
from copilot_app.engine.session import SessionSettings
from model.scales import scale_pitch_classes
from model.steering import steering_from_args

ROOT = Path(__file__).resolve().parent.parent
PHRASE = ROOT / "resources" / "phrases" / "01-pop-ballad-4-4.mid"


def new_pitches(path: Path) -> list[int]:
    return [m.note for t in mido.MidiFile(path).tracks for m in t if m.type == "note_on" and m.velocity > 0]


def run_main(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], capture_output=True, text=True,
                          timeout=300)


def test_continue_answers_inside_the_locked_scale_and_register(tmp_path):
    out = tmp_path / "x.mid"
    cli.main(["continue", str(PHRASE), "-o", str(out), "--only-new", "--bars", "4", "--variations", "3",
              "--seed", "5", "--key", "Eb minor pentatonic", "--register", "C4-C6"])
    scale = scale_pitch_classes(3, "minor pentatonic")
    for k in (1, 2, 3):
        pitches = new_pitches(tmp_path / f"x-{k}.mid")
        assert len(pitches) >= 4
        assert all(p % 12 in scale and 60 <= p <= 84 for p in pitches)


def test_continue_single_line_texture(tmp_path):
    out = tmp_path / "x.mid"
    cli.main(["continue", str(PHRASE), "-o", str(out), "--only-new", "--bars", "2", "--seed", "1",
              "--texture", "-1"])
    onsets = []
    for track in mido.MidiFile(out).tracks:
        now = 0
        for m in track:
            now += m.time
            if m.type == "note_on" and m.velocity > 0:
                onsets.append(now)
    assert len(onsets) >= 2 and len(onsets) == len(set(onsets))  # one note per onset

@pytest.mark.parametrize("flag, value, says", [
    ("--key", "H major", "unknown key"), ("--key", "C bebop", "unknown scale"),
    ("--register", "84-60", "above the highest"), ("--register", "C9-C10", "outside the piano range"),
    ("--density", "3", "outside -1..1"), ("--texture", "x", "could not convert"),
])
def test_bad_steering_flags_are_one_usage_line(tmp_path, flag, value, says):
    res = run_main("continue", str(PHRASE), "-o", str(tmp_path / "x.mid"), flag, value)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("composer-copilot continue: error: argument " + flag) and says in last


def test_listen_flags_become_the_session_settings():
    args = cli.build_parser().parse_args(["listen", "--virtual", "--key", "auto", "--register", "auto-72",
                                          "--density", "-0.5", "--texture", "0.25"])
    steering = steering_from_args(args)
    settings = SessionSettings(key=steering.key, register_low=steering.register_low,
                               register_high=steering.register_high, density=steering.density,
                               texture=steering.texture)
    assert (settings.key, settings.register_low, settings.register_high) == ("auto", None, 72)
    assert (settings.density, settings.texture) == (-0.5, 0.25)
    assert settings.steering() == steering
    defaults = steering_from_args(cli.build_parser().parse_args(["listen", "--virtual"]))
    assert defaults == SessionSettings().steering()
