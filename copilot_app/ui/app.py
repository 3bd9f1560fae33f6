"""Start the desktop app: QApplication, main window, event loop."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from copilot_app.engine.runtime_info import bundled_model, device_label
from copilot_app.ui.main_window import MainWindow


def _model_label(requested: str | None) -> str:
    if requested:
        return Path(requested).name
    bundled = bundled_model()
    return bundled.stem if bundled else "none bundled yet"


def run_gui(args: argparse.Namespace) -> int:
    """Show the main window until it closes; with --screenshot save a picture and quit."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Composer Copilot")
    app.setOrganizationName("Composer Copilot")
    window = MainWindow(_model_label(getattr(args, "model", None)),
                        device_label(getattr(args, "device", "auto")))
    window.show()
    shot = getattr(args, "screenshot", None)
    if shot:
        def save_and_quit() -> None:
            if not window.grab().save(shot):
                print(f"composer-copilot: error: cannot write screenshot {shot}", file=sys.stderr)
                app.exit(1)
                return
            app.quit()
        QTimer.singleShot(500, save_and_quit)
    return app.exec()
