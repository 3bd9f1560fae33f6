"""The training loop: AdamW, warmup + cosine, clipping, periodic eval,
best/last checkpoints, exact resume, early stopping, DDP.

Loss normalisation: every step's loss is (sum of token cross-entropies) /
(target tokens in the whole global batch). Each DDP rank builds the same
global batch (batches are a pure function of the step), keeps its rows, and
scales its partial sum so that DDP's gradient average equals the gradient of
the global mean. That is why 2 processes match 1 process with the doubled
batch, and why micro-batching does not change the result.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer import ddp
from trainer.datasets import IGNORE, BatchSchedule, Windows, make_batch
from trainer.models import save_model
from trainer.progress import Progress
from trainer.resume import RESUME_FILE, read_resume, restore, save_resume
from trainer.schedule import lr_at


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16  # global windows per optimizer step (all ranks together)
    micro_batch: int = 0  # rows per forward/backward; 0 = the rank's whole batch
    lr: float = 2e-3  # peak; RWKV-LM uses ~1e-3..6e-4 for small models
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of the peak
    warmup: int = 50
    weight_decay: float = 0.1  # matrices only (the model's param_groups)
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_windows: int = 64  # validation windows per periodic eval; 0 = all
    eval_batch: int = 8
    eval_at_start: bool = False  # fine-tunes report the base model's val NLL first
    save_every: int = 0  # steps between last/resume saves; 0 = at every eval
    patience: int = 0  # evals without improvement before stopping; 0 = never
    min_delta: float = 1e-3  # improvement (nats/token) that resets the patience
    time_budget_s: float = 0.0  # 0 = none
    max_transpose: int = 6  # semitones either way, kept within the piano range
    seed: int = 0
    grad_checkpoint: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    step: int
    best_val: float
    last_val: float
    first_val: float | None  # the base model's val loss (fine-tunes only)
    stopped: str  # "steps" | "early-stop" | "time-budget"
    wall_s: float  # training seconds, every leg of a resumed run
    history: list[dict]


def enable_grad_checkpointing(model: nn.Module) -> None:
    """Recompute each RWKV block's time and channel mix in the backward pass.

    Wraps the sub-modules' forward in place (RWKV7 calls them directly), which
    trades ~30 % more compute for activations of one block at a time.
    """
    from torch.utils.checkpoint import checkpoint

    for blk in getattr(model, "blocks", []):
        for name in ("att", "ffn"):
            sub = getattr(blk, name, None)
            if sub is None:
                continue
            fwd = sub.forward
            sub.forward = lambda *a, _f=fwd: checkpoint(_f, *a, use_reentrant=False)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [g for g in model.param_groups(cfg.weight_decay) if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8,
                             foreach=True)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def autocast_for(device: torch.device):
    # bf16 on CUDA (no loss scaling needed); CPU trains in fp32.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _loss_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> torch.Tensor:
    x, y = x.to(device), y.to(device)
    mask = y != IGNORE
    with autocast_for(device):
        logits = model(x, target_index=mask)  # head only where the loss is taken
    return F.cross_entropy(logits.float(), y[mask], reduction="sum")


@torch.no_grad()
def evaluate_loss(model: nn.Module, win: Windows, device: torch.device, limit: int = 0,
                  batch: int = 8) -> float:
    """Mean val cross-entropy (nats/token) over ``limit`` evenly spread windows (0 = all)."""
    n = len(win)
    if n == 0:
        return float("nan")
    idx = np.arange(n) if not limit or limit >= n else np.linspace(0, n - 1, limit).round().astype(int)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    # Similar lengths together: less padding.
    idx = idx[np.argsort(win.end[idx] - win.start[idx], kind="stable")]
    for i in range(0, len(idx), batch):
        x, y = make_batch(win, idx[i:i + batch])
        total += float(_loss_sum(model, x, y, device))
        count += int((y != IGNORE).sum())
    model.train(was_training)
    return total / max(count, 1)


class Trainer:
    def __init__(self, model: nn.Module, train_win: Windows, val_win: Windows, cfg: TrainConfig,
                 out: Path | None, device: torch.device, progress: Progress,
                 save_info: dict | None = None, model_config: dict | None = None) -> None:
        self.cfg, self.out, self.device, self.progress = cfg, out, device, progress
        self.save_info = save_info or {}
        self.model_config = model_config or {}
        self.raw = model.to(device)
        self.rank, self.world = ddp.rank(), ddp.world_size()
        if cfg.batch_size % self.world:
            raise ValueError(f"--batch-size {cfg.batch_size} is not a multiple of {self.world} processes")
        if cfg.grad_checkpoint:
            enable_grad_checkpointing(self.raw)
        self.model = ddp.wrap(self.raw, device)
        self.opt = make_optimizer(self.raw, cfg)
        self.sched = BatchSchedule(train_win, cfg.batch_size, cfg.seed, cfg.max_transpose)
        self.val_win = val_win
        self.step = 0
        self.best_val = math.inf
        self.first_val: float | None = None
        self.bad_evals = 0
        self.history: list[dict] = []
        self.wall_before = 0.0  # training seconds of the legs before a resume
        self._t0: float | None = None

    # -- resume -----------------------------------------------------------------------
    def load_resume(self) -> None:
        assert self.out is not None
        tensors, meta, groups = read_resume(self.out)
        restore(self.raw, self.opt, tensors, groups)
        self.step, self.best_val, self.bad_evals = meta["step"], meta["best_val"], meta["bad_evals"]
        self.first_val = meta.get("first_val")
        self.history = meta.get("history", [])
        self.wall_before = float(meta.get("train_wall_s", 0.0))

    def _meta(self) -> dict[str, Any]:
        return {"step": self.step, "best_val": self.best_val, "bad_evals": self.bad_evals,
                "first_val": self.first_val, "train": self.cfg.to_dict(),
                "model": self.model_config, "history": self.history[-200:],
                # Training time over every leg so far, and where the run came from
                # (base model), so a resumed run's checkpoints and summary keep both.
                "train_wall_s": self.wall_before + (time.monotonic() - self._t0 if self._t0 is not None else 0.0),
                **{k: v for k, v in self.save_info.items() if k in ("data", "extra")}}

    def _save(self, name: str, val: float | None) -> None:
        if self.out is None or self.rank != 0:
            return
        metrics = {"val_nll": val, "step": self.step, "best_val_nll": self.best_val}
        save_model(self.out / f"{name}.safetensors", self.raw, data=self.save_info.get("data"),
                   metrics=metrics, extra={"train": self.cfg.to_dict(), **self.save_info.get("extra", {})})

    def _save_last(self, val: float | None) -> None:
        if self.out is None or self.rank != 0:
            return
        # Resume point first: "last" is a convenience copy for the app.
        save_resume(self.out, self.raw, self.opt, self._meta())
        self._save("last", val)
        self.progress.event("checkpoint", step=self.step, path=str(self.out / RESUME_FILE))

    # -- one step ---------------------------------------------------------------------
    def train_step(self) -> tuple[float, int]:
        """One optimizer step; returns (global mean loss, target tokens)."""
        cfg = self.cfg
        set_lr(self.opt, lr_at(self.step, cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio))
        x, y = self.sched.batch(self.step)
        count = int((y != IGNORE).sum())  # of the global batch: same on every rank
        x, y = x[self.rank::self.world], y[self.rank::self.world]
        micro = cfg.micro_batch or len(x)
        chunks = list(range(0, len(x), micro))
        self.opt.zero_grad(set_to_none=True)
        local = 0.0
        for n, i in enumerate(chunks):
            sync = n == len(chunks) - 1
            with ddp.maybe_no_sync(self.model, sync):
                loss = _loss_sum(self.model, x[i:i + micro], y[i:i + micro], self.device)
                (loss * (self.world / max(count, 1))).backward()
            local += float(loss.detach())
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return ddp.all_sum(local) / max(count, 1), count

    def evaluate(self) -> float:
        return evaluate_loss(self.raw, self.val_win, self.device, self.cfg.eval_windows, self.cfg.eval_batch)

    # -- the run ----------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        t0 = self._t0 = time.monotonic()
        start_step, stopped = self.step, "steps"
        last_val: float | None = None
        if self.step == 0 and cfg.eval_at_start:
            last_val = self.first_val = self.best_val = self.evaluate()
            self.progress.event("eval", step=0, val_loss=last_val)
            self._save("best", last_val)  # a fine-tune never ends worse than its base
        self.raw.train()
        self.progress.start(cfg.steps, self.step)
        save_every = cfg.save_every or cfg.eval_every
        while self.step < cfg.steps:
            ts = time.monotonic()
            loss, tokens = self.train_step()
            dt = time.monotonic() - ts
            done = self.step - start_step
            elapsed = time.monotonic() - t0
            eta = elapsed / done * (cfg.steps - self.step)
            rec = {"step": self.step, "loss": loss, "lr": self.opt.param_groups[0]["lr"] /
                   self.opt.param_groups[0].get("lr_scale", 1.0),
                   "tokens_per_s": tokens / max(dt, 1e-9), "eta_s": eta,
                   "epoch": self.sched.epoch_of(self.step)}
            # Every rank must stop at the same step (else DDP would hang): rank clocks
            # differ, so the decision is shared.
            over_budget = cfg.time_budget_s > 0 and ddp.all_sum(float(elapsed >= cfg.time_budget_s)) > 0
            is_eval = self.step % cfg.eval_every == 0 or self.step == cfg.steps or over_budget
            if is_eval:
                last_val = self.evaluate()
                rec["val_loss"] = last_val
                if last_val < self.best_val - cfg.min_delta:
                    self.bad_evals = 0
                else:
                    self.bad_evals += 1
                if last_val < self.best_val:
                    self.best_val = last_val
                    self._save("best", last_val)
            self.history.append({k: rec[k] for k in ("step", "loss") if k in rec}
                                | ({"val_loss": last_val} if is_eval else {}))
            self.progress.step(rec, last_val)
            early = is_eval and cfg.patience > 0 and self.bad_evals >= cfg.patience
            final = self.step == cfg.steps or over_budget or early
            if self.step % save_every == 0 or final:
                self._save_last(last_val)
            if early:
                stopped = "early-stop"
                break
            if over_budget:
                stopped = "time-budget"
                break
        self.progress.close()
        if last_val is None:  # resumed at the end, or steps == 0
            last_val = self.evaluate()
        ddp.barrier()
        return TrainResult(self.step, self.best_val, last_val, self.first_val, stopped,
                           self.wall_before + time.monotonic() - t0, self.history)
