"""Does a long live session drift? (not a test)

A live session steps every token the player plays into one recurrent state,
for as long as the session lasts, while the model was trained on windows of
a few hundred tokens. This measures whether that long state gets worse at
predicting what comes next than a state re-primed from the recent past (the
remedy the engine would apply at bar lines).

Held-out pieces are played back to back as one stream. At checkpoints along
the stream, the NLL of the next ``--probe`` tokens is measured from
  carried:   the state that has seen the whole stream so far;
  re-primed: a fresh state that has seen only the last ``--window`` tokens
             (cut at a bar line, as a re-prime would be).
carried/re-primed > 1 means drift.

    python bench/context_drift.py --model resources/models/default.safetensors --data CORPUS

Writes bench/results/context_drift.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._report import corpus_dirs, utc_stamp, write_and_print  # noqa: E402
from model import load_checkpoint  # noqa: E402
from trainer.evaluate import eval_pieces  # noqa: E402
from trainer.vocab import vocab  # noqa: E402


@torch.no_grad()
def probe_nll(model, state, logits, probe: np.ndarray) -> float:
    """Mean NLL of ``probe`` continuing from (state, logits); state is not modified."""
    x = torch.from_numpy(probe.astype(np.int64))[None]
    # Logits at every probe position from the given state: the model's
    # parallel pass with a state (prefill keeps only the last position).
    hidden, _ = model._hidden(x[:, :-1], state.clone())
    all_logits = torch.cat([logits.reshape(1, -1), model._logits(hidden[0])], dim=0)
    return float(F.cross_entropy(all_logits.float(), x[0]).item())


@torch.no_grad()
def prime(model, tokens: np.ndarray):
    x = torch.from_numpy(tokens.astype(np.int64))[None]
    return model.prefill(x)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.safetensors"))
    p.add_argument("--data", nargs="+", default=None,
                   help="corpus folder (val split) or MIDI folder (default: the trainer's corpus folder)")
    p.add_argument("--checkpoints", nargs="+", type=int, default=[512, 2048, 8192, 16384, 32768])
    p.add_argument("--window", type=int, default=512, help="tokens a re-prime would keep")
    p.add_argument("--probe", type=int, default=256, help="tokens scored at each checkpoint")
    p.add_argument("--streams", type=int, default=3, help="independent streams (piece orders)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "context_drift.json"))
    args = p.parse_args(argv)
    args.data = corpus_dirs(args.data)
    torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(args.model)
    model.eval()
    pieces, _ = eval_pieces(args.data)
    seqs = [np.asarray(s) for s in pieces.sequences()]  # [BOS] ids [EOS] each
    bar = vocab().bar
    need = max(args.checkpoints) + args.probe
    rows: dict[int, list[tuple[float, float]]] = {c: [] for c in args.checkpoints}
    rng = np.random.default_rng(0)
    t0 = time.monotonic()
    for _ in range(args.streams):
        # A long session: pieces back to back, their BOS/EOS dropped (a player
        # does not announce a new piece), until the last checkpoint is covered.
        stream: list[np.ndarray] = []
        total = 0
        for k in rng.permutation(len(seqs)):
            body = seqs[k][1:-1]
            stream.append(body)
            total += len(body)
            if total >= need:
                break
        ids = np.concatenate(stream)
        state = model.init_state(1)
        logits = None
        pos = 0
        for c in sorted(args.checkpoints):
            if c + args.probe > len(ids):
                break
            logits, state = _advance(model, ids[pos:c], state, logits)
            pos = c
            carried = probe_nll(model, state, logits, ids[c: c + args.probe])
            start = c - args.window
            bars = np.flatnonzero(ids[start:c] == bar)
            start += int(bars[0]) if len(bars) else 0  # a re-prime starts on a bar line
            l2, s2 = prime(model, ids[start:c])
            fresh = probe_nll(model, s2, l2, ids[c: c + args.probe])
            rows[c].append((carried, fresh))
    table = []
    for c, vals in rows.items():
        if not vals:
            continue
        carried = float(np.mean([v[0] for v in vals]))
        fresh = float(np.mean([v[1] for v in vals]))
        table.append({"context_tokens": c, "carried_nll": carried, "reprimed_nll": fresh,
                      "ratio": carried / fresh, "streams": len(vals)})
    res = {"model": args.model, "window": args.window, "probe": args.probe, "streams": args.streams,
           "rows": table, "wall_s": round(time.monotonic() - t0, 1), "date": utc_stamp()}
    return write_and_print(res, args.out, args.json, format_table)


def format_table(res: dict) -> str:
    lines = [f"{'context tokens':>15}{'carried NLL':>13}{'re-primed NLL':>15}{'ratio':>8}"]
    for r in res["rows"]:
        lines.append(f"{r['context_tokens']:>15}{r['carried_nll']:>13.4f}{r['reprimed_nll']:>15.4f}{r['ratio']:>8.3f}")
    lines.append(f"(re-primed = a fresh state that saw only the last <= {res['window']} tokens, from a bar line; "
                 f"NLL of the next {res['probe']} tokens, nats/token, mean of {res['streams']} streams)")
    return "\n".join(lines)


@torch.no_grad()
def _advance(model, tokens: np.ndarray, state, logits):
    """Feed ``tokens`` into ``state`` in blocks (prefill == stepping token by token)."""
    for i in range(0, len(tokens), 1024):
        x = torch.from_numpy(tokens[i: i + 1024].astype(np.int64))[None]
        logits, state = model.prefill(x, state)
    return logits, state


if __name__ == "__main__":
    raise SystemExit(main())
