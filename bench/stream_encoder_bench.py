"""Cost per note of the live streaming encoder as a session grows (not a test).

    python bench/stream_encoder_bench.py [--json]

A long live session (or `tokenize --stream` on a long file) must cost the same
per note at the end as at the start. Replays synthetic performances of 2,000
to 32,000 notes through ``StreamingEncoder``, once in one meter and once with
a meter change every 4 notes (the case that used to grow: every lookup
scanned all meter sections), and prints microseconds per note at each length;
the ratio of the longest to the shortest is the figure to watch (1.0 = flat).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._report import utc_stamp, write_and_print  # noqa: E402
from model.tokens.performance import METER, NOTE_OFF, NOTE_ON, PerfEvent  # noqa: E402
from model.tokens.streaming import StreamingEncoder  # noqa: E402

LENGTHS = (2000, 8000, 32000)
_ORDER = {NOTE_OFF: 0, METER: 2, NOTE_ON: 3}


def performance(n: int, meter_every: int | None) -> list[PerfEvent]:
    rng = random.Random(0)
    events, t = [PerfEvent(0.0, METER, 4, 4)], 0.0
    for i in range(n):
        if meter_every and i % meter_every == 0:
            events.append(PerfEvent(t, METER, rng.choice([3, 4, 5]), 4))
        t += rng.choice([0.125, 0.25, 0.5])
        pitch = rng.randint(40, 90)
        events += [PerfEvent(t, NOTE_ON, pitch, 80), PerfEvent(t + rng.uniform(0.1, 1.0), NOTE_OFF, pitch)]
    events.sort(key=lambda e: (e.time, _ORDER[e.kind]))
    return events


def us_per_note(events: list[PerfEvent], n: int) -> float:
    enc = StreamingEncoder()
    t0 = time.perf_counter()
    for ev in events:
        enc.feed(ev)
    enc.flush(events[-1].time + 10)
    return (time.perf_counter() - t0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "stream_encoder.json"))
    args = p.parse_args(argv)
    rows = []
    for label, every in (("one meter", None), ("meter change every 4 notes", 4)):
        cost = {n: us_per_note(performance(n, every), n) for n in LENGTHS}
        rows.append({"case": label, "us_per_note": cost, "growth": cost[LENGTHS[-1]] / cost[LENGTHS[0]]})
    res = {"rows": rows, "date": utc_stamp()}

    def table(r: dict) -> str:
        head = f"{'case':<30}" + "".join(f"{n:>10,}" for n in LENGTHS) + f"{'growth':>9}"
        lines = [head + "   (us per note at N notes)"]
        for row in r["rows"]:
            lines.append(f"{row['case']:<30}" + "".join(f"{row['us_per_note'][n]:>10.1f}" for n in LENGTHS)
                         + f"{row['growth']:>9.2f}")
        return "\n".join(lines)
    return write_and_print(res, args.out, args.json, table)


if __name__ == "__main__":
    raise SystemExit(main())
