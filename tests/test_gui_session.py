"""The session survives, through the real window offscreen (issue 18, item 4).

Takes made in one window come back in a new window on the same data folder
(a restart); Discard is undone with Edit > Undo discard; File > Export all
accepted takes writes one .mid, one track per accepted take, read back with
symusic (tempo and meter kept); File > New session / Open session…; a
damaged session file gives one line and a fresh session, and is kept.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import symusic  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from copilot_app.engine.session_store import read_session  # noqa: E402
from copilot_app.engine.take_export import restrikes_end_notes as trimmed  # noqa: E402
from copilot_app.ui.main_window import MainWindow  # noqa: E402
from tests.test_gui_live import started_window, tiny_model  # noqa: E402,F401 (fixture)


def settings_at(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def sessions(tmp_path) -> list[Path]:
    return sorted((tmp_path / "sessions").glob("*.json"))


def numbers(window) -> list[int]:
    return sorted({ref.number for ref in window.takes.refs()})


def make_takes(window, qtbot, count: int) -> None:
    c = window.continuation
    c.trigger_combo.setCurrentIndex(c.trigger_combo.findData("button"))
    for i in range(count):
        window.act_continue.trigger()
        qtbot.waitUntil(lambda: len(numbers(window)) == i + 1, timeout=15000)


def saved_numbers(path: Path) -> list[int]:
    try:
        return [v.take.number for v in read_session(path).takes]
    except Exception:
        return []


def reopen(qtbot, tmp_path) -> MainWindow:
    w = MainWindow(settings=settings_at(tmp_path), models_dir=tmp_path / "models", autoload=False,
                   open_ports=False)
    qtbot.addWidget(w)
    w.show()
    return w


def test_takes_come_back_after_a_restart_undo_discard_and_export_all_accepted(qtbot, tmp_path, tiny_model):
    w = started_window(qtbot, tmp_path, tiny_model)
    w.bridge.update_settings(seed=0)
    w.time_controls.meter_combo.setCurrentText("3/4")
    w.time_controls.tempo.setValue(100.0)
    qtbot.waitUntil(lambda: w.bridge.snapshot.timeline.meter.numerator == 3
                    and w.bridge.snapshot.timeline.bpm == 100.0, timeout=10000)
    make_takes(w, qtbot, 3)
    # Accept variation 2 of take 1 and variation 1 of take 3.
    for number, index in ((1, 1), (3, 0)):
        w.takes.select(number, index)
        w.act_accept.trigger()
        qtbot.waitUntil(lambda: w.bridge.snapshot.view(number).accepted == index, timeout=5000)
    # Discard take 2, then undo it (Ctrl+Z), then discard it again.
    assert not w.act_undo_discard.isEnabled()
    w.discard(next(r for r in w.takes.refs() if r.number == 2))
    assert numbers(w) == [1, 3]
    qtbot.waitUntil(lambda: w.act_undo_discard.isEnabled(), timeout=5000)
    assert w.act_undo_discard.shortcut().toString() == "Ctrl+Z"
    assert "take 2" in w.act_undo_discard.text()
    w.act_undo_discard.trigger()
    qtbot.waitUntil(lambda: numbers(w) == [1, 2, 3], timeout=5000)
    assert not w.act_undo_discard.isEnabled()
    w.discard(next(r for r in w.takes.refs() if r.number == 2))

    # Export all accepted: one track per accepted take, 100 BPM and 3/4 kept.
    out = tmp_path / "out" / "accepted.mid"
    with qtbot.waitSignal(w.exported, timeout=10000) as sig:
        w.export_accepted(str(out))
    assert sig.args == [str(out)]
    score = symusic.Score(str(out))
    assert [t.name for t in score.tracks] == ["Composer Copilot take 1 variation 2",
                                              "Composer Copilot take 3 variation 1"]
    assert {round(t.qpm, 3) for t in score.tempos} == {100.0}
    assert {(s.numerator, s.denominator) for s in score.time_signatures} == {(3, 4)}
    views = {v.number: v for v in w.bridge.snapshot.takes}
    # Every note of the accepted variation (a note struck again while it sounds ends there).
    for track, (number, index) in zip(score.tracks, ((1, 1), (3, 0))):
        notes = views[number].take.notes(index)
        assert len(trimmed(notes)) == len(track.notes) and {n.pitch for n in track.notes} <= {n.pitch for n in notes}

    # Saved as it goes: the file has takes 1 and 3 before the window closes.
    [path] = sessions(tmp_path)
    qtbot.waitUntil(lambda: saved_numbers(path) == [1, 3], timeout=5000)
    w.close()

    # A restart on the same data folder: the takes are listed, accepted marks and all.
    again = reopen(qtbot, tmp_path)
    qtbot.waitUntil(lambda: numbers(again) == [1, 3], timeout=10000)
    snap = again.bridge.snapshot
    assert snap.view(1).accepted == 1 and snap.view(3).accepted == 0
    assert snap.view(1).take == views[1].take
    assert any("accepted" in again.takes.list.item(i).text() for i in range(again.takes.list.count()))
    # Discarded before the restart: Undo still brings it back.
    assert again.act_undo_discard.isEnabled()
    again.act_undo_discard.trigger()
    qtbot.waitUntil(lambda: numbers(again) == [1, 2, 3], timeout=5000)

    # File > New session: nothing listed; the old session stays on disk.
    again.act_new_session.trigger()
    qtbot.waitUntil(lambda: numbers(again) == [] and len(sessions(tmp_path)) == 2, timeout=5000)
    assert again.session_path != path
    # File > Open session…: the old one is back.
    again.open_session(str(path))
    qtbot.waitUntil(lambda: numbers(again) == [1, 2, 3], timeout=5000)
    again.close()


def test_a_damaged_session_file_gives_one_line_and_a_fresh_session(qtbot, tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    bad = folder / "session-20260101-000000.json"
    bad.write_text('{"format": "composer-copilot-session", "version": 7}')
    w = reopen(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "session not restored" in (w.last_error or ""), timeout=10000)
    assert "newer" in w.last_error and "\n" not in w.last_error
    assert numbers(w) == []
    kept = [p for p in folder.iterdir() if p.name.startswith(bad.name + ".unreadable-")]
    assert len(kept) == 1 and "version\": 7" in kept[0].read_text()
    qtbot.waitUntil(lambda: bad.is_file() and read_session(bad).takes == (), timeout=5000)
    # Nothing accepted yet: export says so in one line.
    w.export_accepted(str(tmp_path / "none.mid"))
    assert "No accepted takes" in w.last_error and not (tmp_path / "none.mid").exists()
    w.close()
