"""The main window driving a real LiveEngine with a tiny real RWKV-7 model.

MIDI goes in through the engine's own rtmidi callback path
(``EngineBridge.midi_in`` -> ``LiveEngine.midi_callback``), the on-screen
keyboard and musical typing; it comes out into a fake sink that records
every message. Settings live in a temporary ini file, models in tmp_path.
"""
from __future__ import annotations

import time
from pathlib import Path

import mido
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import symusic  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402

from copilot_app.ui import take_files as take_files_module  # noqa: E402
from copilot_app.ui import takes_panel as takes_module  # noqa: E402
from copilot_app.ui.main_window import MainWindow  # noqa: E402
from model import RWKV7, RWKVConfig, save_checkpoint  # noqa: E402
from model.tokens.config import TICKS_PER_QUARTER, build_tokenizer, tokenizer_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny real RWKV-7 with perturbed weights (a fresh init is too quiet)."""
    torch.manual_seed(seed)
    model = RWKV7(RWKVConfig(vocab_size=len(build_tokenizer().vocab), n_layer=2, n_embd=64, head_size=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_checkpoint(path, model, tokenizer=tokenizer_config())
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("gui-model") / "tiny.safetensors")


class RecordingSink:
    """A MIDI output that keeps what it was sent (thread-safe enough: list.append)."""

    def __init__(self) -> None:
        self.messages: list[mido.Message] = []

    def send(self, msg: mido.Message) -> None:
        self.messages.append(msg)

    def note_ons(self) -> list[mido.Message]:
        return [m for m in list(self.messages) if m.type == "note_on" and m.velocity > 0]

    def sounding(self) -> set[tuple[int, int]]:
        """(channel, pitch) still sounding after everything sent so far."""
        on: set[tuple[int, int]] = set()
        for m in list(self.messages):
            if m.type == "note_on" and m.velocity > 0:
                on.add((m.channel, m.note))
            elif m.type in ("note_off", "note_on"):
                on.discard((m.channel, m.note))
            elif m.type == "control_change" and m.control in (120, 123):
                on = {k for k in on if k[0] != m.channel}
        return on


@pytest.fixture
def settings(tmp_path) -> QSettings:
    s = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    yield s
    s.sync()


def started_window(qtbot, tmp_path: Path, model_path: Path, *, settings: QSettings | None = None,
                   open_ports: bool = False, before_show=None) -> MainWindow:
    """A main window on ``model_path`` (settings and models in ``tmp_path``)
    whose engine has started; ``before_show(window)`` runs before it shows."""
    settings = settings or QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, models_dir=tmp_path / "models", model_path=str(model_path),
                   device="cpu", open_ports=open_ports)
    qtbot.addWidget(w)
    if before_show is not None:
        before_show(w)
    w.show()
    qtbot.waitUntil(lambda: model_loaded(w), timeout=30000)
    return w


def model_loaded(w: MainWindow) -> bool:
    """The engine has the model (its snapshot says so), not only the loader."""
    return w.bridge.snapshot is not None and w.bridge.snapshot.model is not None


def _record_output(w: MainWindow) -> None:
    w.sink = RecordingSink()
    w.bridge.set_output_sink(w.sink)


@pytest.fixture
def window(qtbot, tmp_path, settings, tiny_model):
    w = started_window(qtbot, tmp_path, tiny_model, settings=settings, before_show=_record_output)
    w.bridge.update_settings(seed=0)
    yield w
    w.close()


def play(window, qtbot, pitches, seconds=0.08) -> None:
    """Notes through the rtmidi callback path, one after another."""
    for p in pitches:
        window.bridge.midi_in(mido.Message("note_on", note=p, velocity=70))
        qtbot.wait(int(seconds * 1000))
        window.bridge.midi_in(mido.Message("note_off", note=p, velocity=0))
        qtbot.wait(10)


def session(window):
    return window.bridge.engine.session


def test_sliders_change_the_engines_sampling_settings(window, qtbot):
    window.continuation.temperature.setValue(130)
    window.continuation.top_p.setValue(75)
    assert window.continuation.temperature_value.text() == "1.30" and window.continuation.top_p_value.text() == "0.75"
    window.continuation.advanced_toggle.setChecked(True)
    assert window.continuation.advanced.isVisible()
    window.continuation.top_k.setValue(12)
    window.continuation.variations.setValue(3)
    window.continuation.bars.setValue(4)
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("pedal"))
    # The engine thread applies them: wait for its copy, then check the sampler's params.
    # (the trigger change is the last command sent: its arrival means all of them have)
    qtbot.waitUntil(lambda: session(window).settings.top_k == 12 and session(window).settings.bars == 4
                    and session(window).settings.trigger_cc == 67, timeout=5000)
    s = session(window).settings
    params = s.sampling()
    assert (params.temperature, params.top_p, params.top_k) == (1.3, 0.75, 12)
    assert (s.variations, s.bars, s.trigger_cc, s.trigger_beats) == (3, 4, 67, 0.0)
    window.continuation.temperature.setValue(60)
    qtbot.waitUntil(lambda: session(window).settings.temperature == 0.6, timeout=5000)


def test_a_played_phrase_shows_in_the_roll_and_the_silence_answers_with_a_take(window, qtbot):
    window.time_controls.tempo.setValue(240.0)
    window.continuation.trigger_beats.setValue(1.0)  # 0.25 s of silence at 240 BPM
    window.continuation.variations.setValue(2)
    phrase = [60, 62, 64, 65, 67, 69]
    play(window, qtbot, phrase)
    # The roll shows the player's notes, closed, in order, on the session's time line.
    qtbot.waitUntil(lambda: len(window.roll.state.played) == len(phrase)
                    and all(n.end is not None for n in window.roll.state.played), timeout=5000)
    notes = window.roll.state.played
    assert [n.pitch for n in notes] == phrase
    assert all(a.start < b.start for a, b in zip(notes, notes[1:]))
    # Nobody pressed anything: the silence trigger answers.
    qtbot.waitUntil(lambda: len(window.takes.refs()) == 2, timeout=15000)
    take = window.takes.refs()[0].take
    assert take is session(window).takes[-1] and len(take.variations) == 2
    assert any(v.take is take for v in window.roll.state.takes)
    assert take.start_quarters >= notes[-1].start  # the answer comes after the phrase
    assert sum(len(v) for v in take.variations) > 0
    # ... and its notes go out to the MIDI output in time (only the Player writes there).
    qtbot.waitUntil(lambda: bool(window.sink.note_ons()), timeout=10000)
    assert {m.note for m in window.sink.note_ons()} <= {n.pitch for n in take.notes()}
    image = window.roll.grab().toImage()
    assert image.width() > 400


def test_continue_shortcut_next_variation_and_accept(window, qtbot):
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.continuation.variations.setValue(3)
    play(window, qtbot, [64, 67, 72])
    qtbot.wait(300)
    assert window.takes.refs() == []  # no silence trigger in button mode
    window.activateWindow()
    window.act_continue.trigger()     # Space
    qtbot.waitUntil(lambda: len(window.takes.refs()) == 3, timeout=15000)
    take = session(window).takes[-1]
    library = session(window).library
    window.act_next.trigger()          # Right
    qtbot.waitUntil(lambda: library.view(take).auditioned == 1, timeout=5000)  # the engine auditions it
    qtbot.waitUntil(lambda: window.takes.selected().index == 1, timeout=5000)  # the list follows
    window.act_previous.trigger()      # Left
    qtbot.waitUntil(lambda: library.view(take).auditioned == 0 and window.takes.selected().index == 0,
                    timeout=5000)
    window.act_next.trigger()
    qtbot.waitUntil(lambda: library.view(take).auditioned == 1 and window.takes.selected().index == 1,
                    timeout=5000)
    window.act_accept.trigger()        # Return
    qtbot.waitUntil(lambda: "accepted" in window.takes.list.currentItem().text(), timeout=5000)
    assert library.view(take).accepted == 1
    # The list's buttons: audition the third variation, then discard the take.
    window.takes.select(take, 2)
    window.takes.audition_button.click()
    qtbot.waitUntil(lambda: library.view(take).auditioned == 2, timeout=5000)
    engine = window.bridge.engine
    if take.variations[2]:
        qtbot.waitUntil(lambda: engine.player.pending > 0, timeout=5000)  # it is queued to play
    window.takes.discard_button.click()
    assert window.takes.refs() == [] and window.roll.state.takes == []
    qtbot.waitUntil(lambda: engine.player.pending == 0 and not engine.player.open_notes, timeout=5000)
    assert window.act_continue.shortcut().toString() == "Space"
    assert window.act_panic.shortcut().toString() == "Esc"


def test_on_screen_keyboard_and_musical_typing_feed_the_engine(window, qtbot):
    kb = window.keyboard
    centre = kb.key_rect(60).center()
    qtbot.mousePress(kb, Qt.MouseButton.LeftButton, pos=QPoint(int(centre.x()), int(kb.height() - 8)))
    qtbot.mouseRelease(kb, Qt.MouseButton.LeftButton, pos=QPoint(int(centre.x()), int(kb.height() - 8)))
    qtbot.keyPress(window.roll, Qt.Key.Key_G)   # G = the G above C4
    qtbot.keyRelease(window.roll, Qt.Key.Key_G)
    qtbot.keyPress(window.roll, Qt.Key.Key_X)   # octave up
    qtbot.keyPress(window.roll, Qt.Key.Key_A)   # C5
    qtbot.keyRelease(window.roll, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: len(window.roll.state.played) == 3, timeout=5000)
    assert [n.pitch for n in window.roll.state.played] == [60, 67, 72]
    qtbot.waitUntil(lambda: session(window).stats.notes_in == 3, timeout=5000)
    # The keyboard has no sound of its own: its notes are echoed to the output.
    assert [m.note for m in window.sink.note_ons()][:3] == [60, 67, 72]
    assert window.typing_row.octave_label.text() == "typing octave: C5"


def test_drag_carries_a_readable_midi_file_with_the_takes_notes(window, qtbot, monkeypatch, tmp_path):
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.time_controls.tempo.setValue(100.0)
    window.time_controls.meter_combo.setCurrentText("3/4")  # a new session in 3/4
    qtbot.waitUntil(lambda: window.bridge.snapshot.timeline.meter.numerator == 3, timeout=15000)
    play(window, qtbot, [60, 64, 67, 72])
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: bool(window.takes.refs()), timeout=15000)
    ref = window.takes.selected()
    assert ref is not None and ref.notes, "the tiny model answered with silence"

    drags = []

    class FakeDrag:  # QDrag.exec would start a real platform drag
        def __init__(self, source):
            self.source = source

        def setMimeData(self, mime):  # noqa: N802
            self.mime = mime

        def setPixmap(self, pixmap):  # noqa: N802
            pass

        def exec(self, action):
            drags.append(self)
            return action

    monkeypatch.setattr(takes_module, "QDrag", FakeDrag)
    # The take's files are written in the background as soon as it is complete,
    # so a drag only wraps a path that already exists: no write on the GUI thread.
    files = window.bridge.files
    qtbot.waitUntil(lambda: files.ready(ref.take), timeout=10000)
    written = files.path(ref.take, ref.index)
    stamp = written.stat().st_mtime_ns
    writes = []
    with monkeypatch.context() as m:
        m.setattr(take_files_module, "write_take", lambda *a, **k: writes.append(a))
        window.takes.list.startDrag(Qt.DropAction.CopyAction)
        handle = window.takes.handle  # the drag handle drags the same take
        qtbot.mousePress(handle, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
        qtbot.mouseMove(handle, QPoint(60, 30))
    assert len(drags) == 2 and writes == []
    for drag in drags:
        urls = drag.mime.urls()
        assert len(urls) == 1 and urls[0].isLocalFile()
        path = Path(urls[0].toLocalFile())
        assert path == written and path.stat().st_mtime_ns == stamp  # the file from before the drag
        assert path.suffix == ".mid" and path.is_file()
        score = symusic.Score(str(path), ttype="tick")
        assert score.tracks[0].name == f"Composer Copilot take {ref.take.number}"
        assert round(score.tempos[0].qpm) == 100
        assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (3, 4)
        tpq = score.ticks_per_quarter
        got = sorted((n.time * TICKS_PER_QUARTER // tpq, n.duration * TICKS_PER_QUARTER // tpq, n.pitch)
                     for n in score.tracks[0].notes)
        bar = 3 * TICKS_PER_QUARTER
        origin = int(round(ref.take.start_quarters * TICKS_PER_QUARTER)) // bar * bar
        want = sorted((n.start - origin, n.duration, n.pitch) for n in ref.notes)
        # A pitch struck again while it sounds ends there (as the Player plays it), so
        # the file has no overlapping notes of one pitch, which readers pair differently.
        for i, (start, duration, pitch) in enumerate(want):
            again = [s for s, _d, p in want[i + 1:] if p == pitch]  # sorted: s >= start
            if again and start + duration > again[0]:
                want[i] = (start, again[0] - start, pitch)
        want = sorted(n for n in want if n[1] > 0)
        assert got == want
        assert all(start % bar < bar for start, _, _ in got) and got[0][0] < 2 * bar  # starts in bar 1 or 2

    # File > Export take… writes the same notes where asked (off the GUI thread).
    out = tmp_path / "exported.mid"
    with qtbot.waitSignal(window.exported, timeout=10000):
        window.export_take(ref, path=str(out))
    exported = symusic.Score(str(out), ttype="tick")
    assert sorted(n.pitch for n in exported.tracks[0].notes) == sorted(n.pitch for n in ref.notes)


def test_panic_leaves_no_open_notes(window, qtbot):
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.time_controls.tempo.setValue(60.0)          # slow: the take's notes are long
    window.continuation.bars.setValue(4)
    window.continuation.start_on.setCurrentText("now")
    window.time_controls.metronome_check.setChecked(True)
    play(window, qtbot, [60, 62, 64])
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: bool(session(window).takes), timeout=15000)
    engine = window.bridge.engine
    qtbot.waitUntil(lambda: bool(engine.player.open_notes), timeout=10000)
    qtbot.waitUntil(lambda: bool(window.keyboard.playing), timeout=5000)  # the keys light up in take colour
    window.bridge.keyboard_note(48, True)  # and a key held down on the on-screen keyboard
    assert window.sink.sounding()
    window.act_panic.trigger()             # Esc
    assert engine.player.open_notes == set()
    assert engine.metronome.player.open_notes == set()
    assert window.sink.sounding() == set()
    qtbot.waitUntil(lambda: not window.keyboard.playing and not window.keyboard.lit, timeout=2000)
    sent = len(window.sink.note_ons())
    qtbot.wait(700)
    # The take was cancelled, not paused: nothing new starts (the click may tick on).
    later = [m for m in window.sink.note_ons()[sent:] if m.channel != 9]
    assert later == []
    assert engine.player.pending == 0


def test_open_phrase_continues_a_midi_file(window, qtbot):
    window.continue_file(str(DATA / "bach_bwv66_6.mid"))
    qtbot.waitUntil(lambda: bool(window.takes.refs()), timeout=30000)
    take = window.takes.selected().take
    assert take is session(window).takes[-1]
    assert len(window.roll.state.played) > 20  # the file's notes are drawn as "yours"
    assert max(n.start for n in window.roll.state.played) < take.start_quarters
    assert take.start_quarters % 4 == 0     # on a bar line
    window.continue_file(str(REPO / "README.md"))
    qtbot.waitUntil(lambda: window.last_error is not None and "MIDI" in window.last_error, timeout=10000)


SCALE = [60, 62, 64, 65, 67, 69, 71, 72]  # C major, one quarter each


def scale_file(path: Path, tempo: float = 104.0, meter: tuple[int, int] = (2, 4)) -> Path:
    from model.tokens.midi_io import write_notes
    from model.tokens.performance import GridNote

    write_notes(path, [GridNote(i * 24, 24, p, 80) for i, p in enumerate(SCALE)], [(0, *meter)], tempo,
                name="scale")
    return path


def test_an_opened_file_is_what_continue_answers_in_its_tempo_and_meter(window, qtbot, tmp_path):
    """File > Open phrase, then Space: both answers continue the file, at 104 BPM in 2/4."""
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    play(window, qtbot, [49, 51])               # something played before: not what the answers continue
    qtbot.waitUntil(lambda: session(window).stats.notes_in == 2, timeout=5000)
    window.continue_file(str(scale_file(tmp_path / "scale-104-2-4.mid")))
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 1, timeout=30000)
    # The window shows the file's tempo and meter, and the engine plays in them.
    assert window.time_controls.tempo.value() == pytest.approx(104.0)
    assert window.time_controls.meter_combo.currentText() == "2/4"
    timeline = window.bridge.snapshot.timeline
    assert timeline.bpm == pytest.approx(104.0) and (timeline.meter.numerator, timeline.meter.denominator) == (2, 4)
    assert [n.pitch for n in window.roll.state.played] == SCALE   # the roll starts over with the file
    assert window.bridge.snapshot.phrase.source == "file"
    window.activateWindow()
    window.act_continue.trigger()              # Space, later: the file again, not the live context
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 2, timeout=30000)
    for take in window.takes.takes():
        assert [n.pitch for n in take.context][-len(SCALE):] == SCALE
        assert not {49, 51} & {n.pitch for n in take.context}
        assert (take.meter.numerator, take.meter.denominator) == (2, 4)
        assert take.tempo_bpm == pytest.approx(104.0)
        assert take.start_quarters % 2 == 0     # on a 2/4 bar line
        assert all(n.start < (take.start_quarters + 2 * 2) * TICKS_PER_QUARTER for v in take.variations for n in v)
    # The tempo spin box was set from the engine's report without sending it back.
    assert session(window).grid.bpm == pytest.approx(104.0)


def test_a_stray_short_bar_at_a_files_end_does_not_shorten_the_answer(window, qtbot, tmp_path):
    """Three 4/4 bars and a stray 1/4 bar: "2 bars" are two 4/4 bars at the file's 90 BPM."""
    from model.tokens.midi_io import write_notes
    from model.tokens.performance import GridNote

    path = tmp_path / "stray-bar.mid"
    notes = [GridNote(b * 96 + i * 24, 24, 60 + 2 * i, 80) for b in range(3) for i in range(4)]
    write_notes(path, notes + [GridNote(3 * 96, 24, 72, 80)], [(0, 4, 4), (3 * 96, 1, 4)], 90.0, name="stray")
    window.continuation.bars.setValue(2)
    window.continue_file(str(path))
    qtbot.waitUntil(lambda: bool(window.takes.takes()), timeout=30000)
    take = window.takes.takes()[0]
    assert (take.meter.numerator, take.meter.denominator) == (4, 4)
    assert window.time_controls.meter_combo.currentText() == "4/4"
    assert window.time_controls.tempo.value() == pytest.approx(90.0)
    assert take.start_quarters % 4 == 0
    ends = [n.start + n.duration for v in take.variations for n in v]
    assert any(n.start >= (take.start_quarters + 1) * TICKS_PER_QUARTER for v in take.variations for n in v) \
        or not ends  # notes past the first quarter: the answer is not cut to a 1/4 bar
    assert all(n.start < (take.start_quarters + 8) * TICKS_PER_QUARTER for v in take.variations for n in v)


def test_accept_stays_on_its_variation_and_the_next_answer_continues_it(window, qtbot):
    """Accept variation 2, press <-: the mark stays on 2, and Continue continues variation 2."""
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.continuation.variations.setValue(3)
    play(window, qtbot, [60, 64, 67])
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: len(window.takes.refs()) == 3, timeout=15000)
    take = window.takes.takes()[0]
    window.activateWindow()
    window.act_next.trigger()                    # -> variation 2
    qtbot.waitUntil(lambda: window.takes.selected().index == 1, timeout=5000)
    window.act_accept.trigger()                  # accept variation 2
    qtbot.waitUntil(lambda: window.bridge.snapshot.view(take.number).accepted == 1, timeout=5000)
    window.act_previous.trigger()                # <- auditions variation 1
    qtbot.waitUntil(lambda: window.bridge.snapshot.view(take.number).auditioned == 0, timeout=5000)

    def row(index):
        return next(window.takes.list.item(i).text() for i in range(window.takes.list.count())
                    if window.takes.list.item(i).data(Qt.ItemDataRole.UserRole).index == index
                    and window.takes.list.item(i).data(Qt.ItemDataRole.UserRole).number == take.number)
    assert "accepted" in row(1) and "accepted" not in row(0) and "▶" in row(0)
    assert window.bridge.snapshot.view(take.number).accepted == 1
    assert window.bridge.snapshot.phrase.source == "accepted"
    # Accept matters: the next answer continues the accepted variation.
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 2, timeout=15000)
    nxt = window.takes.takes()[0]
    placed = {(n.start, n.pitch) for n in nxt.context}
    assert {(n.start, n.pitch) for n in take.notes(1)} <= placed
    only_first = {(n.start, n.pitch) for n in take.notes(0)} - {(n.start, n.pitch) for n in take.notes(1)}
    assert not only_first & placed              # not the variation auditioned last


def test_switching_models_keeps_the_takes_playable_and_their_numbers(window, qtbot, tmp_path, tiny_model):
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    play(window, qtbot, [60, 64, 67])
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 1, timeout=15000)
    first = window.takes.takes()[0]
    assert first.notes(0), "the tiny model answered with silence"

    other = make_tiny_checkpoint(tmp_path / "models" / "other.safetensors", seed=1)
    window.rebuild_model_menu()
    assert str(other) in window.model_menu_paths() and str(tiny_model) in window.model_menu_paths()
    engine = window.bridge.engine
    action = next(a for a in window.model_group.actions() if a.data() == str(other))
    action.trigger()
    qtbot.waitUntil(lambda: window.bridge.snapshot.model == "other", timeout=30000)
    assert window.model_status.text() == "Model: other"
    assert window.device_status.text() == "Device: CPU"
    assert next(a for a in window.model_group.actions() if a.data() == str(other)).isChecked()
    assert window.bridge.engine is engine       # no restart: the same engine, timeline and takes
    assert window.takes.takes() == [first]
    # The old model's take still auditions: its notes go out on the output.
    sent = len(window.sink.note_ons())
    window.takes.select(first, 0)
    window.takes.audition_button.click()
    qtbot.waitUntil(lambda: len(window.sink.note_ons()) > sent, timeout=15000)
    assert {m.note for m in window.sink.note_ons()[sent:]} <= {n.pitch for n in first.notes(0)}
    # The new model answers, and the take numbers go on: no second "Take 1", no repeated file name.
    play(window, qtbot, [62, 65])
    qtbot.waitUntil(lambda: session(window).stats.notes_in == 5, timeout=5000)
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 2, timeout=15000)
    second = window.takes.takes()[0]
    assert (first.number, second.number) == (1, 2) and second.model == "other" and first.model == "tiny"
    rows = [window.takes.list.item(i).text().split(" · ")[0] for i in range(window.takes.list.count())]
    # one row a variation (the window asks for 3 by default)
    assert sorted(rows) == ["Take 1"] * len(first.variations) + ["Take 2"] * len(second.variations)
    files = window.bridge.files
    qtbot.waitUntil(lambda: files.ready(first) and files.ready(second), timeout=10000)
    assert files.path(first, 0).name != files.path(second, 0).name
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\0" * 64)
    window.switch_model(str(bad))
    qtbot.waitUntil(lambda: window.last_error is not None and "Could not load" in window.last_error,
                    timeout=15000)
    assert window.model_status.text() == "Model: other"  # still running the good one


def test_gui_thread_stays_responsive_while_a_take_generates(window, qtbot):
    """Timer ticks keep arriving while the engine thread samples a long take."""
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.continuation.bars.setValue(16)
    window.continuation.variations.setValue(8)
    play(window, qtbot, [60, 64, 67])
    ticks = []
    window.timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    busy = []
    window.bridge.busyChanged.connect(busy.append)
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: busy[-1:] == [False] and True in busy, timeout=60000)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) >= 3
    assert max(gaps) < 0.5, f"the GUI thread stalled for {max(gaps):.2f} s"


def test_older_takes_tempo_and_meter_go_through_engine_commands(window, qtbot):
    """Audition/discard any take, tempo and meter: commands to the same engine, no rebuild."""
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.continuation.variations.setValue(2)
    engine = window.bridge.engine
    play(window, qtbot, [60, 64, 67])
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 1, timeout=15000)
    window.act_continue.trigger()
    qtbot.waitUntil(lambda: len(window.takes.takes()) == 2, timeout=15000)
    second, first = window.takes.takes()              # newest on top
    assert first.number == 1 and second.number == 2
    window.takes.select(first, 1)
    window.takes.audition_button.click()               # the older take, not only the last
    qtbot.waitUntil(lambda: engine.session.playing is first
                    and engine.session.library.view(first).auditioned == 1, timeout=5000)
    window.takes.discard_button.click()
    qtbot.waitUntil(lambda: first not in engine.session.takes, timeout=5000)
    assert engine.session.takes == [second]
    qtbot.waitUntil(lambda: engine.player.pending == 0 and not engine.player.open_notes, timeout=5000)
    assert window.sink.sounding() == set()
    window.time_controls.tempo.setValue(150.0)
    qtbot.waitUntil(lambda: engine.session.grid.bpm == 150.0, timeout=5000)
    window.time_controls.meter_combo.setCurrentText("6/8")
    qtbot.waitUntil(lambda: engine.session.grid.meter.denominator == 8, timeout=5000)
    window.time_controls.clock_combo.setCurrentIndex(window.time_controls.clock_combo.findData("midi"))
    qtbot.waitUntil(lambda: type(engine.session.grid).__name__ == "MidiClockGrid", timeout=5000)
    assert window.bridge.engine is engine               # the same engine, model state and takes
    assert engine.session.takes == [second]
