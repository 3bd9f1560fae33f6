"""What the app runs on: compute device and bundled model, for the status bar."""
from __future__ import annotations

from pathlib import Path

from resources import RESOURCES_DIR

# Where the trainer issue puts the default checkpoint (safetensors + JSON card).
DEFAULT_MODEL = RESOURCES_DIR / "models" / "default.safetensors"


def bundled_model() -> Path | None:
    """The bundled default checkpoint, or None while none ships."""
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None


def bundled_models() -> list[Path]:
    """Every checkpoint shipped in resources/models: the default first, then
    the others (e.g. the folk and chorale model) by name."""
    others = sorted(p for p in DEFAULT_MODEL.parent.glob("*.safetensors") if p != DEFAULT_MODEL)
    default = bundled_model()
    return ([default] if default is not None else []) + others


def device_label(requested: str = "auto") -> str:
    """'GPU: <name>' or 'CPU', after the --device choice."""
    import torch  # deferred: torch takes a second or two to import

    if requested != "cpu" and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return "CPU"
