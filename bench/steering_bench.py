"""What the steering controls do to the answers, and what they cost (not a test).

    python bench/steering_bench.py --data CORPUS... [--cases 64] [--json]

1. Held-out pieces of each corpus's val split (eval's cut points: 4 bars
   heard, 2 bars answered by the app's generator at its default temperature
   and top-p, one seed per cut), answered under each setting:
   - key lock off / auto (the key the heard bars suggest): share of answer
     notes in the locked scale, and eval's metrics against the real next
     bars (chord-tone ratio, in-key, density ratio, pitch-class similarity);
   - a register narrower than the phrase (its middle octave): share inside;
   - density and texture at -1, -0.5, 0, +0.5, +1: notes per bar and notes
     per onset (monotonic? the ratio between the ends);
   and for every setting the share of bars of the wrong length (the grammar
   replays every answer token: a broken bar line or token order would raise).
2. Time to first note of an explicit trigger in the live session (the
   bundled model, one thread, 4096 tokens heard) with every control off and
   with all on (auto key, a fixed register, density and texture +0.5),
   interleaved; and the time from "regenerate from bar 2" and from "more like
   this" to the first new note.

Writes bench/results/steering_bench.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._report import corpus_dirs, utc_stamp, write_and_print  # noqa: E402
from model.generation import generate, prime  # noqa: E402
from model.sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, SamplingParams  # noqa: E402
from model.steering import Steer, Steering  # noqa: E402
from trainer.datasets import COMPLETION_BARS, CONTEXT_BARS  # noqa: E402
from trainer.evaluate import bar_lines, cut_points, eval_sets, key_at  # noqa: E402
from trainer.metrics import aggregate, continuation_metrics  # noqa: E402
from trainer.vocab import vocab  # noqa: E402

LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)
LIVE_ON = Steering(key="auto", register_low=48, register_high=84, density=0.5, texture=0.5)


def settings_to_measure() -> dict[str, Steering | None]:
    """name -> Steering (None: the register case, built per cut from its phrase)."""
    out: dict[str, Steering | None] = {"lock off": Steering(), "lock auto": Steering(key="auto"),
                                       "register: middle octave": None}
    out.update({f"density {d:+.1f}": Steering(density=d) for d in LEVELS})
    out.update({f"texture {t:+.1f}": Steering(texture=t) for t in LEVELS})
    return out


def answers(model, data, n_cases: int, seed: int) -> dict[str, dict]:
    """Every setting's measures over the same cuts."""
    params = SamplingParams(temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P)
    settings = settings_to_measure()
    rows: dict[str, list[dict]] = {name: [] for name in settings}
    for n, (p, j) in enumerate(cut_points(data.pieces, n_cases)):
        ids = data.pieces.ids[p]
        index, ticks = bar_lines(ids)
        context = [vocab().bos] + ids[index[j - CONTEXT_BARS]:index[j]].tolist()
        origin = ticks[j - CONTEXT_BARS]
        start, end = ticks[j] - origin, ticks[j + COMPLETION_BARS] - origin
        track, logits, state = prime(model, context)
        heard = [x.pitch for x in track.decoder.notes]
        replay = track.fork()
        truth = [x for x in (replay.update(t) for t in ids[index[j]:index[j + COMPLETION_BARS]].tolist())
                 if x is not None and start <= x.start < end]
        notes = data.notes[p] or {}
        key = key_at(notes, ticks[j], heard)
        for name, steering in settings.items():
            if steering is None:
                mid = int(np.median(heard)) if heard else 60
                steer = Steer.build(None, (mid - 6, mid + 6))
            else:
                steer = steering.resolve(track.decoder.notes)
            tokens: list[list[int]] = []
            (row,) = generate(model, state, logits, track, start, end, 1, params, seed=seed + n, steer=steer,
                              tokens_out=tokens)
            gen = [(x.start + origin, x.pitch) for x in row]
            m = continuation_metrics(gen, [(x.start + origin, x.pitch) for x in truth], key, notes.get("chords"),
                                     wrong_bars(track, tokens[0], end), COMPLETION_BARS)
            m["allowed"] = float(np.mean([steer.allows(q) for _, q in gen])) if gen else float("nan")
            m["notes_per_bar"] = len(gen) / COMPLETION_BARS
            rows[name].append(m)
    out = {}
    for name, r in rows.items():
        a = aggregate(r, [], [])
        out[name] = {k: a[k] for k in ("allowed", "notes_per_bar", "notes_per_onset", "chord_tone", "in_key",
                                       "density_ratio", "pitch_class_similarity", "near_silent",
                                       "wrong_length_bars")}
        out[name]["cases"] = len(r)
    return out


def wrong_bars(track, tokens: list[int], end: int) -> int:
    """Bars of the wrong length in an answer, as eval counts them: a TimeSig
    other than the context's, or bars the answer never reached."""
    out = track.fork()
    for t in tokens:
        out.update(t)  # the grammar raises on a token that may not follow
    v = track.grammar.v
    wrong = sum(1 for t in tokens if t in v.timesig and t != track.timesig_id)
    if out.decoder.position_tick < end:
        wrong += COMPLETION_BARS
    return min(wrong, COMPLETION_BARS)


def sweep(res: dict, control: str, measure: str) -> dict:
    values = [res[f"{control} {x:+.1f}"][measure] for x in LEVELS]
    return {"levels": list(LEVELS), "values": values,
            "monotonic": all(b > a for a, b in zip(values, values[1:])),
            "range_ratio": values[-1] / values[0] if values[0] else float("inf")}


def live_costs(model, repeats: int) -> dict:
    """TTFN with the controls off / on (interleaved), regenerate and more-like-this latency."""
    from bench.live_bench import primed_session

    session, clock = primed_session(model, 4096, k=1)
    session.settings.prepare_ahead = False
    base = session.settings
    on = {"key": LIVE_ON.key, "register_low": LIVE_ON.register_low, "register_high": LIVE_ON.register_high,
          "density": LIVE_ON.density, "texture": LIVE_ON.texture}
    times: dict[str, list[float]] = {"off": [], "on": [], "regenerate from bar 2": [], "more like this": []}
    for i in range(repeats):
        for name, changes in (("off", {}), ("on", on)) if i % 2 else (("on", on), ("off", {})):
            session.settings = replace(base, seed=i, **changes)
            take = session.trigger(clock.now())
            if take.first_note_latency_s is not None:
                times[name].append(take.first_note_latency_s)
        session.settings = replace(base, seed=i, bars=4)
        take = session.trigger(clock.now())
        for name, again in (("regenerate from bar 2", lambda t: session.regenerate(t, 0, 2, clock.now())),
                            ("more like this", lambda t: session.more_like_this(t, now=clock.now()))):
            new = again(take)
            if new.first_note_latency_s is not None:
                times[name].append(new.first_note_latency_s)
    med = {k: statistics.median(v) * 1000 for k, v in times.items() if v}
    return {"ttfn_ms": med, "samples": {k: len(v) for k, v in times.items()},
            "controls_cost": med["on"] / med["off"] - 1.0, "context_tokens": 4096}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=None, help="corpus folders (their val splits)")
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--cases", type=int, default=64, help="cuts per source")
    ap.add_argument("--repeats", type=int, default=30, help="live timings per setting")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "steering_bench.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from copilot_app.engine.runtime_info import bundled_model
    from model import load_checkpoint

    path = a.model or str(bundled_model())
    model, _ = load_checkpoint(path)
    model.eval()
    sets, _skipped = eval_sets(corpus_dirs(a.data))
    res: dict = {"model": Path(path).name, "date": utc_stamp(), "cases_per_source": a.cases,
                 "sampling": {"temperature": DEFAULT_TEMPERATURE, "top_p": DEFAULT_TOP_P}, "sources": {}}
    for source, data in sets.items():
        r = answers(model, data, a.cases, a.seed)
        res["sources"][source] = {"settings": r, "density": sweep(r, "density", "notes_per_bar"),
                                  "texture": sweep(r, "texture", "notes_per_onset")}
    res["live"] = live_costs(model, a.repeats)
    return write_and_print(res, a.out, a.json, table)


def table(r: dict) -> str:
    lines = [f"steering ({r['model']}, {r['cases_per_source']} held-out cuts per source, 2 bars each)"]
    worst = max(m["wrong_length_bars"] for s in r["sources"].values() for m in s["settings"].values())
    lines.append(f"bars of the wrong length, worst setting: {worst:.3f}")
    for source, s in r["sources"].items():
        st = s["settings"]
        lines += [f"\n{source}", f"  {'setting':<26}{'allowed':>9}{'notes/bar':>11}{'notes/onset':>13}"
                  f"{'chord tones':>13}{'in key':>8}{'density':>9}{'pc sim':>8}"]
        for name, m in st.items():
            lines.append(f"  {name:<26}{m['allowed']:>9.3f}{m['notes_per_bar']:>11.2f}{m['notes_per_onset']:>13.2f}"
                         f"{m['chord_tone']:>13.3f}{m['in_key']:>8.3f}{m['density_ratio']:>9.3f}"
                         f"{m['pitch_class_similarity']:>8.3f}")
        for control, measure in (("density", "notes/bar"), ("texture", "notes/onset")):
            w = s[control]
            lines.append(f"  {control}: {measure} monotonic {'yes' if w['monotonic'] else 'no'}, "
                         f"+1 / -1 = {w['range_ratio']:.2f}x")
    live = r["live"]
    t = live["ttfn_ms"]
    lines += [f"\nlive, {live['context_tokens']} tokens heard, one thread (median ms to the first note):",
              f"  controls off {t['off']:.3f}, all on {t['on']:.3f} ({live['controls_cost']:+.1%}); "
              f"regenerate from bar 2 {t['regenerate from bar 2']:.3f}; more like this {t['more like this']:.3f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
