"""Which styles the Style menu offers: every style in the user's styles folder.

Styles live beside the models (``.../Composer Copilot/styles``), one folder per
learned style as `train --style` writes it (style.safetensors + its JSON
sidecar + train_summary.json), or a loose style file copied there. Folders
whose name starts with a dot are runs in progress and are never listed.
Only the sidecars are read here (a few KB each); a file that is not a style
is left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model.style import STYLE_FILE, StyleError, read_style_sidecar, style_display_name


@dataclass(frozen=True)
class StyleEntry:
    name: str
    path: Path
    base_fingerprint: str  # the model it was learned for


def default_styles_dir(models_dir: Path) -> Path:
    """The styles folder beside the models folder."""
    return Path(models_dir).parent / "styles"


def _entry(name: str, path: Path) -> StyleEntry | None:
    try:
        side = read_style_sidecar(path)
    except StyleError:
        return None
    return StyleEntry(name, path, side["base"]["fingerprint"])


def user_styles(styles_dir: Path) -> list[StyleEntry]:
    if not styles_dir.is_dir():
        return []
    entries = []
    for d in sorted(styles_dir.iterdir(), key=lambda p: p.name.lower()):
        if d.name.startswith("."):
            continue
        entry = None
        if d.is_dir() and (d / STYLE_FILE).is_file():
            entry = _entry(d.name, d / STYLE_FILE)
        elif d.is_file() and d.suffix == ".safetensors":
            entry = _entry(d.stem, d)
        if entry is not None:
            entries.append(entry)
    return entries


__all__ = ["StyleEntry", "default_styles_dir", "style_display_name", "user_styles"]
