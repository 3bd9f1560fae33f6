"""Style files (model/style.py): round trip, refusal for another base, bad files."""
from __future__ import annotations

import json

import pytest
import torch

from model.style import STYLE_FILE, Style, StyleError, load_style, load_style_for, model_fingerprint, save_style
from tests.helpers import perturbed_model

TINY = dict(vocab_size=40, n_layer=2, n_embd=64, head_size=32)


def random_style(model, seed: int = 0, name: str = "mine") -> Style:
    g = torch.Generator().manual_seed(seed)
    state = model.init_state(1)
    for t in (state.att_x, state.wkv, state.ffn_x):
        t.copy_(torch.randn(t.shape, generator=g))
    return Style.from_state(state, model, name)


def test_a_style_file_round_trips(tmp_path):
    model = perturbed_model(**TINY)
    style = random_style(model)
    save_style(tmp_path / "mine" / STYLE_FILE, style, metrics={"val_nll": 1.5})
    back = load_style(tmp_path / "mine")  # the run folder: its style.safetensors, named after the folder
    for name in ("att_x", "wkv", "ffn_x"):
        assert torch.equal(getattr(back, name), getattr(style, name))
    assert back.base_fingerprint == model_fingerprint(model)
    assert back.name == "mine" and back.meta["metrics"] == {"val_nll": 1.5}
    state = back.initial_state(3)
    assert state.wkv.shape == (2, 3, 2, 32, 32) and state.att_x.shape == (2, 3, 64)
    assert torch.equal(state.wkv[:, 2], style.wkv)
    state.wkv.add_(1.0)  # stepping a state never changes the style it came from
    assert torch.equal(back.initial_state(1).wkv[:, 0], style.wkv)


def test_the_default_models_style_is_under_a_megabyte(tmp_path):
    model = perturbed_model(vocab_size=330)  # the default 6 x 192 size
    save_style(tmp_path / "s.safetensors", random_style(model))
    size = (tmp_path / "s.safetensors").stat().st_size
    assert 250_000 < size <= 1024 * 1024  # 6 x (3 x 64 x 64 + 2 x 192) fp32 = 304 KB


def test_a_style_for_another_base_is_refused_in_one_line(tmp_path):
    mine, other = perturbed_model(seed=0, **TINY), perturbed_model(seed=1, **TINY)
    save_style(tmp_path / "s.safetensors", random_style(mine))
    assert load_style_for(tmp_path / "s.safetensors", mine).name == "s"  # named after its file
    with pytest.raises(StyleError) as err:
        load_style_for(tmp_path / "s.safetensors", other)
    message = str(err.value)
    assert "\n" not in message and "learned for another model" in message and "s.safetensors" in message


def test_one_changed_weight_changes_the_fingerprint():
    model = perturbed_model(**TINY)
    before = model_fingerprint(model)
    with torch.no_grad():
        model.head.weight[0, 0] += 1e-6
    assert model_fingerprint(model) != before


@pytest.mark.parametrize("damage, words", [
    ("missing", "style sidecar not found"),
    ("truncated", "SHA-256"),
    ("not json", "unreadable style sidecar"),
    ("a model", "not a Composer Copilot style"),
    ("nan", "NaN"),
])
def test_a_bad_style_file_is_one_line(tmp_path, damage, words):
    model = perturbed_model(**TINY)
    path = tmp_path / "s.safetensors"
    style = random_style(model)
    if damage == "nan":
        style.wkv[0, 0, 0, 0] = float("nan")
    save_style(path, style)
    side = path.with_suffix(".json")
    if damage == "missing":
        side.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "not json":
        side.write_text("{not json")
    elif damage == "a model":
        side.write_text(json.dumps({"format": "composer-copilot-rwkv7", "format_version": 1}))
    with pytest.raises(StyleError) as err:
        load_style(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_blending_two_styles_lies_between_them():
    model = perturbed_model(**TINY)
    a, b = random_style(model, 0, "a"), random_style(model, 1, "b")
    half = a.blend(b, 0.5)
    assert torch.allclose(half.wkv, (a.wkv + b.wkv) / 2, atol=1e-6)
    assert torch.equal(a.blend(b, 0.0).att_x, a.att_x) and torch.equal(a.blend(b, 1.0).ffn_x, b.ffn_x)
    foreign = random_style(perturbed_model(seed=3, **TINY), 2, "c")
    with pytest.raises(StyleError):
        a.blend(foreign, 0.5)
