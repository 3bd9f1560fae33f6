"""The built-in piano (FluidSynth) as an output, without an audio device.

The JACK tests (tests/test_synth_jack.py) listen to it; these check what
needs no sound: the one-line errors when it cannot start, the output
interface (send / all notes off / close) and the Player's promise that every
note-on gets its note-off, counted in FluidSynth's own voices. FluidSynth's
"file" driver renders in real time into a file in a temporary folder, so
voices start and end as they would on a sound card.
"""
from __future__ import annotations

import mido
import pytest

from copilot_app.engine import synth_output
from copilot_app.engine.clock import FakeClock
from copilot_app.engine.live import wait_until
from copilot_app.engine.player import PlannedNote, Player
from copilot_app.engine.synth_output import SynthOutput, SynthUnavailable


def _fluidsynth_ready() -> str | None:
    try:
        synth_output._library()
    except SynthUnavailable as exc:
        return str(exc)
    if synth_output.find_soundfont() is None:
        return "no SoundFont installed (apt install fluid-soundfont-gm)"
    return None


needs_fluidsynth = pytest.mark.skipif(_fluidsynth_ready() is not None, reason=str(_fluidsynth_ready()))


@pytest.fixture
def file_synth(tmp_path, monkeypatch):
    """The built-in piano rendering in real time to a file in tmp_path (no sound card needed)."""
    monkeypatch.chdir(tmp_path)  # the file driver writes ./fluidsynth.wav
    synth = SynthOutput(drivers=["file"])
    yield synth
    synth.close()


@needs_fluidsynth
def test_no_audio_device_is_one_line():
    with pytest.raises(SynthUnavailable) as err:
        SynthOutput(drivers=["no-such-audio-driver"])
    message = str(err.value)
    assert message.startswith("built-in piano: no audio device (tried no-such-audio-driver)")
    assert "\n" not in message


@needs_fluidsynth
def test_open_synth_reports_every_failure_as_synth_unavailable(monkeypatch):
    monkeypatch.setattr(synth_output, "audio_drivers", lambda: ["no-such-audio-driver"])
    with pytest.raises(SynthUnavailable, match="no audio device"):
        synth_output.open_synth()


def test_a_missing_soundfont_is_named(tmp_path):
    try:
        synth_output._library()
    except SynthUnavailable as exc:
        pytest.skip(str(exc))
    missing = tmp_path / "nothing.sf2"
    with pytest.raises(SynthUnavailable, match="nothing.sf2 is not there"):
        SynthOutput(soundfont=missing, drivers=["file"])


def test_the_soundfont_can_be_named_by_the_environment(tmp_path, monkeypatch):
    sf = tmp_path / "mine.sf2"
    monkeypatch.setenv("COPILOT_SOUNDFONT", str(sf))
    assert synth_output.find_soundfont() == sf
    monkeypatch.delenv("COPILOT_SOUNDFONT")
    found = synth_output.find_soundfont()
    assert found is None or found.is_file()


def test_jack_first_when_a_server_runs(monkeypatch):
    if not synth_output.sys.platform.startswith("linux"):
        pytest.skip("the driver order is Linux's")
    from copilot_app.engine import midi_ports

    monkeypatch.setattr(midi_ports, "jack_server_running", lambda: True)
    assert synth_output.audio_drivers() == ["jack"]
    monkeypatch.setattr(midi_ports, "jack_server_running", lambda: False)
    assert synth_output.audio_drivers() == ["pulseaudio", "alsa"]


@needs_fluidsynth
def test_notes_sound_and_all_notes_off_silences(file_synth):
    file_synth.send(mido.Message("note_on", note=60, velocity=100))
    file_synth.send(mido.Message("note_on", channel=3, note=67, velocity=80))
    assert wait_until(lambda: file_synth.voices > 0, 2.0)
    file_synth.all_notes_off()
    assert wait_until(lambda: file_synth.voices == 0, 2.0)


@needs_fluidsynth
def test_close_is_idempotent_and_later_sends_are_dropped(file_synth):
    file_synth.close()
    file_synth.close()
    file_synth.send(mido.Message("note_on", note=60, velocity=100))  # no crash after close
    file_synth.all_notes_off()
    assert file_synth.voices == 0 and file_synth.closed


@needs_fluidsynth
def test_the_player_ends_every_note_it_started_on_the_synth(file_synth):
    clock = FakeClock()
    player = Player(file_synth, clock)
    player.sent_log = []
    player.schedule([PlannedNote(60, 90, 0.0, 1.0), PlannedNote(64, 90, 0.0, 5.0), PlannedNote(67, 90, 0.5, 5.0)])
    clock.advance(0.6)
    player.pump()
    assert wait_until(lambda: file_synth.voices > 0, 2.0)
    assert player.open_notes == {(0, 60), (0, 64), (0, 67)}
    player.cancel()  # barge-in: a note-off for each note it started
    assert player.open_notes == set()
    ons = [m.note for _t, m in player.sent_log if m.type == "note_on"]
    offs = [m.note for _t, m in player.sent_log if m.type == "note_off"]
    assert sorted(ons) == sorted(offs) == [60, 64, 67]
    player.panic()  # all sound off on every channel: the release tails end too
    assert wait_until(lambda: file_synth.voices == 0, 2.0)


@needs_fluidsynth
def test_every_kind_of_channel_message_is_accepted(file_synth):
    for msg in (mido.Message("control_change", control=64, value=127),
                mido.Message("pitchwheel", pitch=-2048), mido.Message("program_change", program=4),
                mido.Message("aftertouch", value=30), mido.Message("note_on", note=60, velocity=0),
                mido.Message("note_off", note=61), mido.Message("clock"), mido.Message("sysex", data=[1, 2])):
        file_synth.send(msg)
    file_synth.all_notes_off()
    assert wait_until(lambda: file_synth.voices == 0, 2.0)
