"""Model > Fine-tune on my pieces…: the trainer in its own process, watched from here.

The dialog runs ``python -m trainer train --data DIR... --out STAGING --base
MODEL --progress json --time-budget MIN`` through QProcess (so the GUI and the
live engine stay responsive; the trainer may use the other cores) and reads
its JSON lines (trainer/progress.py): ``step`` events move the progress bar,
the ETA and the loss plot, ``eval`` events add validation points, ``done``
carries the validation NLL before and after.

The run writes into a hidden staging folder inside the models folder; only a
successful run is renamed to its final name (one atomic rename), so a failed
or cancelled run leaves the existing models exactly as they were.

"What to learn" chooses between a new model (every weight fine-tuned) and a
style (``train --style``: only the starting state of the base model is
learned, in about a minute, into a ~300 KB file; trainer/style_tuning.py).
A style run goes the same way into the styles folder.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (QComboBox, QDialog, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QPlainTextEdit, QProgressBar, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from copilot_app.ui.models import BEST, ModelEntry
from copilot_app.ui.styles import default_styles_dir
from model.style import STYLE_FILE
from trainer.defaults import FINE_TUNE_BUDGET_MIN, STYLE_BUDGET_MIN

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUDGET_MIN = FINE_TUNE_BUDGET_MIN  # the trainer's own default, defined once in trainer/defaults.py
KILL_AFTER_MS = 3000
# What a run can learn: (kind, label, the trainer's default budget, the file it leaves in its folder).
KINDS = {
    "model": ("A new model (every weight; a few minutes, 12.6 MB)", FINE_TUNE_BUDGET_MIN, BEST),
    "style": ("A style (only the starting state; about a minute, ~300 KB)", STYLE_BUDGET_MIN, STYLE_FILE),
}


def trainer_command(folders: list[str], out: Path, base: Path, budget_min: float,
                    extra: list[str] | None = None, threads: int | None = None, style: bool = False) -> list[str]:
    """Arguments after the Python executable."""
    threads = threads if threads is not None else max(1, (os.cpu_count() or 2) - 1)
    return (["-m", "trainer", "train", "--data", *folders, "--out", str(out), "--base", str(base),
             "--progress", "json", "--time-budget", f"{budget_min:g}", "--threads", str(threads)]
            + (["--style"] if style else []) + list(extra or []))


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class LossPlot(QWidget):
    """Train loss (every step) and validation loss (every eval) against the step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.setMinimumSize(360, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def clear(self) -> None:
        self.train, self.val = [], []
        self.update()

    def add_train(self, step: int, loss: float) -> None:
        self.train.append((step, loss))
        self.update()

    def add_val(self, step: int, loss: float) -> None:
        if not self.val or self.val[-1] != (step, loss):
            if self.val and self.val[-1][0] == step:
                self.val[-1] = (step, loss)
            else:
                self.val.append((step, loss))
            self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#1d1f24"))
        m_left, m_right, m_top, m_bottom = 48, 12, 22, 24
        area = QRectF(m_left, m_top, self.width() - m_left - m_right, self.height() - m_top - m_bottom)
        p.setPen(QPen(QColor("#6b7280"), 1))
        p.drawRect(area)
        points = self.train + self.val
        p.setPen(QColor("#e6e9ee"))
        if not points:
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "loss appears here as the trainer runs")
            p.end()
            return
        x_max = max(1, max(s for s, _ in points))
        y_lo, y_hi = min(v for _, v in points), max(v for _, v in points)
        if y_hi - y_lo < 1e-6:
            y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
        pad = (y_hi - y_lo) * 0.08
        y_lo, y_hi = y_lo - pad, y_hi + pad

        def pt(step: float, value: float):
            return (area.left() + step / x_max * area.width(),
                    area.bottom() - (value - y_lo) / (y_hi - y_lo) * area.height())

        for i in range(5):  # y ticks
            v = y_lo + (y_hi - y_lo) * i / 4
            _, y = pt(0, v)
            p.setPen(QPen(QColor("#30343b"), 1))
            p.drawLine(int(area.left()), int(y), int(area.right()), int(y))
            p.setPen(QColor("#9aa1ab"))
            p.drawText(QRectF(0, y - 8, m_left - 4, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{v:.2f}")
        p.drawText(QRectF(area.left(), area.bottom() + 4, area.width(), 18), Qt.AlignmentFlag.AlignCenter,
                   f"step (0–{x_max})")
        for series, colour, width in ((self.train, QColor("#4aa3f0"), 1.5), (self.val, QColor("#f0a030"), 2.5)):
            if not series:
                continue
            path = QPainterPath()
            path.moveTo(*pt(*series[0]))
            for s, v in series[1:]:
                path.lineTo(*pt(s, v))
            p.setPen(QPen(colour, width))
            p.setBrush(Qt.BrushStyle.NoBrush)  # a line, not a filled shape
            p.drawPath(path)
            for s, v in series if series is self.val else series[-1:]:
                x, y = pt(s, v)
                p.setBrush(colour)
                p.drawEllipse(QRectF(x - 3, y - 3, 6, 6))
        p.setPen(QColor("#4aa3f0"))
        p.drawText(int(area.left()) + 4, 15, "— train loss")
        p.setPen(QColor("#f0a030"))
        p.drawText(int(area.left()) + 110, 15, "— validation NLL (nats/token)")
        p.end()


class FineTuneDialog(QDialog):
    """Folders, base model, time budget; progress, ETA, loss plot, cancel, result."""

    modelCreated = Signal(str)      # path of the new best.safetensors
    styleCreated = Signal(str)      # path of the new style.safetensors
    switchRequested = Signal(str)   # the user wants to use the new model now
    styleRequested = Signal(str)    # the user wants to use the new style now
    runFailed = Signal(str)
    runCancelled = Signal()

    def __init__(self, models_dir: Path, bases: list[ModelEntry], current: Path | None = None,
                 parent: QWidget | None = None, python: str | None = None,
                 styles_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune on my pieces")
        self.setModal(False)
        self.resize(640, 620)
        self.models_dir = Path(models_dir)
        self.styles_dir = Path(styles_dir) if styles_dir is not None else default_styles_dir(self.models_dir)
        self.run_kind = "model"           # what the last started run learns
        self.python = python or sys.executable
        self.extra_args: list[str] = []   # e.g. ["--steps", "3"] (tests, power users)
        self.threads: int | None = None
        self.state = "idle"               # idle, running, done, failed, cancelled
        self.summary: dict | None = None
        self.error: str | None = None
        self.new_model: Path | None = None
        self.process: QProcess | None = None
        self.staging: Path | None = None
        self.final_dir: Path | None = None
        self._stdout_buf = b""
        self._stderr_tail: list[str] = []
        self._cancelled = False
        self._t0 = 0.0
        self._budget_s = 0.0
        self._build(bases, current)

    # -- layout -----------------------------------------------------------------
    def _build(self, bases: list[ModelEntry], current: Path | None) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        folders_box = QVBoxLayout()
        self.folders = QListWidget()
        self.folders.setMaximumHeight(90)
        folders_box.addWidget(self.folders)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        folders_box.addLayout(row)
        form.addRow("Folders of .mid files:", folders_box)
        self.base = QComboBox()
        for entry in bases:
            self.base.addItem(entry.label, str(entry.path))
        if current is not None:
            i = self.base.findData(str(current))
            if i >= 0:
                self.base.setCurrentIndex(i)
        form.addRow("Base model:", self.base)
        self.kind = QComboBox()
        for kind, (label, _budget, _file) in KINDS.items():
            self.kind.addItem(label, kind)
        form.addRow("What to learn:", self.kind)
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.2, 600.0)
        self.budget.setDecimals(1)
        self.budget.setSingleStep(0.5)
        self.budget.setValue(DEFAULT_BUDGET_MIN)
        self.budget.setSuffix(" min")
        form.addRow("Time budget:", self.budget)
        self.name = QLineEdit(time.strftime("my-pieces-%Y%m%d-%H%M"))
        self.name_label = QLabel("New model name:")
        form.addRow(self.name_label, self.name)
        layout.addLayout(form)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        layout.addWidget(self.progress)
        self.eta = QLabel("ETA –")
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.eta)
        self.plot = LossPlot()
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.result)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(200)
        self.log.setMaximumHeight(90)
        layout.addWidget(self.log)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel training")
        self.switch_button = QPushButton("Use the new model")
        self.close_button = QPushButton("Close")
        self.switch_button.setVisible(False)
        self.cancel_button.setEnabled(False)
        for b in (self.start_button, self.cancel_button, self.switch_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

        for widget, tip in (
                (self.folders, "The folders whose .mid files (and their subfolders') the model learns from"),
                (self.add_button, "Add a folder of your .mid files"),
                (self.remove_button, "Take the selected folder off the list"),
                (self.base, "The model to start from: the new one learns your style on top of it"),
                (self.kind, "A new model rewrites every weight; a style learns only the state the model "
                            "starts from (the Style menu switches styles live, the model stays)"),
                (self.budget, "The longest the training may run; it stops earlier when it stops improving"),
                (self.name, "The new model's name in the Model menu (and its file in the models folder)"),
                (self.progress, "Time left against the budget, or steps when they end the run first"),
                (self.plot, "Training loss (every step) and validation loss (every evaluation): lower is better"),
                (self.log, "What the trainer says: skipped files with their reasons, warnings"),
                (self.start_button, "Start training in the background; you can keep playing meanwhile"),
                (self.cancel_button, "Stop training; your models stay as they were"),
                (self.switch_button, "Play with the model this run made"),
                (self.close_button, "Close this window (a running training is cancelled)")):
            widget.setToolTip(tip)

        self.kind.currentIndexChanged.connect(lambda _i: self._kind_changed())
        self.add_button.clicked.connect(self._choose_folder)
        self.remove_button.clicked.connect(lambda: self.folders.takeItem(self.folders.currentRow()))
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.switch_button.clicked.connect(self._switch)
        self.close_button.clicked.connect(self.close)

    def selected_kind(self) -> str:
        return self.kind.currentData()

    def set_kind(self, kind: str) -> None:
        """Learn a new model ("model") or a style ("style"); the budget takes that kind's default."""
        self.kind.setCurrentIndex(self.kind.findData(kind))
        self._kind_changed()

    def _kind_changed(self) -> None:
        _label, budget, _file = KINDS[self.selected_kind()]
        self.budget.setValue(budget)
        style = self.selected_kind() == "style"
        self.name_label.setText("New style name:" if style else "New model name:")
        self.start_button.setText("Learn the style" if style else "Start")

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of your .mid files")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        folder = str(folder)
        if folder not in self.folder_list():
            self.folders.addItem(folder)

    def folder_list(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    def set_base(self, path: str | Path) -> None:
        i = self.base.findData(str(path))
        if i < 0:
            self.base.addItem(Path(path).stem, str(path))
            i = self.base.count() - 1
        self.base.setCurrentIndex(i)

    # -- running ----------------------------------------------------------------
    def start(self) -> bool:
        """Check the form, then launch the trainer; False (with a message) if the form is wrong."""
        if self.state == "running":
            return False
        folders = self.folder_list()
        base = self.base.currentData()
        name = self.name.text().strip()
        kind = self.selected_kind()
        dest_dir = self.styles_dir if kind == "style" else self.models_dir
        problem = None
        if not folders:
            problem = "Add at least one folder of .mid files."
        elif not base:
            problem = "Choose a base model (the Model menu lists them)."
        elif not name or name.startswith(".") or any(c in name for c in "/\\:"):
            problem = "Give the new model a plain name (no slashes, not starting with a dot)."
        elif (dest_dir / name).exists():
            problem = f"A {kind} named {name!r} already exists; choose another name."
        if problem:
            self._fail(problem, started=False)
            return False
        dest_dir.mkdir(parents=True, exist_ok=True)
        self.run_kind = kind
        self.final_dir = dest_dir / name
        self.staging = dest_dir / f".training-{name}"
        shutil.rmtree(self.staging, ignore_errors=True)
        args = trainer_command(folders, self.staging, Path(base), self.budget.value(), self.extra_args,
                               self.threads, style=kind == "style")
        self.state, self.summary, self.error, self.new_model = "running", None, None, None
        self._cancelled = False
        self._stdout_buf, self._stderr_tail = b"", []
        self._t0, self._budget_s = time.monotonic(), self.budget.value() * 60
        self.plot.clear()
        self.log.clear()
        self.result.setText("")
        self.switch_button.setVisible(False)
        self.progress.setValue(0)
        self.progress.setFormat("starting the trainer…")
        self.eta.setText("ETA –")
        self._set_running(True)

        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), env.value("PYTHONPATH")])))
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.setWorkingDirectory(str(REPO_ROOT))
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._process_error)
        self.process = proc
        self.log.appendPlainText("$ python " + " ".join(args))
        proc.start(self.python, args)
        return True

    def cancel(self) -> None:
        """Stop the trainer (terminate, then kill); the staging folder is removed."""
        if self.process is None or self.state != "running":
            return
        self._cancelled = True
        self.progress.setFormat("cancelling…")
        self.process.terminate()
        # Then kill if it has not gone; the timer belongs to the process, so it dies with it.
        killer = QTimer(self.process)
        killer.setSingleShot(True)
        killer.timeout.connect(self.process.kill)
        killer.start(KILL_AFTER_MS)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.add_button, self.remove_button, self.base, self.kind, self.budget, self.name, self.folders):
            w.setEnabled(not running)

    def _read_stdout(self) -> None:
        self._stdout_buf += bytes(self.process.readAllStandardOutput())
        *lines, self._stdout_buf = self._stdout_buf.split(b"\n")
        for raw in lines:
            self.handle_line(raw.decode("utf-8", "replace"))

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr_tail = (self._stderr_tail + [line])[-40:]
                self.log.appendPlainText(line)

    def handle_line(self, line: str) -> None:
        """One line of the trainer's stdout (JSON events; anything else is logged)."""
        line = line.strip()
        if not line:
            return
        try:
            event = json.loads(line)
        except ValueError:
            self.log.appendPlainText(line)
            return
        kind = event.get("event")
        if kind == "step":
            step, steps = int(event.get("step", 0)), int(event.get("steps") or 0)
            if event.get("loss") is not None:
                self.plot.add_train(step, float(event["loss"]))
            val = event.get("val_loss")  # the last eval's value, repeated on every step
            if val is not None and (not self.plot.val or self.plot.val[-1][1] != float(val)):
                self.plot.add_val(step, float(val))
            elapsed = time.monotonic() - self._t0
            fraction = step / steps if steps else 0.0
            if self._budget_s > 0:
                fraction = max(fraction, min(1.0, elapsed / self._budget_s))
            self.progress.setValue(int(1000 * min(1.0, fraction)))
            eta = event.get("eta_s")
            budget_left = max(0.0, self._budget_s - elapsed) if self._budget_s > 0 else None
            # The time budget ends the run before its last step: count down the
            # budget, not towards a step the run will never reach.
            budget_ends_it = budget_left is not None and (eta is None or float(eta) >= budget_left)
            if budget_left is not None:
                eta = budget_left if eta is None else min(float(eta), budget_left)
            loss = event.get("loss")
            if budget_ends_it:
                text = f"{format_eta(budget_left)} left of the {self._budget_s / 60:g}-min budget · step {step}"
            else:
                text = f"step {step}/{steps or '?'}" + (f" · {format_eta(eta)} left" if eta is not None else "")
            self.progress.setFormat(text + (f" · loss {loss:.3f}" if loss is not None else ""))
            tps = event.get("tokens_per_s")
            self.eta.setText(f"ETA {format_eta(eta)}" + (f" · {tps:,.0f} tokens/s" if tps else ""))
        elif kind == "eval":
            if event.get("val_loss") is not None:
                self.plot.add_val(int(event.get("step", 0)), float(event["val_loss"]))
        elif kind == "info":
            self.log.appendPlainText(str(event.get("message", "")))
        elif kind == "done":
            self.summary = event
        elif kind == "checkpoint":
            pass

    def _process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.state == "running":
            self._cleanup_staging()
            self._fail(f"could not start the trainer ({self.python}): {self.process.errorString()}")

    def _finished(self, code: int, status) -> None:
        if self.state != "running":
            return
        if self.process is not None:  # the last lines may arrive with the exit
            self._read_stdout()
            if self._stdout_buf:
                self.handle_line(self._stdout_buf.decode("utf-8", "replace"))
                self._stdout_buf = b""
        if self._cancelled:
            self._cleanup_staging()
            self.state = "cancelled"
            self.progress.setFormat("cancelled")
            self.eta.setText("ETA –")
            self.result.setText("Training cancelled; your models are unchanged.")
            self._set_running(False)
            self.runCancelled.emit()
            return
        best = self.staging / KINDS[self.run_kind][2] if self.staging else None
        if code != 0 or status != QProcess.ExitStatus.NormalExit or best is None or not best.is_file():
            self._cleanup_staging()
            self._fail(self._error_text(code))
            return
        try:
            os.replace(self.staging, self.final_dir)  # one rename: the model appears whole or not at all
        except OSError as exc:
            self._cleanup_staging()
            self._fail(f"could not store the new model: {exc}")
            return
        self.new_model = self.final_dir / KINDS[self.run_kind][2]
        self.state = "done"
        self.progress.setValue(1000)
        self.progress.setFormat("done")
        self.eta.setText("ETA 0:00")
        self.result.setText(self._result_text())
        self.switch_button.setText("Use the new style" if self.run_kind == "style" else "Use the new model")
        self.switch_button.setVisible(True)
        self._set_running(False)
        (self.styleCreated if self.run_kind == "style" else self.modelCreated).emit(str(self.new_model))

    def _result_text(self) -> str:
        s = self.summary or {}
        before, after, best = s.get("val_nll_before"), s.get("val_nll_after"), s.get("best_val_nll")
        parts = [f"<b>{self.final_dir.name}</b> is ready ({s.get('steps', '?')} steps, "
                 f"stopped by {s.get('stopped', '?')}, {s.get('wall_s', '?')} s)."]
        if before is not None and after is not None:
            better = "better" if after < before else "not better"
            with_what = " with the style" if self.run_kind == "style" else ""
            parts.append(f"Validation NLL on your held-out pieces: {before:.3f} → {after:.3f} nats/token"
                         f"{with_what} ({better}; best {best:.3f}).")
        elif after is not None:
            parts.append(f"Validation NLL: {after:.3f} nats/token.")
        return " ".join(parts)

    def _error_text(self, code: int) -> str:
        lines = [ln for ln in self._stderr_tail if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        detail = (errors or lines or [f"exit code {code}"])[-1]
        return f"Training failed: {detail}"

    def _fail(self, message: str, started: bool = True) -> None:
        self.error = message
        if started:
            self.state = "failed"
            self.progress.setFormat("failed")
        self.result.setText(f"<span style='color:#d9534f'>{message}</span>"
                            + (" Your existing models are unchanged." if started else ""))
        self._set_running(False)
        self.runFailed.emit(message)

    def _cleanup_staging(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def add_bases(self, entries: list[ModelEntry]) -> None:
        """Offer models that appeared since the dialog opened (e.g. the last fine-tune)."""
        for entry in entries:
            if self.base.findData(str(entry.path)) < 0:
                self.base.addItem(entry.label, str(entry.path))

    def stop_and_wait(self, timeout_ms: int = KILL_AFTER_MS) -> None:
        """On quitting the app: cancel a run and let it clean up before the process object goes."""
        if self.process is None or self.state != "running":
            return
        self.cancel()
        if not self.process.waitForFinished(timeout_ms):
            self.process.kill()
            self.process.waitForFinished(1000)
        if self.state == "running":  # finished was not delivered: tidy up here
            self._cleanup_staging()
            self.state = "cancelled"

    def _switch(self) -> None:
        if self.new_model is not None:
            (self.styleRequested if self.run_kind == "style" else self.switchRequested).emit(str(self.new_model))

    def closeEvent(self, event) -> None:  # noqa: N802
        self.cancel()  # closing the dialog never leaves a trainer running
        super().closeEvent(event)
