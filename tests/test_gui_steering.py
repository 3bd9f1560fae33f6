"""Steering in the window (issue 19, GUI): the Steer box and the takes panel's
Regenerate from bar N / More like this, through the real window offscreen on
a real LiveEngine with a tiny real RWKV-7 model (as tests/test_gui_live.py).

Each control reaches the engine (its snapshot's settings); the heard key and
the auto register show what the engine reports; regenerated takes are listed
with what they were made from; the values survive a restart (QSettings) and
come back with an opened session; an engine error is one line in the status bar.
"""
from __future__ import annotations


import mido
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QSlider  # noqa: E402

from copilot_app.engine.clock import Meter  # noqa: E402
from copilot_app.engine.session_model import Take  # noqa: E402
from copilot_app.ui.main_window import MainWindow  # noqa: E402
from copilot_app.ui.settings_store import Keys  # noqa: E402
from copilot_app.ui.steering_controls import AUTO, note_name  # noqa: E402
from copilot_app.ui.takes_panel import take_bars  # noqa: E402
from model.tokens.config import TICKS_PER_QUARTER  # noqa: E402
from model.tokens.streaming import DecodedNote  # noqa: E402
from tests.test_gui_live import RecordingSink, started_window, tiny_model  # noqa: E402,F401 (fixture)

A_MINOR = [57, 60, 64, 68, 69, 71, 72, 64, 57, 60, 64, 69]   # estimate_key: A minor
D_MAJOR = [62, 64, 66, 67, 69, 71, 73, 74, 66, 69, 62]       # estimate_key: D major


def settings_at(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def record(w: MainWindow) -> None:
    w.sink = RecordingSink()
    w.bridge.set_output_sink(w.sink)


@pytest.fixture
def window(qtbot, tmp_path, tiny_model):
    w = started_window(qtbot, tmp_path, tiny_model, before_show=record)
    w.bridge.update_settings(seed=0)
    yield w
    w.close()


def engine_settings(w: MainWindow):
    return w.bridge.snapshot.settings


def play(w: MainWindow, qtbot, pitches, ms: int = 60) -> None:
    """Notes through the engine's rtmidi callback path, one after another."""
    for p in pitches:
        w.bridge.midi_in(mido.Message("note_on", note=p, velocity=70))
        qtbot.wait(ms)
        w.bridge.midi_in(mido.Message("note_off", note=p, velocity=0))
        qtbot.wait(10)


def numbers(w: MainWindow) -> list[int]:
    return sorted({ref.number for ref in w.takes.refs()})


def rows_of(w: MainWindow, number: int) -> list[str]:
    return [w.takes.list.item(i).text() for i in range(w.takes.list.count())
            if w.takes.list.item(i).data(Qt.ItemDataRole.UserRole).number == number]


def make_take(w: MainWindow, qtbot) -> int:
    c = w.continuation
    c.trigger_combo.setCurrentIndex(c.trigger_combo.findData("button"))
    before = set(numbers(w))
    w.act_continue.trigger()
    qtbot.waitUntil(lambda: bool(set(numbers(w)) - before), timeout=15000)
    return max(set(numbers(w)) - before)


def test_each_steering_control_reaches_the_engine(window, qtbot):
    s = window.steering
    assert window.bridge.snapshot.settings.key == "off" and not s.scale_combo.isEnabled()
    # Key lock: a tonic enables the scale; the engine gets "<tonic> <scale>".
    s.key_combo.setCurrentIndex(s.key_combo.findData("D"))
    assert s.scale_combo.isEnabled()
    s.scale_combo.setCurrentText("dorian")
    qtbot.waitUntil(lambda: engine_settings(window).key == "D dorian", timeout=5000)
    s.key_combo.setCurrentIndex(s.key_combo.findData("auto"))
    qtbot.waitUntil(lambda: engine_settings(window).key == "auto", timeout=5000)
    assert not s.scale_combo.isEnabled()

    # Register: a typed note name or number; the other bound follows to keep low <= high.
    s.low.lineEdit().setText("C3")
    s.low.interpretText()
    qtbot.waitUntil(lambda: engine_settings(window).register_low == 48, timeout=5000)
    assert s.low.text() == "C3" and note_name(60) == "C4"
    s.high.lineEdit().setText("84")
    s.high.interpretText()
    qtbot.waitUntil(lambda: engine_settings(window).register_high == 84, timeout=5000)
    assert s.high.text() == "C6"
    s.low.setValue(90)
    qtbot.waitUntil(lambda: (engine_settings(window).register_low, engine_settings(window).register_high)
                    == (90, 90), timeout=5000)
    s.high.setValue(AUTO)
    s.low.setValue(AUTO)
    qtbot.waitUntil(lambda: (engine_settings(window).register_low, engine_settings(window).register_high)
                    == (None, None), timeout=5000)

    # Density and texture: -1 ... +1 in hundredths; the value button resets to "as played".
    s.density.setValue(50)
    s.texture.setValue(-100)
    qtbot.waitUntil(lambda: engine_settings(window).density == 0.5 and engine_settings(window).texture == -1.0,
                    timeout=5000)
    assert s.density_value.text() == "+0.50" and s.texture_value.text() == "-1.00"
    s.density_value.click()
    qtbot.waitUntil(lambda: engine_settings(window).density == 0.0, timeout=5000)
    assert s.density.value() == 0 and s.density_value.text() == "as played"
    # A double-click on the slider resets it too.
    qtbot.mouseDClick(s.texture, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine_settings(window).texture == 0.0, timeout=5000)
    # What the window sends is what it saves.
    assert window.store.get(Keys.KEY) == "auto" and window.store.get(Keys.REGISTER_LOW) == 0


def test_every_steering_and_takes_control_has_a_tooltip(window):
    controls = [w for box in (window.steering, window.takes)
                for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QSlider)
                for w in box.findChildren(kind)
                if not w.objectName().startswith("qt_") and not isinstance(w.parent(), (QAbstractSpinBox, QComboBox))]
    assert len(controls) >= 13
    assert [type(w).__name__ for w in controls if not w.toolTip().strip()] == []


def test_heard_key_and_auto_register_follow_played_and_opened_notes(window, qtbot, tmp_path):
    s = window.steering
    c = window.continuation
    # No answer after the phrase: the label must follow the notes themselves, not a take's snapshot.
    c.trigger_combo.setCurrentIndex(c.trigger_combo.findData("button"))
    assert s.heard.text() == "heard: –"
    play(window, qtbot, A_MINOR)
    qtbot.waitUntil(lambda: s.heard.text() == "heard: A minor", timeout=5000)
    assert numbers(window) == []
    # The auto register is the phrase's range widened by a fourth (REGISTER_MARGIN), shown on "auto".
    qtbot.waitUntil(lambda: window.bridge.snapshot.register == (57 - 5, 72 + 5), timeout=5000)
    assert s.low.text() == "auto (E3)" and s.high.text() == "auto (F5)"
    # Stepping up from auto starts at the pitch auto stands for.
    s.low.stepUp()
    assert s.low.value() == 52
    qtbot.waitUntil(lambda: engine_settings(window).register_low == 52, timeout=5000)

    # A file in another key: opening it makes it the context; the label follows.
    path = tmp_path / "d-major.mid"
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for p in D_MAJOR:
        track.append(mido.Message("note_on", note=p, velocity=80, time=0))
        track.append(mido.Message("note_off", note=p, velocity=0, time=480))
    mid.save(str(path))
    window.continue_file(str(path))
    qtbot.waitUntil(lambda: s.heard.text() == "heard: D major", timeout=10000)


def test_regenerate_and_more_like_this_add_labelled_takes(window, qtbot):
    c = window.continuation
    c.bars.setValue(2)
    c.trigger_combo.setCurrentIndex(c.trigger_combo.findData("button"))  # no answer of its own after the phrase
    play(window, qtbot, A_MINOR)
    first = make_take(window, qtbot)
    panel = window.takes
    panel.select(first, 1)
    assert panel.regenerate_button.isEnabled() and panel.more_button.isEnabled()
    assert panel.regenerate_bar.maximum() >= 2
    panel.regenerate_bar.setValue(2)
    panel.regenerate_button.click()
    qtbot.waitUntil(lambda: len(numbers(window)) == 2, timeout=15000)
    again = max(numbers(window))
    label = f"take {first} variation 2 from bar 2"
    assert all(f"↳ {label}" in text for text in rows_of(window, again))
    item = next(panel.list.item(i) for i in range(panel.list.count())
                if panel.list.item(i).data(Qt.ItemDataRole.UserRole).number == again)
    assert label in item.toolTip()
    # The bars before bar 2 of variation 2 are kept in every new variation.
    views = {v.number: v for v in window.bridge.snapshot.takes}
    old, new = views[first].take, views[again].take
    bar2 = round(old.start_quarters * TICKS_PER_QUARTER) + 4 * TICKS_PER_QUARTER
    kept = [(n.start, n.pitch) for n in old.notes(1) if n.start < bar2]
    for row in new.variations:
        assert [(n.start, n.pitch) for n in row if n.start < bar2] == kept
    # The new take auditions and is selected; the status line says where it came from.
    qtbot.waitUntil(lambda: panel.selected() is not None and panel.selected().number == again, timeout=5000)
    assert window.statusBar().currentMessage().startswith(f"Take {again} ({label}): variation 1/")

    # More like this: for the selected take's bars, labelled with it.
    panel.select(first, 0)
    panel.more_button.click()
    qtbot.waitUntil(lambda: len(numbers(window)) == 3, timeout=15000)
    more = max(numbers(window))
    assert all(f"↳ more like take {first}" in text for text in rows_of(window, more))
    assert window.statusBar().currentMessage().startswith(f"Take {more} (more like take {first}): ")
    assert not window.last_error


def test_take_bars_counts_to_the_last_onset_or_the_length_setting():
    meter = Meter(3, 4)
    bar = 3 * TICKS_PER_QUARTER
    take = Take(1, 3.0, ([DecodedNote(bar + 10, 60, 80, 100)], [DecodedNote(3 * bar + 5, 62, 80, 100)]), 80,
                meter=meter)
    assert take_bars(take) == 3            # starts at bar 2 (tick 3 quarters), last onset in bar 4
    assert take_bars(take, at_least=5) == 5
    assert take_bars(Take(2, 0.0, ((),), 80, meter=meter)) == 1


def test_steering_survives_a_restart_and_comes_back_with_an_opened_session(qtbot, tmp_path, tiny_model):
    w = started_window(qtbot, tmp_path, tiny_model, before_show=record)
    s = w.steering
    s.key_combo.setCurrentIndex(s.key_combo.findData("F#"))
    s.scale_combo.setCurrentText("minor pentatonic")
    s.low.setValue(50)
    s.density.setValue(-40)
    s.texture.setValue(70)
    qtbot.waitUntil(lambda: engine_settings(w).key == "F# minor pentatonic" and engine_settings(w).texture == 0.7,
                    timeout=5000)
    make_take(w, qtbot)  # the session file holds these settings
    first_session = w.session_path
    w.close()

    # A restart: the controls and the engine have the saved values.
    w = started_window(qtbot, tmp_path, tiny_model, before_show=record)
    s = w.steering
    assert (s.key_combo.currentText(), s.scale_combo.currentText()) == ("F#", "minor pentatonic")
    assert (s.low.value(), s.high.value(), s.density.value(), s.texture.value()) == (50, AUTO, -40, 70)
    assert s.density_value.text() == "-0.40"
    st = engine_settings(w)
    assert (st.key, st.register_low, st.register_high, st.density, st.texture) == (
        "F# minor pentatonic", 50, None, -0.4, 0.7)

    # Other values in a new session; opening the first one brings its own back.
    w.act_new_session.trigger()
    qtbot.waitUntil(lambda: w.session_path != first_session and not numbers(w), timeout=5000)
    s.key_combo.setCurrentIndex(s.key_combo.findData("off"))
    s.low.setValue(AUTO)
    s.density.setValue(0)
    w.continuation.temperature.setValue(150)
    qtbot.waitUntil(lambda: engine_settings(w).key == "off" and engine_settings(w).temperature == 1.5,
                    timeout=5000)
    w.open_session(str(first_session))
    qtbot.waitUntil(lambda: numbers(w) == [1], timeout=10000)
    st = engine_settings(w)
    assert (st.key, st.register_low, st.density, st.texture) == ("F# minor pentatonic", 50, -0.4, 0.7)
    assert (s.key_combo.currentText(), s.scale_combo.currentText(), s.low.value(), s.density.value()) == (
        "F#", "minor pentatonic", 50, -40)
    assert s.scale_combo.isEnabled()
    assert w.continuation.temperature.value() == round(st.temperature * 100) != 150
    assert w.store.get(Keys.KEY) == "F# minor pentatonic" and w.store.get(Keys.DENSITY) == -0.4
    w.close()


def test_an_engine_error_is_one_line_in_the_status_bar(qtbot, tmp_path, tiny_model):
    w = started_window(qtbot, tmp_path, tiny_model, before_show=record)
    number = make_take(w, qtbot)
    w.close()
    # After a restart the take is listed again, but its model states are gone.
    w = started_window(qtbot, tmp_path, tiny_model, before_show=record)
    qtbot.waitUntil(lambda: numbers(w) == [number], timeout=10000)
    w.takes.select(number, 0)
    with qtbot.waitSignal(w.errorShown, timeout=10000) as sig:
        w.takes.regenerate_button.click()
    [message] = sig.args
    assert "cannot be sampled again" in message and "\n" not in message
    assert w.statusBar().currentMessage() == message
    assert numbers(w) == [number]  # nothing new
    w.close()


def test_a_bad_saved_value_falls_back_to_the_engines_default(qtbot, tmp_path):
    settings = settings_at(tmp_path)
    settings.setValue(Keys.KEY.name, "H hypermixolydian")
    settings.setValue(Keys.DENSITY.name, "7")
    settings.setValue(Keys.REGISTER_HIGH.name, "200")
    settings.sync()
    w = MainWindow(settings=settings_at(tmp_path), models_dir=tmp_path / "models", autoload=False,
                   open_ports=False)
    qtbot.addWidget(w)
    v = w.steering.values()
    assert (v["key"], v["density"], v["register_high"]) == ("off", 0.0, None)
    w.close()
