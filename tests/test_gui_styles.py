"""The Style menu and the fine-tune dialog's "Learn a style": the GUI only sends
commands and shows what the engine reports (its snapshot's style)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from model import load_checkpoint  # noqa: E402
from model.style import STYLE_FILE, Style, load_style, save_style  # noqa: E402
from copilot_app.ui.style_menu import NO_STYLE  # noqa: E402
from copilot_app.ui.styles import default_styles_dir  # noqa: E402
from tests.test_gui_finetune import TINY_RUN, base_model, window  # noqa: E402,F401  (fixtures)
from tests.test_gui_live import make_tiny_checkpoint, started_window  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


def write_style(model_path: Path, path: Path, seed: int = 0) -> Path:
    model, _ = load_checkpoint(model_path)
    g = torch.Generator().manual_seed(seed)
    state = model.init_state(1)
    for t in (state.att_x, state.wkv, state.ffn_x):
        t.copy_(torch.randn(t.shape, generator=g))
    save_style(path, Style.from_state(state, model))
    return path


def engine_style(window):
    return window.bridge.snapshot.style if window.bridge.snapshot is not None else None


def test_the_style_menu_switches_styles_and_disables_another_models(window, qtbot, base_model, tmp_path):
    styles = default_styles_dir(window.models_dir)
    mine = write_style(base_model, styles / "baroque" / STYLE_FILE)
    other = write_style(make_tiny_checkpoint(tmp_path / "other.safetensors", seed=4), styles / "foreign.safetensors")
    (styles / "junk.safetensors").write_bytes(b"not a style")  # not listed
    window.style_menu.rebuild()
    assert window.style_menu.paths() == [NO_STYLE, str(mine), str(other)]
    assert window.style_menu.enabled_paths() == [NO_STYLE, str(mine)]
    # The menu's styles for this model (and no style) are kept primed beside the context.
    ready = lambda: window.bridge.engine.session.runner.ready.keys  # noqa: E731
    qtbot.waitUntil(lambda: len(ready()) == 2, timeout=10000)
    assert ready() == ["", load_style(mine).digest]
    with qtbot.waitSignal(window.bridge.styleLoaded, timeout=30000):
        next(a for a in window.style_menu.group.actions() if a.data() == str(mine)).trigger()
    qtbot.waitUntil(lambda: engine_style(window) == "baroque", timeout=10000)
    assert [a.data() for a in window.style_menu.group.actions() if a.isChecked()] == [str(mine)]
    assert "Style: baroque" in window.statusBar().currentMessage()
    # A style for another model is refused in one line, and the one in use stays.
    with qtbot.waitSignal(window.bridge.styleFailed, timeout=30000) as failed:
        window.switch_style(str(other))
    assert "learned for another model" in failed.args[0] and "\n" not in failed.args[0]
    assert engine_style(window) == "baroque" and window.bridge.style_path == str(mine)
    with qtbot.waitSignal(window.bridge.styleLoaded, timeout=30000):
        window.switch_style(NO_STYLE)
    qtbot.waitUntil(lambda: engine_style(window) is None, timeout=10000)
    assert [a.data() for a in window.style_menu.group.actions() if a.isChecked()] == [NO_STYLE]


def test_learn_a_style_runs_the_trainer_and_the_style_appears_in_the_menu(window, qtbot, base_model):
    window.style_menu.act_learn.trigger()
    dialog = window.model_menu.finetune_dialog
    assert dialog.isVisible() and dialog.selected_kind() == "style" and dialog.budget.value() == 1.0
    dialog.add_folder(DATA)
    dialog.set_base(base_model)
    dialog.name.setText("my-style")
    dialog.extra_args = TINY_RUN
    dialog.threads = 1
    with qtbot.waitSignal(dialog.styleCreated, timeout=120000) as created:
        assert dialog.start()
    assert dialog.state == "done", dialog.error
    new = Path(created.args[0])
    styles = default_styles_dir(window.models_dir)
    assert new == styles / "my-style" / STYLE_FILE and new.stat().st_size < 1024 * 1024
    assert not any(p.name.startswith(".") for p in styles.iterdir())  # no staging folder left
    assert not (window.models_dir / "my-style").exists()  # a style is not a model
    assert str(new) in window.style_menu.enabled_paths()
    assert "with the style" in dialog.result.text()
    with qtbot.waitSignal(window.bridge.styleLoaded, timeout=30000):
        dialog.switch_button.click()
    qtbot.waitUntil(lambda: engine_style(window) == "my-style", timeout=10000)


def test_the_chosen_style_comes_back_with_the_next_run(qtbot, tmp_path, base_model):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    first = started_window(qtbot, tmp_path, base_model, settings=settings)
    mine = write_style(base_model, default_styles_dir(first.models_dir) / "kept" / STYLE_FILE)
    first.style_menu.rebuild()
    with qtbot.waitSignal(first.bridge.styleLoaded, timeout=30000):
        first.switch_style(str(mine))
    first.close()
    second = started_window(qtbot, tmp_path, base_model, settings=settings)
    try:
        qtbot.waitUntil(lambda: engine_style(second) == "kept", timeout=30000)
        assert second.bridge.style_path == str(mine)
    finally:
        second.close()


def test_the_blend_dialog_hands_the_engine_a_blend_of_two_styles(window, qtbot, base_model, tmp_path):
    styles = default_styles_dir(window.models_dir)
    write_style(base_model, styles / "a" / STYLE_FILE, seed=1)
    write_style(base_model, styles / "b" / STYLE_FILE, seed=2)
    write_style(make_tiny_checkpoint(tmp_path / "other.safetensors", seed=4), styles / "c" / STYLE_FILE)
    window.style_menu.rebuild()
    window.style_menu.act_blend.trigger()
    dialog = window.blend_dialog
    assert dialog.isVisible()
    assert [dialog.first.itemText(i) for i in range(dialog.first.count())] == ["a", "b"]  # not another model's
    dialog.second.setCurrentIndex(1)
    dialog.slider.setValue(30)
    assert dialog.mix.text() == "a 70% + b 30%"
    with qtbot.waitSignal(window.bridge.styleLoaded, timeout=30000):
        assert dialog.apply()
    qtbot.waitUntil(lambda: engine_style(window) == "a 70% + b 30%", timeout=10000)
    assert window.statusBar().currentMessage() == "Style: a 70% + b 30%"
    assert window.bridge.style_path is None  # a blend is no file: nothing comes back next run
