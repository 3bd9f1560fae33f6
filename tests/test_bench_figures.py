"""The README's Figures tables are rendered from the benchmark JSON kept in the repository."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import render_figures

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(render_figures.TABLES))
def test_readme_tables_are_the_committed_json_rendered(name):
    readme = (REPO / "README.md").read_text()
    table = render_figures.readme_table(name, readme)
    assert table is not None, f"README.md has no <!-- figures:{name} --> block"
    assert (REPO / "bench" / "results" / f"{name}.json").exists(), "the JSON the README quotes is kept"
    assert table == render_figures.render(name)


def test_fill_replaces_only_the_marked_block(tmp_path):
    result = json.loads((REPO / "bench" / "results" / "model_bench.json").read_text())
    result["prefill"]["T256"]["tokens_per_s"] = 1234.0
    (tmp_path / "model_bench.json").write_text(json.dumps(result))
    text = "intro\n<!-- figures:model_bench -->\nold table\n<!-- /figures:model_bench -->\nafter\n"
    out = render_figures.fill(text, tmp_path)
    assert out.startswith("intro\n<!-- figures:model_bench -->\n| measure |")
    assert out.endswith("\n<!-- /figures:model_bench -->\nafter\n")
    assert "1,234 /" in out and "old table" not in out
