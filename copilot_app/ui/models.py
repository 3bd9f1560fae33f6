"""Which models the Model menu offers: every bundled one and the user's fine-tunes.

User models live in the platform's app-data folder (QStandardPaths
AppDataLocation, e.g. ~/.local/share/Composer Copilot/models on Linux), one
folder per fine-tune as the trainer writes it (best.safetensors + its JSON
card + train_summary.json). Folders whose name starts with a dot are runs in
progress and are never listed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from copilot_app.engine.runtime_info import bundled_model, bundled_models

BEST = "best.safetensors"
SUMMARY = "train_summary.json"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    kind: str  # "bundled", "user" or "file"

    @property
    def label(self) -> str:
        return {"bundled": f"{self.name} (bundled)", "user": self.name, "file": f"{self.name} (file)"}[self.kind]


def default_models_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base) / "models"


def user_models(models_dir: Path) -> list[ModelEntry]:
    if not models_dir.is_dir():
        return []
    entries = []
    for d in sorted(models_dir.iterdir(), key=lambda p: p.name.lower()):
        if d.name.startswith("."):
            continue
        if d.is_dir() and (d / BEST).is_file():
            entries.append(ModelEntry(d.name, d / BEST, "user"))
        elif d.is_file() and d.suffix == ".safetensors":
            entries.append(ModelEntry(d.stem, d, "user"))
    return entries


def all_models(models_dir: Path, extra: Path | None = None) -> list[ModelEntry]:
    """Bundled first (the default, then the others), then the user's; ``extra``
    (a --model file) if it is neither."""
    entries = []
    for path in bundled_models():
        name = "Default" if path == bundled_model() else path.stem.replace("-", " ").capitalize()
        entries.append(ModelEntry(name, path, "bundled"))
    entries += user_models(models_dir)
    if extra is not None and not any(same_path(e.path, extra) for e in entries):
        entries.append(ModelEntry(extra.stem, extra, "file"))
    return entries


def display_name(path: str | Path) -> str:
    """What the status bar calls a model: its folder for a fine-tune's best.safetensors, else its stem."""
    p = Path(path)
    return p.parent.name if p.name == BEST else p.stem


def run_summary(model_path: Path) -> dict | None:
    """The trainer's summary next to a fine-tuned model, if any."""
    summary = model_path.parent / SUMMARY
    try:
        return json.loads(summary.read_text())
    except (OSError, ValueError):
        return None


def same_path(a: Path, b: Path) -> bool:
    """The same file, however the two paths are spelled."""
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
