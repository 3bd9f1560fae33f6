"""Do answers follow the player's dynamics? (not a test)

    python bench/dynamics_bench.py            # table + bench/results/dynamics.json
    python bench/dynamics_bench.py --json     # JSON on stdout
    python bench/dynamics_bench.py --quick    # 3 levels, the example phrases only

Phrases: the test pieces (tests/data/*.mid) and the example phrases
(resources/phrases/*.mid), each played at several loudness levels, from
pianissimo to fortissimo. A phrase keeps its own velocity shape where it has
one (the example phrases); a flat one (the score corpus exports one velocity)
gets a player's shape: downbeat and mid-bar accents and a swell from bar to
bar. Its velocities are then moved to the level's mean, shape kept.

Each (phrase, level) goes through the real live engine path: ``LiveSession``
with the bundled model opens the phrase (as File > Open does) and answers
2 bars; the answer notes carry the velocities the Player sends. The old
behaviour (one velocity, the phrase's median, for every note) is scored on
the same answers.

Figures:
- level r: Pearson correlation, over all (phrase, level) pairs, of the
  answer's mean velocity with the phrase's (does a soft phrase get a soft
  answer);
- accent r: Pearson correlation, over every answer note, of its deviation
  from its answer's mean with the phrase's mean deviation at the same
  eighth-note position of the bar (does the answer accent where the player did);
- spread: answer velocity standard deviation / the phrase's (1: as varied
  as the player, 0: flat);
- in range: share of answer notes within the phrase's quietest..loudest note.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import ROOT, utc_stamp, write_and_print  # noqa: E402

LEVELS = (40, 58, 76, 94, 112)     # target mean velocity: pp .. ff
QUICK_LEVELS = (45, 80, 110)
SLOT = 12                          # eighth notes at 24 ticks a quarter (checked below)


class NullPort:
    def send(self, msg) -> None:
        pass


def pearson(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 3:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def shaped(phrase, level: int, bar_ticks: int):
    """The phrase's notes at mean velocity ``level``, its own shape kept (or a player's shape given)."""
    from model.tokens.performance import GridNote

    vs = [n.velocity for n in phrase.notes]
    if len(set(vs)) > 2:
        base = statistics.fmean(vs)
        shape = [v - base for v in vs]
    else:  # flat: a pianist's accents (1 and mid-bar) and a swell over the bars
        shape = []
        for n in phrase.notes:
            pos, bar = n.start % bar_ticks, n.start // bar_ticks
            accent = 12 if pos == 0 else (5 if pos * 2 == bar_ticks else (-6 if pos % SLOT else 0))
            shape.append(accent + (-6, 0, 6, 2)[bar % 4])
        mean = statistics.fmean(shape)
        shape = [s - mean for s in shape]
    scale = min(1.0, (level - 8) / 30.0)  # soft playing has a narrower range, as on a piano
    notes = tuple(GridNote(n.start, n.duration, n.pitch, max(1, min(127, round(level + s * scale))))
                  for n, s in zip(phrase.notes, shape))
    return replace(phrase, notes=notes, velocity=int(statistics.median(n.velocity for n in notes)))


def run(args: argparse.Namespace) -> dict:
    import torch

    from copilot_app.engine.clock import FakeClock, InternalGrid
    from copilot_app.engine.dynamics import flat_velocity
    from copilot_app.engine.model_loader import load_model
    from copilot_app.engine.phrase_file import read_phrase
    from copilot_app.engine.player import Player
    from copilot_app.engine.session import LiveSession, SessionSettings
    from model.tokens.config import TICKS_PER_QUARTER

    assert TICKS_PER_QUARTER // 2 == SLOT
    torch.set_num_threads(1)
    model, _meta, model_path = load_model(args.model, "cpu")
    files = sorted((ROOT / "resources" / "phrases").glob("*.mid"))
    if not args.quick:
        files += sorted((ROOT / "tests" / "data").glob("*.mid"))
    levels = QUICK_LEVELS if args.quick else LEVELS
    rows, level_pairs = [], {"follow": ([], []), "flat": ([], [])}
    accent_pairs = {"follow": ([], []), "flat": ([], [])}
    spreads, in_range = {"follow": [], "flat": []}, {"follow": [], "flat": []}
    t0 = time.process_time()
    for path in files:
        original = read_phrase(path)
        meter = original.meter
        bar_ticks = int(round(meter.numerator * meter.quarters_per_beat() * TICKS_PER_QUARTER))
        for level in levels:
            phrase = shaped(original, level, bar_ticks)
            clock = FakeClock()
            session = LiveSession(model, Player(NullPort(), clock), InternalGrid(phrase.tempo_bpm, meter, origin=0.0),
                                  clock, SessionSettings(seed=args.seed, bars=2, prepare_ahead=False))
            clock.set(100.0)
            session.open_phrase(phrase)
            take = session.trigger()
            notes = take.notes(0)
            if len(notes) < 2:
                continue
            played = [(n.start, n.velocity) for n in session.library.phrase.notes]
            pv = [v for _, v in played]
            # the phrase's accent profile: mean deviation from its bar's mean at each eighth position
            by_bar: dict[int, list[tuple[int, int]]] = {}
            for t, v in played:
                by_bar.setdefault(t // bar_ticks, []).append((t, v))
            slot_dev: dict[int, list[float]] = {}
            for bar_notes in by_bar.values():
                m = statistics.fmean(v for _, v in bar_notes)
                for t, v in bar_notes:
                    slot_dev.setdefault((t % bar_ticks) // SLOT, []).append(v - m)
            profile = {s: statistics.fmean(d) for s, d in slot_dev.items()}
            answers = {"follow": [n.velocity for n in notes], "flat": [flat_velocity(played)] * len(notes)}
            for method, av in answers.items():
                level_pairs[method][0].append(statistics.fmean(pv))
                level_pairs[method][1].append(statistics.fmean(av))
                am = statistics.fmean(av)
                for n, v in zip(notes, av):
                    slot = (n.start % bar_ticks) // SLOT
                    if slot in profile:
                        accent_pairs[method][0].append(profile[slot])
                        accent_pairs[method][1].append(v - am)
                sd_p = statistics.pstdev(pv)
                spreads[method].append(statistics.pstdev(av) / sd_p if sd_p > 0 else 0.0)
                in_range[method].append(sum(min(pv) <= v <= max(pv) for v in av) / len(av))
            rows.append({"phrase": path.name, "meter": f"{meter.numerator}/{meter.denominator}", "level": level,
                         "phrase_mean": round(statistics.fmean(pv), 1), "phrase_min": min(pv),
                         "phrase_max": max(pv), "answer_notes": len(notes),
                         "answer_mean": round(statistics.fmean(answers["follow"]), 1),
                         "answer_min": min(answers["follow"]), "answer_max": max(answers["follow"]),
                         "flat_velocity": answers["flat"][0]})
    summary = {}
    for method in ("follow", "flat"):
        summary[method] = {
            "level_r": round(pearson(*level_pairs[method]), 3),
            "accent_r": round(pearson(*accent_pairs[method]), 3),
            "spread": round(statistics.fmean(spreads[method]), 3),
            "in_range": round(statistics.fmean(in_range[method]), 3),
        }
    return {"bench": "dynamics", "when": utc_stamp(), "model": str(Path(model_path).name),
            "phrases": len(files), "levels": list(levels), "answers": len(rows), "seed": args.seed,
            "cpu_s": round(time.process_time() - t0, 1), "summary": summary, "rows": rows}


def table(res: dict) -> str:
    lines = [f"Answer dynamics vs the phrase's, {res['answers']} answers ({res['phrases']} phrases x levels "
             f"{res['levels']}), model {res['model']}, {res['cpu_s']} CPU s",
             "",
             f"{'method':<28}{'level r':>9}{'accent r':>10}{'spread':>8}{'in range':>10}"]
    names = {"follow": "follow the player (new)", "flat": "phrase median, flat (old)"}
    for method, s in res["summary"].items():
        accent = "–" if math.isnan(s["accent_r"]) else f"{s['accent_r']:.2f}"
        lines.append(f"{names[method]:<28}{s['level_r']:>9.3f}{accent:>10}{s['spread']:>8.2f}{s['in_range']:>10.0%}")
    lines += ["", f"{'phrase':<28}{'meter':>6}{'level':>6}{'phrase min/mean/max':>21}{'answer min/mean/max':>21}"
                  f"{'old':>5}"]
    for r in res["rows"]:
        lines.append(f"{r['phrase'][:27]:<28}{r['meter']:>6}{r['level']:>6}"
                     f"{r['phrase_min']:>8}/{r['phrase_mean']:>5.0f}/{r['phrase_max']:<5}"
                     f"{r['answer_min']:>9}/{r['answer_mean']:>5.0f}/{r['answer_max']:<5}{r['flat_velocity']:>5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: the bundled model)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "dynamics.json"))
    args = parser.parse_args(argv)
    return write_and_print(run(args), args.out, args.json, table)


if __name__ == "__main__":
    sys.exit(main())
