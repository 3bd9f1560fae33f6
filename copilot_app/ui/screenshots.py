"""Save the README/docs screenshots of the main window: idle, with a take, fine-tuning.

    python -m copilot_app.ui.screenshots --model PATH [--out docs/screenshots] [--data tests/data]

Runs the real app offscreen (QT_QPA_PLATFORM=offscreen unless a display is
set) with throw-away settings and models folders, plays a phrase into the
live engine through its MIDI callback, asks for a take, then starts a short
real fine-tune and grabs the window with the dialog over it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import mido  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtGui import QColor, QPainter, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# "Ode to Joy", first phrase: (pitch, beats)
PHRASE = [(64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1),
          (60, 1), (60, 1), (62, 1), (64, 1), (64, 1.5), (62, 0.5), (62, 2)]


class NullSink:
    def send(self, msg) -> None:
        pass


def spin(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)


def wait_for(app: QApplication, predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        spin(app, 0.02)
    return predicate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint to run (e.g. the bundled model)")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    parser.add_argument("--data", default=str(REPO / "tests" / "data"), help="pieces for the fine-tune shot")
    parser.add_argument("--fine-tune-steps", type=int, default=40)
    args = parser.parse_args(argv)

    from copilot_app.ui.main_window import MainWindow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    scratch = Path(tempfile.mkdtemp(prefix="copilot-shots-"))
    settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, models_dir=scratch / "models", model_path=args.model,
                        device="cpu", open_ports=False)
    window.bridge.set_output_sink(NullSink())
    window.resize(1280, 800)
    window.show()
    if not wait_for(app, lambda: window.bridge.snapshot is not None and window.bridge.snapshot.model is not None, 120):
        print(f"screenshots: the model did not load: {window.last_error}", file=sys.stderr)
        return 1
    spin(app, 0.5)
    window.grab().save(str(out / "main-window-idle.png"))

    # A take: the phrase in time through the engine's MIDI callback, then Continue.
    window.continuation.trigger_combo.setCurrentIndex(window.continuation.trigger_combo.findData("button"))
    window.continuation.variations.setValue(3)
    window.bridge.update_settings(seed=7)
    beat = 60.0 / window.time_controls.tempo.value()
    for pitch, beats in PHRASE:
        window.bridge.midi_in(mido.Message("note_on", note=pitch, velocity=72))
        spin(app, beats * beat * 0.9)
        window.bridge.midi_in(mido.Message("note_off", note=pitch, velocity=0))
        spin(app, beats * beat * 0.1)
    window.act_continue.trigger()
    if not wait_for(app, lambda: bool(window.takes.refs()), 120):
        print(f"screenshots: no take: {window.last_error}", file=sys.stderr)
        return 1
    spin(app, 2.5)  # let the playhead run into the answer
    window.grab().save(str(out / "main-window-take.png"))

    # Fine-tuning: a short real run of the trainer, the dialog over the window.
    dialog = window.open_finetune()
    dialog.add_folder(args.data)
    dialog.set_base(args.model)
    dialog.name.setText("my-pieces")
    dialog.budget.setValue(2.0)
    dialog.extra_args = ["--steps", str(args.fine_tune_steps), "--ctx-len", "64", "--batch-size", "4",
                         "--eval-every", "5", "--device", "cpu"]
    dialog.start()
    # Grab mid-run: a few points on the plot, well before early stopping could
    # end a run this short (the grab is meant to show a run in progress).
    wait_for(app, lambda: len(dialog.plot.train) >= 6 or dialog.state != "running", 300)
    state = dialog.state
    composite(window, dialog).save(str(out / "main-window-fine-tuning.png"))
    wait_for(app, lambda: dialog.state != "running", 300)
    spin(app, 0.3)
    composite(window, dialog).save(str(out / "fine-tune-finished.png"))
    final = dialog.state
    window.close()
    print(f"screenshots in {out} (fine-tune {state} at the first grab, {final} at the second)")
    return 0 if final == "done" else 1


def composite(window, dialog) -> QPixmap:
    """The window with the dialog over it, framed and titled (offscreen has no window manager)."""
    base, over = window.grab(), dialog.grab()
    canvas = QPixmap(base.size())
    painter = QPainter(canvas)
    painter.drawPixmap(0, 0, base)
    painter.fillRect(canvas.rect(), QColor(0, 0, 0, 70))
    x, y = (base.width() - over.width()) // 2, (base.height() - over.height()) // 2 + 10
    title = 24
    painter.fillRect(x - 1, y - title - 1, over.width() + 2, over.height() + title + 2, QColor("#3b4048"))
    painter.setPen(QColor("#ffffff"))
    painter.drawText(x + 8, y - 7, dialog.windowTitle())
    painter.drawPixmap(x, y, over)
    painter.end()
    return canvas


if __name__ == "__main__":
    sys.exit(main())
