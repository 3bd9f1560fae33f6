"""The learning curve of a training run as a picture (not a test).

    python bench/learning_curve.py RUN.jsonl OUT.svg [--title TEXT] [--tokens-before N]

RUN.jsonl is what `train --progress json` printed: its "eval" event and the
"step" events that carry a val_loss give the validation NLL at each evaluated
step; the x axis is training tokens (steps x ``--tokens-per-step``) (``--tokens-before`` adds what a base model
had already seen). The SVG is written by hand (no plotting library needed),
atomically, and its points are also printed as a table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.atomic_io import atomic_write_bytes  # noqa: E402

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 360, 70, 20, 40, 50


def read_points(log: Path, tokens_per_step: int, tokens_before: int) -> list[tuple[int, float]]:
    points = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line some library printed
        # The first eval is its own event; later ones ride on the step events.
        if event.get("event") in ("eval", "step") and event.get("val_loss") is not None:
            points.append((tokens_before + int(event["step"]) * tokens_per_step, float(event["val_loss"])))
    return points


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def render_svg(points: list[tuple[int, float]], title: str) -> str:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys) * 0.95, max(ys) * 1.02

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="DejaVu Sans, sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for y in _ticks(y0, y1):
        out.append(f'<line x1="{PAD_L}" y1="{sy(y):.1f}" x2="{W - PAD_R}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for x in _ticks(x0, x1):
        out.append(f'<text x="{sx(x):.1f}" y="{H - PAD_B + 18}" text-anchor="middle">{x / 1e6:.1f}M</text>')
    out.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="black"/>')
    out.append(f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="black"/>')
    out.append(f'<text x="{(W + PAD_L) / 2}" y="{H - 12}" text-anchor="middle">training tokens</text>')
    out.append(f'<text x="16" y="{H / 2}" text-anchor="middle" transform="rotate(-90 16 {H / 2})">'
               'val NLL (nats/token)</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
    out.append(f'<path d="{path}" fill="none" stroke="#d9531e" stroke-width="2"/>')
    for x, y in points:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#d9531e"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--title", default="Validation NLL during training")
    p.add_argument("--tokens-per-step", type=int, default=8 * 512, help="batch x context of the run")
    p.add_argument("--tokens-before", type=int, default=0, help="tokens the base model had seen")
    args = p.parse_args(argv)
    points = read_points(args.log, args.tokens_per_step, args.tokens_before)
    if len(points) < 2:
        print(f"error: {args.log}: fewer than two eval events", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, render_svg(points, args.title).encode())
    print(f"{'training tokens':>16}{'val NLL':>10}")
    for x, y in points:
        print(f"{x:>16,}{y:>10.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
