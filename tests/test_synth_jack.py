"""The built-in piano heard through a real JACK server (dummy driver).

A JACK audio client (bench/_jack_recorder.py, JACK-Client) records the
synth's output ports. The synth plays what the Player sends at musical time:
there is sound where notes were planned and nowhere else, and after panic
(all notes off, all sound off) the output falls silent.
"""
from __future__ import annotations

import time

import mido
import pytest

from copilot_app.engine.player import PlannedNote, Player
from copilot_app.engine.synth_output import JACK_CLIENT, SynthOutput

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]

jack_recorder = pytest.importorskip("bench._jack_recorder", reason="JACK-Client is not installed")

SILENT = 1e-3   # -60 dBFS
LOUD = 1e-2     # -40 dBFS: a piano note at velocity 90 peaks far above it


@pytest.fixture
def synth_and_recorder():
    synth = SynthOutput()  # the app's choice of driver: JACK, since a server runs
    try:
        assert synth.driver_name == "jack"
        ports = jack_recorder.synth_ports(JACK_CLIENT)
        assert len(ports) == 2, ports
        with jack_recorder.JackRecorder(ports) as rec:
            time.sleep(0.2)
            yield synth, rec
    finally:
        synth.close()


def test_sound_where_notes_were_sent_and_silence_after_panic(synth_and_recorder):
    synth, rec = synth_and_recorder
    player = Player(synth)
    player.start()
    try:
        rec.take()
        t0 = time.monotonic()
        # Two short notes with a gap, then a long chord that panic cuts off.
        player.schedule([PlannedNote(60, 90, t0 + 0.30, t0 + 0.45),
                         PlannedNote(67, 90, t0 + 1.60, t0 + 1.75),
                         PlannedNote(48, 100, t0 + 2.90, t0 + 9.0), PlannedNote(64, 100, t0 + 2.90, t0 + 9.0)])
        time.sleep(max(0.0, t0 + 3.4 - time.monotonic()))
        assert player.open_notes == {(0, 48), (0, 64)}
        t_panic = time.monotonic()
        player.panic()
        assert player.open_notes == set()
        time.sleep(2.0)
        r = rec.take()
    finally:
        player.close()
    assert r.peak(t0, t0 + 0.28) < SILENT, "sound before the first note"
    assert r.peak(t0 + 0.30, t0 + 0.45) > LOUD, "no sound where the first note was sent"
    assert r.peak(t0 + 1.30, t0 + 1.58) < SILENT, "the first note did not end"
    assert r.peak(t0 + 1.60, t0 + 1.75) > LOUD, "no sound where the second note was sent"
    assert r.peak(t0 + 2.90, t_panic) > LOUD, "no sound while the chord was held"
    # All sound off stops every voice at once; the reverb's tail (~0.3 s) is
    # long gone a second later, with slack for a dummy driver that a loaded
    # machine slows against the wall clock the recording is mapped to.
    assert r.peak(t_panic + 1.2, t_panic + 1.9) < SILENT, "still sounding after panic"
    assert synth.voices == 0


def test_each_note_on_sounds_at_once(synth_and_recorder):
    """Every note-on is heard right away, not queued behind a buffer. How fast
    (the <= 15 ms target) is measured by bench/synth_latency.py, not asserted
    here: a test's timing on a loaded machine says little."""
    synth, rec = synth_and_recorder
    for pitch in (55, 62, 69, 76, 83):
        time.sleep(0.1)
        rec.take()
        t0 = time.monotonic()
        synth.send(mido.Message("note_on", note=pitch, velocity=90))
        time.sleep(0.3)
        r = rec.take()
        i = jack_recorder.onset(r.signal, SILENT, start=r.index_at(t0 - 0.05))
        assert i is not None, f"note {pitch} was never heard"
        assert r.time_at(i) - t0 < 0.25, f"note {pitch} sounded {r.time_at(i) - t0:.3f} s late"
        synth.send(mido.Message("note_off", note=pitch))
        synth.all_notes_off()
        time.sleep(0.6)  # the reverb tail fades before the next onset is looked for
