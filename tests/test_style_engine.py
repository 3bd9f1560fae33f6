"""Styles in the live engine: the context starts from the style's state, a
switch re-primes it for the next answer, and a style for another model is dropped."""
from __future__ import annotations

import torch

from copilot_app.engine.clock import MonotonicClock
from copilot_app.engine.live import LiveEngine, wait_until
from copilot_app.engine.session import SessionSettings
from model.style import Style
from tests.test_engine_player import RecordingPort
from tests.test_engine_session import PHRASE, make_session, play, tiny_model  # noqa: F401  (fixture)


def strong_style(model, seed: int = 5, name: str = "mine") -> Style:
    """A state far from zero, so the answers it starts must differ."""
    g = torch.Generator().manual_seed(seed)
    state = model.init_state(1)
    for t in (state.att_x, state.wkv, state.ffn_x):
        t.copy_(torch.randn(t.shape, generator=g) * 2)
    return Style.from_state(state, model, name)


def answer(session, clock) -> list[tuple[int, int]]:
    take = session.trigger(clock.now())
    return [(n.start, n.pitch) for n in take.variations[0]]


def test_a_switch_re_primes_the_context_from_the_styles_state(tiny_model):  # noqa: F811
    style = strong_style(tiny_model)
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=3, prepare_ahead=False))
    play(session, clock, PHRASE)
    clock.set(2.0)
    fed: list[int] = []  # every id the re-prime hands the model, in order
    runner = session.runner
    step, block = runner.feed, runner.prefill
    runner.feed = lambda ids: (fed.extend(ids), step(ids))[1]
    runner.prefill = lambda ids: (fed.extend(ids), block(ids))[1]
    session.set_style(style)
    assert fed[0] == session.vocab["BOS_None"] and len(fed) > 10
    # Priming by hand from the style's state reaches the same state.
    logits, by_hand = tiny_model.prefill(torch.tensor([fed]), style.initial_state(1))
    assert torch.allclose(session.runner.state.wkv, by_hand.wkv, atol=1e-4)
    assert torch.allclose(session.runner.logits, logits, atol=1e-4)
    # ...and not the one a context without the style reaches.
    _, plain = tiny_model.prefill(torch.tensor([fed]))
    assert not torch.allclose(session.runner.state.wkv, plain.wkv, atol=1e-2)


def test_the_next_answer_speaks_in_the_style_and_none_brings_the_old_one_back(tiny_model):  # noqa: F811
    style = strong_style(tiny_model)
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=3, prepare_ahead=False))
    play(session, clock, PHRASE)
    clock.set(2.0)
    session.set_style(None)  # a re-prime without a style: the same context as the styled ones below
    plain = answer(session, clock)
    session.set_style(style)
    styled = answer(session, clock)
    session.set_style(None)
    again = answer(session, clock)
    assert styled != plain  # same seed, same notes heard: only the initial state differs
    assert again == plain
    assert session.snapshot(session_event()).style is None
    session.set_style(style)
    assert session.snapshot(session_event()).style == "mine"


def session_event():
    from copilot_app.engine.session_model import SessionEvent

    return SessionEvent("style")


def test_the_engine_thread_applies_a_style_and_drops_it_for_another_model(tiny_model):  # noqa: F811
    from tests.helpers import perturbed_model

    snapshots, errors = [], []
    engine = LiveEngine(tiny_model, RecordingPort(), settings=SessionSettings(seed=1, trigger_beats=0),
                        clock=MonotonicClock(), on_snapshot=snapshots.append, on_error=errors.append)
    with engine:
        engine.set_style(strong_style(tiny_model))
        assert wait_until(lambda: any(s.event.kind == "style" and s.style == "mine" for s in snapshots), 5.0)
        other = perturbed_model(seed=9, vocab_size=tiny_model.cfg.vocab_size, n_layer=2, n_embd=64,
                                head_size=32)
        engine.set_model(other, "other")
        assert wait_until(lambda: any(s.event.kind == "model" for s in snapshots), 5.0)
    model_snapshot = next(s for s in snapshots if s.event.kind == "model")
    assert model_snapshot.style is None and model_snapshot.model == "other"
    assert len(errors) == 1 and "learned for another model" in errors[0] and "\n" not in errors[0]
