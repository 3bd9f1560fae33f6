"""Fine-tune, the user's side (issue 18): each skipped file named with its reason
in the dialog's log, progress counted down against the time budget, and a
"Show models folder" that fails says so in the status bar."""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from copilot_app.ui import model_menu as model_menu_module  # noqa: E402
from copilot_app.ui.finetune import FineTuneDialog  # noqa: E402
from copilot_app.ui.main_window import MainWindow  # noqa: E402
from trainer.cli import report_skipped  # noqa: E402
from trainer.datasets import Data, PieceSet, load_midi_folder  # noqa: E402
from trainer.progress import Progress  # noqa: E402


def test_each_skipped_file_is_named_with_its_reason_in_the_dialog(qtbot, tmp_path, capsys):
    folder = tmp_path / "pieces"
    folder.mkdir()
    (folder / "broken.mid").write_bytes(b"MThd\0\0\0\6garbage")
    (folder / "notes.mid").write_text("this is not a MIDI file")
    _pieces, skipped = load_midi_folder(folder)
    assert len(skipped) == 2
    # What the trainer prints in --progress json mode, read by the dialog as it would be.
    report_skipped(Progress("json"), Data(PieceSet(), PieceSet(), skipped, [str(folder)]))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1 and json.loads(lines[0])["skipped"] == skipped
    dialog = FineTuneDialog(tmp_path / "models", [], None)
    qtbot.addWidget(dialog)
    dialog.handle_line(lines[0])
    log = dialog.log.toPlainText()
    assert "skipped 2 file(s) that could not be used:" in log
    for reason in skipped:  # "broken.mid: <why>", "notes.mid: <why>"
        assert reason in log
    assert "broken.mid" in log and "notes.mid" in log
    # The same lines on stderr for a person at a terminal.
    report_skipped(Progress("none"), Data(PieceSet(), PieceSet(), skipped, [str(folder)]))
    err = capsys.readouterr().err
    assert all(reason in err for reason in skipped)


def test_progress_counts_down_the_budget_when_the_budget_ends_the_run(qtbot, tmp_path):
    dialog = FineTuneDialog(tmp_path / "models", [], None)
    qtbot.addWidget(dialog)
    dialog._budget_s = 120.0
    dialog._t0 = time.monotonic() - 60.0  # half the 2-minute budget gone
    # 400 steps planned, but at this pace the budget ends the run near step 93.
    dialog.handle_line('{"event": "step", "step": 46, "steps": 400, "loss": 3.2, "eta_s": 460.0}')
    text = dialog.progress.format()
    assert "/400" not in text
    assert "left of the 2-min budget" in text and text.startswith(("1:00", "0:59"))
    assert 490 <= dialog.progress.value() <= 520  # half the budget, not 46/400
    # A run that will finish its steps first counts down to its last step.
    dialog._budget_s = 600.0
    dialog._t0 = time.monotonic() - 10.0
    dialog.handle_line('{"event": "step", "step": 15, "steps": 20, "loss": 3.0, "eta_s": 4.0}')
    assert dialog.progress.format().startswith("step 15/20 · 0:04 left")


def test_show_models_folder_failures_reach_the_status_bar(qtbot, tmp_path, monkeypatch):
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                        models_dir=tmp_path / "models", autoload=False, open_ports=False)
    qtbot.addWidget(window)
    window.show()
    monkeypatch.setattr(model_menu_module.QDesktopServices, "openUrl", staticmethod(lambda url: False))
    window.model_menu.act_models_folder.trigger()
    message = window.statusBar().currentMessage()
    assert "Could not open a file manager" in message and str(tmp_path / "models") in message
    # A models folder that cannot be made (a file is in the way).
    (tmp_path / "blocked").write_text("")
    window.model_menu.models_dir = tmp_path / "blocked" / "models"
    window.model_menu.act_models_folder.trigger()
    assert "Cannot create the models folder" in window.statusBar().currentMessage()
    window.close()
