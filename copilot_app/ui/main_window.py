"""The main window. Later issues fill it: ports, sliders, piano roll, takes."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QWidget, QVBoxLayout

from copilot_app import __version__

TITLE = "Composer Copilot"


class MainWindow(QMainWindow):
    """Top-level window: menus, a central area and a status bar."""

    def __init__(self, model_label: str, device_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.resize(1100, 700)
        self._build_menus()

        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.hint = QLabel("Play a phrase on your MIDI keyboard and pause:\n"
                           "Composer Copilot answers with the next bars.", central)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setObjectName("hint")
        layout.addWidget(self.hint)
        self.setCentralWidget(central)

        self.model_status = QLabel(f"Model: {model_label}")
        self.device_status = QLabel(f"Device: {device_label}")
        self.statusBar().addPermanentWidget(self.model_status)
        self.statusBar().addPermanentWidget(self.device_status)
        self.statusBar().showMessage("Ready")

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Composer Copilot", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _show_about(self) -> None:
        QMessageBox.about(self, f"About {TITLE}",
                          f"{TITLE} {__version__}\nLive music continuation with a small RWKV-7 model.")
