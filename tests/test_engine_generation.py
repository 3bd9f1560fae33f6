"""generate(): K rows from a forked state under the grammar, the time floor and the meter."""
from __future__ import annotations

import torch

from copilot_app.engine.generation import ContextTrack, generate
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
