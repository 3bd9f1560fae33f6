"""`train --style`: learn a style (an initial recurrent state) with every weight frozen.

State tuning (as in RWKV-LM's state tuning and the MIDI-RWKV paper, arXiv
2506.13001): the base model's weights stay exactly as they are; what is
learned is the state each training window starts from, per layer the WKV
matrix state and the two token-shift vectors (model/style.py). Only those
~76k numbers get gradients, so a handful of pieces can shape them without the
base forgetting what it knows, and the result is a ~300 KB file rather than
a 12.6 MB model.

The data, windows, batches, transpositions, schedule, time budget, periodic
evaluation on held-out pieces and early stopping are the fine-tune's own
(trainer.cli.choose_defaults with a base, trainer.loop.Trainer): the only
differences are which tensors learn, their learning rate, the default time
budget, and what is saved: ``OUT/style.safetensors`` (+ its sidecar) holds the
best state by validation NLL, and ``OUT/train_summary.json`` the run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from model.state import RWKVState
from model.style import STYLE_FILE, Style, model_fingerprint, save_style
from trainer.datasets import Windows
from trainer.defaults import STYLE_BUDGET_MIN
from trainer.loop import TrainConfig, Trainer
from trainer.progress import Progress

# Adam moves each state entry by about the learning rate per step, and the
# state of a primed context has entries of order 1, so the rate is of the
# order RWKV-LM's state tuning uses (1.0), far above a weight fine-tune's.
# Measured on 10 palestrina pieces, 30 s of one thread, val NLL of 20
# held-out pieces (1.702 before): lr 5e-3 1.678, 2e-2 1.647, 8e-2 1.586,
# 0.2 1.523, 0.5 1.481, 1.0 1.438, 2.0 1.409. 1.0 keeps most of the gain
# without the largest steps (the best state by validation is kept anyway).
STYLE_LR = 1.0
# The objective stays the fine-tune's (--objective, default lm windows): on the
# same 10 pieces and minute, mixing in 4+2-bar completion windows scored the
# held-out 2-bar answers the same (1.216 against 1.221 nats/token) and
# completion windows alone worse (1.268).


class StateTuned(nn.Module):
    """A frozen base model whose only parameters are its initial state.

    ``forward(tokens, target_index)`` is the base's, started from the learned
    state (expanded over the batch), so the trainer's loss and evaluation run
    unchanged on it.
    """

    def __init__(self, base: nn.Module, start: Style | None = None) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        s = start.initial_state(1, base.device, base.dtype) if start is not None else base.init_state(1)
        self.att_x = nn.Parameter(s.att_x.clone())  # [L, 1, C]
        self.wkv = nn.Parameter(s.wkv.clone())      # [L, 1, H, N, N]
        self.ffn_x = nn.Parameter(s.ffn_x.clone())  # [L, 1, C]
        self.cfg = base.cfg

    def state(self, batch: int = 1) -> RWKVState:
        """The learned state for ``batch`` rows (a view: gradients reach the parameters)."""
        return RWKVState(self.att_x.expand(-1, batch, -1), self.wkv.expand(-1, batch, -1, -1, -1),
                         self.ffn_x.expand(-1, batch, -1))

    def forward(self, tokens: torch.Tensor, target_index: torch.Tensor | None = None) -> torch.Tensor:
        return self.base(tokens, target_index, state=self.state(tokens.shape[0]))

    def state_parameters(self) -> list[nn.Parameter]:
        return [self.att_x, self.wkv, self.ffn_x]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.state_parameters())

    def param_groups(self, weight_decay: float) -> list[dict]:
        # No decay: pulling the state towards zero would pull it back to the base.
        return [{"params": self.state_parameters(), "weight_decay": 0.0, "lr_scale": 1.0}]


class StyleTrainer(Trainer):
    """The fine-tune's loop on a ``StateTuned`` model; saves the best state as a
    style file and nothing else (no weights, no resume point)."""

    def __init__(self, tuned: StateTuned, train_win: Windows, val_win: Windows, cfg: TrainConfig, out: Path,
                 device: torch.device, progress: Progress, *, base_fingerprint: str, base_config: dict,
                 data_summary: dict) -> None:
        super().__init__(tuned, train_win, val_win, cfg, out, device, progress)
        self.tuned = tuned
        self.base_fingerprint, self.base_config = base_fingerprint, base_config
        self.data_summary = data_summary

    def _save(self, name: str, val: float | None) -> None:
        if name != "best" or self.out is None:
            return
        t = self.tuned
        style = Style(t.att_x[:, 0].detach().cpu().clone(), t.wkv[:, 0].detach().cpu().clone(),
                      t.ffn_x[:, 0].detach().cpu().clone(), self.base_fingerprint, self.base_config,
                      self.out.name)
        save_style(self.out / STYLE_FILE, style, data=self.data_summary,
                   metrics={"val_nll": val, "step": self.step, "val_nll_before": self.first_val})

    def _save_last(self, val: float | None) -> None:
        pass  # a style run is a minute: it is rerun, not resumed


def run_style(args: argparse.Namespace, device: torch.device, progress: Progress, out: Path,
              t_start: float) -> int:
    """`train --style`: the best state by held-out NLL into ``out/style.safetensors``."""
    from trainer.cli import _load_base, _say, choose_defaults, report_skipped
    from trainer.datasets import build_windows, load_data, lm_windows

    if not args.base:
        raise ValueError("--style needs --base PATH: the model the style is learned for")
    if args.resume:
        raise ValueError("--style runs are not resumed; start it again (it takes about a minute)")
    data = load_data(args.data, args.val_fraction, args.seed, args.exclude_source)
    report_skipped(progress, data)
    d = choose_defaults(True, data.train.tokens, args.ctx_len, args.batch_size)
    torch.manual_seed(args.seed)
    base, _side = _load_base(args.base, device)
    base_config = base.cfg.to_dict()  # as the model runs it, before the training window is set
    base.cfg.ctx_len = d.ctx_len
    fingerprint = model_fingerprint(base)
    tuned = StateTuned(base)
    budget = args.time_budget if args.time_budget is not None else STYLE_BUDGET_MIN
    cfg = TrainConfig(
        steps=args.steps or d.steps, batch_size=d.batch_size, micro_batch=args.micro_batch or 0,
        lr=args.lr or STYLE_LR, warmup=args.warmup if args.warmup is not None else d.warmup,
        eval_every=args.eval_every or d.eval_every,
        eval_windows=d.eval_windows if args.eval_windows is None else args.eval_windows,
        eval_at_start=True, patience=args.patience if args.patience is not None else d.patience,
        time_budget_s=budget * 60, max_transpose=args.max_transpose, seed=args.seed,
        weight_decay=0.0, save_every=0,
    )
    if d.ctx_len % base.cfg.chunk_len:
        raise ValueError(f"--ctx-len {d.ctx_len} must be a multiple of the WKV chunk length {base.cfg.chunk_len}")
    train_win = build_windows(data.train.sequences(), args.objective, d.ctx_len)
    val_win = lm_windows(data.val.sequences(), d.ctx_len)
    trainer = StyleTrainer(tuned, train_win, val_win, cfg, out, device, progress, base_fingerprint=fingerprint,
                           base_config=base_config,
                           data_summary=data.summary() | {"objective": args.objective, "base": str(args.base)})
    _say(progress, f"learning a style for {args.base}: {tuned.num_params():,} state numbers "
                   f"(weights frozen), {len(data.train)} train / {len(data.val)} val pieces, "
                   f"{len(train_win)} windows of <= {d.ctx_len} tokens, up to {cfg.steps} steps of "
                   f"{cfg.batch_size}, {budget:g} min", params=tuned.num_params(),
         train_pieces=len(data.train), val_pieces=len(data.val), steps=cfg.steps)
    result = trainer.run()
    style_path = out / STYLE_FILE
    summary = {
        "out": str(out), "style": str(style_path), "steps": result.step, "stopped": result.stopped,
        "params": tuned.num_params(), "style_bytes": style_path.stat().st_size if style_path.exists() else None,
        "val_nll_before": result.first_val, "val_nll_after": result.last_val,
        "best_val_nll": result.best_val, "wall_s": round(time.monotonic() - t_start, 1),
        "train_wall_s": round(result.wall_s, 1), "data": trainer.data_summary, "skipped": data.skipped,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if progress.mode == "json":
        progress.event("done", **{k: v for k, v in summary.items() if k != "skipped"})
    else:
        print(f"val NLL before: {result.first_val:.4f} nats/token")
        print(f"val NLL with the style: {result.best_val:.4f} (last {result.last_val:.4f}, "
              f"step {result.step}, {result.stopped})")
        print(f"style: {style_path} ({summary['style_bytes']} bytes)", file=sys.stdout)
    return 0
