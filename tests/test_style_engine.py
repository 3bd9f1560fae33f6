"""Styles in the live engine: the context starts from the style's state, a
switch re-primes it for the next answer (or, for a style kept ready, copies
its row that heard the whole context), and a style for another model is dropped."""
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


# -- styles kept ready: a switch is a copy of a row that heard the whole context --
def test_a_ready_style_takes_over_the_whole_context_without_a_re_prime(tiny_model):  # noqa: F811
    style = strong_style(tiny_model)
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=3, prepare_ahead=False))
    play(session, clock, PHRASE)
    session.keep_styles_ready([style])
    runner = session.runner
    for t in (2.0, 2.02, 2.04, 2.06):  # the pause: a chunk per poll
        session.poll(t)
    assert not runner.ready.backlog
    history = list(runner.history)
    plain_state, plain_logits = runner.state.clone(), runner.logits.clone()
    fed: list[int] = []
    step, block = runner.feed, runner.prefill
    runner.feed = lambda ids: (fed.extend(ids), step(ids))[1]
    runner.prefill = lambda ids: (fed.extend(ids), block(ids))[1]
    version = session._context_version
    session.set_style(style)
    assert fed == [] and runner.history == history  # nothing re-primed, the context kept whole
    assert session._context_version == version + 1  # an answer prepared from the old state is stale
    logits, by_hand = tiny_model.prefill(torch.tensor([history]), style.initial_state(1))
    assert torch.allclose(runner.state.wkv, by_hand.wkv, atol=1e-4)
    assert torch.allclose(runner.logits, logits, atol=1e-4)
    session.set_style(None)  # back: the row without a style is the context as it was
    assert torch.allclose(runner.state.wkv, plain_state.wkv, atol=1e-4)
    assert torch.allclose(runner.logits, plain_logits, atol=1e-4)
    assert fed == []


def test_ready_rows_stay_off_the_live_path_and_catch_up_in_chunks(tiny_model):  # noqa: F811
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=3, prepare_ahead=False))
    session.keep_styles_ready([strong_style(tiny_model)])
    ready = session.runner.ready
    chunk = ready.chunk
    before = ready.state.clone()
    session.runner.feed([session.vocab["Bar_None"]] * (chunk + 5))  # live tokens: a backlog, nothing run
    assert torch.equal(ready.state.wkv, before.wkv) and len(ready.backlog) >= chunk + 5
    clock.set(0.0)
    session._held.add(60)  # the player is still playing: one chunk, not the whole backlog
    session._last_activity = 0.0
    caught: list[int] = []
    catch_up = ready.catch_up
    ready.catch_up = lambda limit=None: caught.append(catch_up(limit)) or caught[-1]
    session.poll(0.001)
    assert caught == [chunk] and 0 < len(ready.backlog) < chunk
    session.poll(0.002)  # fewer than a chunk left while playing: it waits for a pause
    assert caught == [chunk]
    session._held.clear()
    for _ in range(10):  # a pause: a chunk per poll, whatever is left (the bars that passed too)
        session.poll(5.0)
    assert not ready.backlog and len(caught) >= 2


def test_a_style_made_ready_mid_phrase_hears_it_from_the_start_and_a_new_context_resets_it(tiny_model):  # noqa: F811
    style = strong_style(tiny_model)
    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=3, prepare_ahead=False))
    play(session, clock, PHRASE)
    session.keep_styles_ready([style, style])  # the same style twice is one row (+ the row for none)
    assert len(session.runner.ready) == 2
    state, logits = session.runner.ready.row(session.runner.ready.index(style))
    _, by_hand = tiny_model.prefill(torch.tensor([session.runner.history]), style.initial_state(1))
    assert torch.allclose(state.wkv, by_hand.wkv, atol=1e-4)
    session.runner.reset()
    assert not session.runner.ready.backlog and session.runner.ready.logits is None
    assert session.runner.ready.row(0) is None  # nothing heard: a switch re-primes instead


def test_a_new_model_keeps_ready_only_its_own_styles(tiny_model):  # noqa: F811
    from tests.helpers import perturbed_model

    session, _player, _port, clock = make_session(tiny_model, SessionSettings(seed=3, prepare_ahead=False))
    other = perturbed_model(seed=9, vocab_size=tiny_model.cfg.vocab_size, n_layer=2, n_embd=64, head_size=32)
    mine, theirs = strong_style(tiny_model), strong_style(other, seed=6)
    session.keep_styles_ready([mine])
    session.set_model(other, "other")
    assert len(session.runner.ready) == 1  # no style only: ``mine`` belongs to the first model
    session.keep_styles_ready([theirs])
    session.set_model(tiny_model, "tiny")
    assert session.runner.ready.keys == [""]
    session.keep_styles_ready([])
    assert len(session.runner.ready) == 0
