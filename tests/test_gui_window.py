"""The desktop window, shown for real on Qt's offscreen platform."""
from __future__ import annotations

import argparse

import pytest

pytest.importorskip("PySide6")
from copilot_app.ui.main_window import TITLE, MainWindow  # noqa: E402


def test_main_window_shows_and_renders(qtbot, tmp_path):
    window = MainWindow("default", "CPU")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.isVisible() and window.windowTitle() == TITLE
    assert [a.text() for a in window.menuBar().actions()] == ["&File", "&Help"]
    assert window.model_status.text() == "Model: default"
    assert window.device_status.text() == "Device: CPU"
    image = window.grab().toImage()
    assert image.width() >= 800 and image.height() >= 500
    # Something was painted: a blank window would be one flat colour.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 2
    assert image.save(str(tmp_path / "main_window.png"))


def test_gui_entry_point_screenshot(tmp_path, qapp):
    from copilot_app.ui.app import run_gui

    shot = tmp_path / "shot.png"
    code = run_gui(argparse.Namespace(model=None, device="cpu", screenshot=str(shot)))
    assert code == 0
    assert shot.stat().st_size > 1000
