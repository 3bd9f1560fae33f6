"""`train` and `eval` commands (``python -m trainer`` and ``python main.py``).

User mistakes raise ValueError/OSError with one line; the dispatcher prints it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.device import resolve_device
from trainer import ddp
from trainer.cpu_memory import keep_freed_memory
from trainer.defaults import FINE_TUNE_BUDGET_MIN
from trainer.datasets import Data, build_windows, load_data, lm_windows
from trainer.loop import TrainConfig, Trainer
from trainer.progress import Progress
from trainer.vocab import vocab



@dataclass
class Defaults:
    """Settings not given on the command line, by kind of run."""

    ctx_len: int
    batch_size: int
    lr: float
    warmup: int
    steps: int
    eval_every: int
    patience: int
    time_budget_min: float
    eval_windows: int


def choose_defaults(fine_tune: bool, train_tokens: int, ctx_len: int | None, batch: int | None) -> Defaults:
    if fine_tune:
        # Few pieces: short windows, small batches, a gentle learning rate, a
        # few epochs, early stopping on held-out pieces and a time budget.
        T, B = ctx_len or 256, batch or 8
        epoch_steps = max(1, math.ceil(train_tokens / (T * B)))
        # Enough steps that the time budget or early stopping on the held-out
        # pieces ends the run, not the step count: on 10 folk tunes a base
        # that never saw folk was still improving after 30 steps (12.5% lower
        # NLL in 46 CPU s; bench/finetune_style.py).
        steps = int(min(400, max(100, 20 * epoch_steps)))
        # lr 2e-4: where the pre-training cosine ends (2e-3 x 0.1); much higher
        # knocks the base model off what it knows before the pieces teach anything.
        return Defaults(T, B, 2e-4, min(20, steps // 10), steps, max(5, steps // 12), 3,
                        FINE_TUNE_BUDGET_MIN, 0)
    T, B = ctx_len or 512, batch or 16
    epoch_steps = max(1, math.ceil(train_tokens / (T * B)))
    steps = int(min(20000, max(100, 2 * epoch_steps)))
    return Defaults(T, B, 2e-3, min(100, steps // 20), steps, max(25, steps // 20), 0, 0.0, 64)


def default_threads() -> int:
    """All cores but one: the live engine (one thread) keeps a core while a
    fine-tune runs, and on a busy 2-core machine one training thread measured
    several times faster than two fighting over the cores."""
    return max(1, (os.cpu_count() or 2) - 1)


def _say(progress: Progress, text: str, **fields: Any) -> None:
    """Human line on stderr, or an info event for the app."""
    if ddp.rank() != 0:
        return
    if progress.mode == "json":
        progress.event("info", message=text, **fields)
    else:
        print(text, file=sys.stderr)


def report_skipped(progress: Progress, data: Data) -> None:
    """Name the user's bad files; a corpus's own skips are only counted (see its report.json)."""
    if data.corpus_skipped:
        _say(progress, f"{data.corpus_skipped} unit(s) were skipped when the corpus was built "
                       "(see its report.json)", corpus_skipped=data.corpus_skipped)
    if not data.skipped:
        return
    # Each file with its reason, in the message itself (the app's fine-tune log
    # shows messages), at most 50 of them; the event carries them all.
    limit = 50
    shown = [f"  {line}" for line in data.skipped[:limit]]
    if len(data.skipped) > limit:
        shown.append(f"  … and {len(data.skipped) - limit} more")
    _say(progress, "\n".join([f"skipped {len(data.skipped)} file(s) that could not be used:", *shown]),
         skipped=data.skipped)


def _load_base(path: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    from model import load_checkpoint
    from model.tokens.config import check_compatible

    model, side = load_checkpoint(path, device)
    check_compatible(side.get("tokenizer"))
    return model.float(), side


def run_train(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    torch.set_num_threads(args.threads or default_threads())
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ddp.init(device)
    progress = Progress(args.progress, enabled=ddp.rank() == 0)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    try:
        if getattr(args, "style", False):
            from trainer.style_tuning import run_style

            return run_style(args, device, progress, out, t_start)
        return _train(args, device, progress, out, t_start)
    finally:
        ddp.shutdown()


def _train(args: argparse.Namespace, device: torch.device, progress: Progress, out: Path,
           t_start: float) -> int:
    from trainer.models import build_model
    from trainer.resume import read_resume

    data = load_data(args.data, args.val_fraction, args.seed, args.exclude_source)
    report_skipped(progress, data)
    fine_tune = bool(args.base)
    d = choose_defaults(fine_tune, data.train.tokens, args.ctx_len, args.batch_size)
    torch.manual_seed(args.seed)
    meta = read_resume(out)[1] if args.resume else None
    base_side: dict | None = None
    if meta is not None:
        cfg = TrainConfig(**meta["train"])
        # What a resume may change: the time budget, and the step count, which
        # reshapes the rest of the cosine (a long run cut short still anneals).
        if args.time_budget is not None:
            cfg.time_budget_s = args.time_budget * 60
        if args.steps is not None:
            if args.steps <= int(meta["step"]):
                raise ValueError(f"--steps {args.steps}: the run is already at step {meta['step']}")
            cfg.steps = args.steps
        model = _model_from_meta(meta["model"])
        ctx_len = meta["model"]["ctx_len"]
    else:
        if fine_tune:
            model, base_side = _load_base(args.base, device)
            model.cfg.ctx_len = d.ctx_len
        else:
            model = build_model(args.arch, vocab().size, args.n_layer, args.n_embd, d.ctx_len, args.dropout)
        ctx_len = d.ctx_len
        budget = args.time_budget if args.time_budget is not None else d.time_budget_min
        cfg = TrainConfig(
            steps=args.steps or d.steps, batch_size=d.batch_size, micro_batch=args.micro_batch or 0,
            lr=args.lr or d.lr, warmup=args.warmup if args.warmup is not None else d.warmup,
            eval_every=args.eval_every or d.eval_every,
            eval_windows=d.eval_windows if args.eval_windows is None else args.eval_windows,
            eval_at_start=fine_tune, patience=args.patience if args.patience is not None else d.patience,
            time_budget_s=budget * 60, max_transpose=args.max_transpose, seed=args.seed,
            grad_checkpoint=args.grad_checkpoint, weight_decay=args.weight_decay,
            save_every=args.save_every or 0,
        )
    chunk = getattr(model.cfg, "chunk_len", 1)
    if ctx_len % chunk:
        raise ValueError(f"--ctx-len {ctx_len} must be a multiple of the WKV chunk length {chunk}")
    objective = meta["data"]["objective"] if meta else args.objective
    train_win = build_windows(data.train.sequences(), objective, ctx_len)
    val_win = lm_windows(data.val.sequences(), ctx_len)
    n_params = model.num_params()
    model_config = model.cfg.to_dict()
    info = {
        "data": data.summary() | {"objective": objective},
        "extra": {"base": str(args.base) if args.base else None,
                  "base_data": (base_side or {}).get("data")},
    }
    if meta is not None and meta.get("extra"):
        info["extra"] = meta["extra"]  # a resumed fine-tune still names the model it started from
    trainer = Trainer(model, train_win, val_win, cfg, out, device, progress, info, model_config)
    if meta is not None:
        trainer.load_resume()
        _say(progress, f"resuming {out} at step {trainer.step}/{cfg.steps}", step=trainer.step)
    _say(progress, f"{'fine-tuning ' + str(args.base) if fine_tune else 'training'}: "
                   f"{n_params / 1e6:.2f}M parameters, {len(data.train)} train / {len(data.val)} val pieces, "
                   f"{len(train_win)} windows of <= {ctx_len} tokens, {cfg.steps} steps of {cfg.batch_size}",
         params=n_params, train_pieces=len(data.train), val_pieces=len(data.val), steps=cfg.steps)
    result = trainer.run()
    summary = {
        "out": str(out), "best": str(out / "best.safetensors"), "last": str(out / "last.safetensors"),
        "steps": result.step, "stopped": result.stopped, "params": n_params,
        "val_nll_before": result.first_val, "val_nll_after": result.last_val,
        "best_val_nll": result.best_val, "wall_s": round(time.monotonic() - t_start, 1),
        "train_wall_s": round(result.wall_s, 1), "data": info["data"], "skipped": data.skipped,
    }
    if ddp.rank() == 0:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if progress.mode == "json":
            progress.event("done", **{k: v for k, v in summary.items() if k != "skipped"})
        else:
            if result.first_val is not None:
                print(f"val NLL before: {result.first_val:.4f} nats/token")
            print(f"val NLL after:  {result.last_val:.4f} nats/token (best {result.best_val:.4f}, "
                  f"step {result.step}, {result.stopped})")
            print(f"best checkpoint: {out / 'best.safetensors'}")
    return 0


def _model_from_meta(model_cfg: dict) -> torch.nn.Module:
    from model import RWKV7, RWKVConfig
    from trainer.baselines import LSTMConfig, LSTMLM, TransformerConfig, TransformerLM

    cfg = dict(model_cfg)
    arch = cfg.pop("arch", "rwkv")
    if arch == "lstm":
        return LSTMLM(LSTMConfig(**cfg))
    if arch == "transformer":
        return TransformerLM(TransformerConfig(**cfg))
    return RWKV7(RWKVConfig.from_dict(cfg))


def run_eval(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate_model, format_table

    torch.set_num_threads(args.threads or default_threads())
    device = resolve_device(args.device)
    results = evaluate_model(args.model, args.data, device, samples=args.samples, seed=args.seed,
                             max_pieces=args.max_pieces)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for skipped in results.get("skipped", [])[:20]:
            print(f"skipped: {skipped}", file=sys.stderr)
        print(format_table(results))
    return 0
