"""Dependencies point one way and Qt lives only in copilot_app/ui.

Checked twice: statically (no module outside ui/ imports Qt, at any depth of
the source) and dynamically (importing every non-UI module in a fresh
interpreter leaves PySide6 out of sys.modules).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QT_PACKAGES = {"PySide6", "shiboken6", "PyQt5", "PyQt6", "PySide2"}
NO_QT_DIRS = ["model", "trainer", "copilot_app/engine"]
# layer -> packages it must not import (model <- trainer <- copilot_app)
FORBIDDEN = {"model": {"trainer", "copilot_app"}, "trainer": {"copilot_app"}}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
                "import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def python_files(rel: str) -> list[Path]:
    files = sorted((REPO / rel).rglob("*.py"))
    assert files, f"no Python files under {rel}"
    return files


def test_no_qt_import_outside_ui():
    offenders = [f"{p.relative_to(REPO)} imports {sorted(imported_top_levels(p) & QT_PACKAGES)}"
                 for rel in NO_QT_DIRS for p in python_files(rel) if imported_top_levels(p) & QT_PACKAGES]
    assert not offenders, offenders


def test_dependencies_point_one_way():
    offenders = [f"{p.relative_to(REPO)} imports {sorted(imported_top_levels(p) & bad)}"
                 for layer, bad in FORBIDDEN.items() for p in python_files(layer)
                 if imported_top_levels(p) & bad]
    assert not offenders, offenders


def test_importing_every_non_ui_module_leaves_qt_unloaded():
    modules = []
    for rel in NO_QT_DIRS:
        for p in python_files(rel):
            parts = p.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(set(sys.modules) & set({sorted(QT_PACKAGES)!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_static_check_would_catch_qt(tmp_path):
    # Guard against a checker that can never fail.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from PySide6.QtCore import QObject\n    return QObject\n")
    assert imported_top_levels(bad) & QT_PACKAGES == {"PySide6"}
