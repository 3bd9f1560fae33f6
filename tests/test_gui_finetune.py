"""Model > Fine-tune on my pieces…: the real trainer in a subprocess, from the dialog.

A tiny real RWKV-7 is fine-tuned for a few steps on tests/data; the new model
must appear in the Model menu and be switchable. Cancel and failure must
leave the models folder as it was.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QProcess  # noqa: E402

from copilot_app.ui.finetune import FineTuneDialog, format_eta, trainer_command  # noqa: E402
from tests.test_gui_live import make_tiny_checkpoint, started_window  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
TINY_RUN = ["--steps", "3", "--ctx-len", "32", "--batch-size", "2", "--device", "cpu", "--eval-every", "2"]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ft-base") / "base.safetensors")


@pytest.fixture
def window(qtbot, tmp_path, base_model):
    w = started_window(qtbot, tmp_path, base_model)
    yield w
    w.close()


def dialog_for(window, folder: Path, base: Path, name: str, extra: list[str]) -> FineTuneDialog:
    dialog = window.open_finetune()
    dialog.add_folder(folder)
    dialog.set_base(base)
    dialog.name.setText(name)
    dialog.budget.setValue(2.0)
    dialog.extra_args = extra
    dialog.threads = 1
    return dialog


def snapshot(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fine_tune_runs_the_real_trainer_and_the_model_appears_in_the_menu(window, qtbot, base_model):
    models = window.models_dir
    assert not any(p.endswith("mine/best.safetensors") for p in window.model_menu_paths())
    dialog = dialog_for(window, DATA, base_model, "mine", TINY_RUN)
    assert dialog.isVisible()
    with qtbot.waitSignal(dialog.modelCreated, timeout=120000) as created:
        assert dialog.start()
        assert dialog.state == "running" and not dialog.start_button.isEnabled()
    assert dialog.state == "done", dialog.error
    new = Path(created.args[0])
    assert new == models / "mine" / "best.safetensors" and new.is_file()
    assert not any(p.name.startswith(".") for p in models.iterdir())  # no staging folder left
    assert str(new) in window.model_menu_paths()
    # Progress, ETA and the loss plot followed the JSON lines.
    assert dialog.progress.value() == 1000
    assert [s for s, _ in dialog.plot.train] == [1, 2, 3]
    assert dialog.plot.val and dialog.plot.val[0][0] == 0  # the eval before training
    s = dialog.summary
    assert s["event"] == "done" and s["steps"] == 3
    assert f"{s['val_nll_before']:.3f} → {s['val_nll_after']:.3f}" in dialog.result.text()
    # Offer to switch: the live engine moves to the new model without a restart.
    assert dialog.switch_button.isVisible()
    with qtbot.waitSignal(window.bridge.modelLoaded, timeout=30000) as loaded:
        dialog.switch_button.click()
    assert loaded.args[0] == str(new)
    assert window.model_status.text() == "Model: mine"
    checked = [a.data() for a in window.model_group.actions() if a.isChecked()]
    assert checked == [str(new)]


def test_cancel_stops_the_trainer_and_leaves_the_models_alone(window, qtbot, base_model):
    models = window.models_dir
    existing = make_tiny_checkpoint(models / "kept.safetensors", seed=3)
    window.rebuild_model_menu()
    before, menu_before = snapshot(models), window.model_menu_paths()
    dialog = dialog_for(window, DATA, base_model, "long-run",
                        ["--steps", "100000", "--ctx-len", "32", "--batch-size", "2", "--device", "cpu",
                         "--patience", "0"])
    assert dialog.start()
    qtbot.waitUntil(lambda: len(dialog.plot.train) >= 1, timeout=90000)  # it is really training
    assert dialog.process.state() == QProcess.ProcessState.Running
    assert "step" in dialog.progress.format() and dialog.eta.text().startswith("ETA ")
    with qtbot.waitSignal(dialog.runCancelled, timeout=15000):
        dialog.cancel_button.click()
    assert dialog.state == "cancelled"
    assert dialog.process.state() == QProcess.ProcessState.NotRunning
    assert snapshot(models) == before and existing.is_file()
    assert not (models / "long-run").exists() and not (models / ".training-long-run").exists()
    assert window.model_menu_paths() == menu_before
    assert dialog.start_button.isEnabled()


def test_a_failed_run_shows_its_error_and_leaves_the_models_alone(window, qtbot, base_model, tmp_path):
    models = window.models_dir
    make_tiny_checkpoint(models / "kept.safetensors", seed=4)
    before = snapshot(models)
    empty = tmp_path / "no-pieces"
    empty.mkdir()
    (empty / "notes.txt").write_text("not music")
    dialog = dialog_for(window, empty, base_model, "broken", TINY_RUN)
    with qtbot.waitSignal(dialog.runFailed, timeout=90000) as failed:
        assert dialog.start()
    assert dialog.state == "failed"
    assert "no usable pieces" in failed.args[0], failed.args[0]
    assert "no usable pieces" in dialog.result.text()
    assert snapshot(models) == before
    assert not (models / "broken").exists() and not (models / ".training-broken").exists()
    assert not dialog.switch_button.isVisible()


def test_the_form_is_checked_before_anything_runs(window, qtbot, base_model):
    (window.models_dir / "taken").mkdir(parents=True)
    dialog = window.open_finetune()
    dialog.set_base(base_model)
    assert not dialog.start() and "folder" in dialog.error
    dialog.add_folder(DATA)
    dialog.name.setText("taken")
    assert not dialog.start() and "already exists" in dialog.error
    assert dialog.process is None and dialog.state == "idle"


def test_progress_lines_drive_the_bar_eta_and_plot(qtbot, tmp_path):
    dialog = FineTuneDialog(tmp_path, [], None)
    qtbot.addWidget(dialog)
    dialog._t0 = __import__("time").monotonic()
    dialog._budget_s = 600
    dialog.handle_line('{"event": "eval", "step": 0, "val_loss": 5.9}')
    dialog.handle_line('{"event": "step", "step": 5, "steps": 20, "loss": 5.5, "val_loss": 5.9, '
                       '"tokens_per_s": 1200.0, "eta_s": 75.0, "lr": 0.001, "epoch": 0.1}')
    dialog.handle_line("a stray line that is not JSON")
    assert dialog.progress.value() == 250
    assert dialog.eta.text().startswith("ETA 1:15")
    assert dialog.plot.train == [(5, 5.5)] and dialog.plot.val == [(0, 5.9)]  # a repeated value is no new point
    dialog.handle_line('{"event": "step", "step": 6, "steps": 20, "loss": 5.4, "val_loss": 5.7, "eta_s": 9000}')
    assert dialog.plot.val == [(0, 5.9), (6, 5.7)]
    assert dialog.eta.text() in ("ETA 10:00", "ETA 9:59")  # capped by the 10-minute budget, not 2:30:00
    assert "a stray line" in dialog.log.toPlainText()
    assert format_eta(None) == "–" and format_eta(3725) == "62:05"
    args = trainer_command(["/a", "/b"], tmp_path / "out", tmp_path / "base.safetensors", 4.5, threads=1)
    assert args[:3] == ["-m", "trainer", "train"] and args[args.index("--progress") + 1] == "json"
    assert args[args.index("--data") + 1: args.index("--data") + 3] == ["/a", "/b"]
    assert args[args.index("--time-budget") + 1] == "4.5"
