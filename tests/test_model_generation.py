"""generate(): K rows from a forked state under the grammar, the time floor and the meter."""
from __future__ import annotations

import torch

from model.generation import ContextTrack, generate
from model import RWKV7, RWKVConfig
from model.sampling import SamplingParams
from model.tokens.config import TICKS_PER_QUARTER, build_tokenizer

VOCAB = build_tokenizer().vocab


class FourFourLover:
    """A real tiny RWKV-7 whose logits are pushed hard towards TimeSig_4/4,
    recording every token it is fed."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = RWKV7(RWKVConfig(vocab_size=len(VOCAB), n_layer=1, n_embd=64, head_size=32)).eval()
        self.fed: list[int] = []

    def push(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[:, VOCAB["TimeSig_4/4"]] += 50.0
        return logits

    def step(self, tokens, state, **kw):
        self.fed.extend(int(t) for t in tokens)
        logits, state = self.model.step(tokens, state, **kw)
        return self.push(logits), state


def test_an_answer_keeps_the_context_meter_even_when_the_model_prefers_another():
    fake = FourFourLover()
    track = ContextTrack.fresh()
    state = fake.model.init_state(1)
    logits = None
    for t in ["Bar_None", "TimeSig_3/4", "Position_0", "Pitch_60", "Duration_1.0.12"]:
        track.update(VOCAB[t])
        logits, state = fake.step(torch.tensor([VOCAB[t]]), state)
    start = 3 * TICKS_PER_QUARTER  # the next 3/4 bar
    for seed in range(3):
        # K=1: every token fed back is the row's own (finished rows of a
        # batch are fed filler tokens that nobody reads).
        fake.fed.clear()
        rows = generate(fake, state, logits, track, start, start + 3 * 3 * TICKS_PER_QUARTER, k=1,
                        params=SamplingParams(temperature=1.5), seed=seed)
        timesigs = [t for t in fake.fed if t in track.grammar.v.timesig]
        assert fake.fed.count(VOCAB["Bar_None"]) >= 2 and set(timesigs) == {VOCAB["TimeSig_3/4"]}
        assert all(start <= n.start < start + 9 * TICKS_PER_QUARTER for row in rows for n in row)


def _tiny_model() -> RWKV7:
    torch.manual_seed(1)
    m = RWKV7(RWKVConfig(vocab_size=len(VOCAB), n_layer=1, n_embd=64, head_size=32)).eval()
    with torch.no_grad():
        for p_ in m.parameters():
            p_.add_(torch.randn_like(p_) * 0.3)
    return m


def _ids(tokens: list[str]) -> list[int]:
    return [VOCAB[t] for t in tokens]


PHRASE = ["BOS_None", "Bar_None", "TimeSig_4/4", "Position_0", "Pitch_60", "Duration_1.0.12",
          "Position_12", "Pitch_64", "Duration_1.0.12", "Position_24", "Pitch_67", "Duration_2.0.12"]


def test_generate_is_seeded_leaves_the_context_alone_and_its_tokens_replay_to_its_notes():
    from model.generation import prime
    from model.tokens.grammar import RemiGrammar

    m = _tiny_model()
    track, logits, state = prime(m, _ids(PHRASE))
    before = state.clone()
    start, end = 4 * TICKS_PER_QUARTER, 12 * TICKS_PER_QUARTER
    runs = []
    for _ in range(2):
        toks: list[list[int]] = []
        rows = generate(m, state, logits, track, start, end, k=3,
                        params=SamplingParams(temperature=1.0, top_p=0.95), seed=7, tokens_out=toks)
        runs.append((rows, toks))
    assert runs[0] == runs[1]  # same seed, same answer
    assert torch.equal(state.wkv, before.wkv)  # the context state is forked, not consumed
    rows, toks = runs[0]
    for row, row_toks in zip(rows, toks):
        g = RemiGrammar()
        for t in _ids(PHRASE) + row_toks:
            g.update(t)  # raises on anything the grammar forbids
        replay = track.fork()
        notes = [n for n in (replay.update(t) for t in row_toks) if n is not None and n.start >= start]
        assert [(n.start, n.pitch) for n in notes if n.start < end] == [(n.start, n.pitch) for n in row]


def test_a_context_cut_inside_a_bar_is_primed_from_its_first_bar_line():
    """An eval/completion window may start mid-bar (a Pitch, a Duration): the
    grammar picks up at the first Bar instead of refusing the context."""
    from model.generation import prime

    m = _tiny_model()
    cut = PHRASE[5:] + ["Bar_None", "TimeSig_3/4", "Position_0", "Pitch_62", "Duration_1.0.12"]
    track, logits, state = prime(m, _ids(cut))
    assert track.meter == (3, 4)
    rows = generate(m, state, logits, track, 3 * TICKS_PER_QUARTER, 9 * TICKS_PER_QUARTER, k=2,
                    params=SamplingParams(), seed=0)
    assert all(3 * TICKS_PER_QUARTER <= n.start < 9 * TICKS_PER_QUARTER for row in rows for n in row)
