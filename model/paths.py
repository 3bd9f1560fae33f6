"""Where Composer Copilot keeps what it can rebuild: the per-user cache folder."""
from __future__ import annotations

import os
from pathlib import Path

APP_DIR = "composer-copilot"


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/composer-copilot/<parts>`` (``~/.cache`` when unset); not created."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, APP_DIR, *parts)
