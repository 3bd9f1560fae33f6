"""Start the desktop app: QApplication, main window, event loop."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from copilot_app.engine.runtime_info import bundled_model, device_label
from copilot_app.ui.main_window import MainWindow

ORGANIZATION = APPLICATION = "Composer Copilot"
ICON = Path(__file__).resolve().parents[2] / "resources" / "icons" / "composer-copilot.svg"
# A settings file to use instead of the user's (tests, screenshots, a second profile).
SETTINGS_ENV = "COPILOT_SETTINGS"


def _model_label(requested: str | None) -> str:
    if requested:
        return Path(requested).name
    bundled = bundled_model()
    return bundled.stem if bundled else "none bundled yet"


def make_settings() -> QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings()


def run_gui(args: argparse.Namespace) -> int:
    """Show the main window until it closes; with --screenshot save a picture and quit."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANIZATION)
    if ICON.is_file():
        app.setWindowIcon(QIcon(str(ICON)))
    shot = getattr(args, "screenshot", None)
    requested = getattr(args, "model", None)
    device = getattr(args, "device", "auto") or "auto"
    window = MainWindow(_model_label(requested), device_label(device), settings=make_settings(),
                        model_path=requested, device=device,
                        # a screenshot run must not rewrite the user's settings or grab their ports
                        persist=not shot, open_ports=not shot)
    window.show()
    if shot:
        done: list[bool] = []

        def save_and_quit() -> None:
            if done:
                return
            done.append(True)
            if not window.grab().save(shot):
                print(f"composer-copilot: error: cannot write screenshot {shot}", file=sys.stderr)
                window.close()
                app.exit(1)
                return
            window.close()
            app.quit()
        if window.loading:  # show the loaded model, not "loading…" (at most 30 s)
            window.bridge.modelLoaded.connect(lambda *_: QTimer.singleShot(300, save_and_quit))
            window.bridge.modelFailed.connect(lambda *_: QTimer.singleShot(300, save_and_quit))
            QTimer.singleShot(30000, save_and_quit)
        else:
            QTimer.singleShot(500, save_and_quit)
    return app.exec()
