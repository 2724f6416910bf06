"""The epoch/step loop of one training stage: accumulation, clipping, precision, checkpoints, hooks.

One optimizer step consumes `accum_steps` micro-batches of `batch_size` studies on every rank. The loop starts
from a `Position` (a fresh stage or a resumed checkpoint): the sampler skips the studies already seen in the
current epoch, and the model, optimizer, schedule, scaler and RNG states come from the checkpoint, so the
resumed run continues exactly as the uninterrupted one would have.

Under DDP a CLIP loss is computed on features gathered from every rank without gradient through the gather;
each rank's backward then yields the gradient of the global loss through its own features only, and DDP
averages over ranks, so the loss is scaled by `world_size` before `backward` to recover the gradient of the
single-process loss over the global batch. (Micro-batch accumulation of a contrastive loss is not the same as
a larger batch: negatives come from the micro-batch only.)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader

from hlip.training.checkpoint import Position, load_trainable_state, rng_state, set_rng_state, trainable_state
from hlip.training.distributed import DistInfo, mean_across_ranks
from hlip.training.hooks import Evaluator, Report, TrainingLogger
from hlip.training.progress import StageProgress

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, dict[str, Any]], Tensor]
"""`compute_loss(train_model, batch) -> scalar loss` (the batch is already on the device)."""


@dataclass
class TrainingStage:
    """Everything one stage trains with.

    Attributes:
        name: `warmup` or `contrastive`.
        model: The unwrapped model (checkpointed, evaluated).
        train_model: What the forward pass goes through (the DDP wrapper, or `model`).
        compute_loss: The stage's loss of a batch.
        loader: Training batches (`loader.sampler` is a `ResumableSampler`).
        optimizer: AdamW.
        scheduler: Per-step learning-rate schedule.
        scaler: fp16 gradient scaler (disabled otherwise).
        epochs: Epochs of the stage.
        accum_steps: Micro-batches per optimizer step.
        grad_clip: Max gradient norm (0: off).
        loss_scale: Factor on the loss before backward (see the module docstring).
        autocast_dtype: bf16/fp16 autocast dtype, None for fp32.
    """

    name: str
    model: nn.Module
    train_model: nn.Module
    compute_loss: LossFn
    loader: DataLoader[Any]
    optimizer: Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler
    epochs: int
    accum_steps: int = 1
    grad_clip: float = 0.0
    loss_scale: float = 1.0
    autocast_dtype: torch.dtype | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps of one epoch (incomplete accumulation windows are dropped)."""
        sampler: Any = self.loader.sampler
        full = sampler.num_samples // (self.loader.batch_size or 1)
        return full // self.accum_steps

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, schedule and scaler states."""
        return {
            "model": trainable_state(self.model),  # a locked pretrained trunk is not saved again
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        load_trainable_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


@dataclass
class StageResult:
    """What a stage did.

    Attributes:
        steps: Optimizer steps of the stage (including those before a resume).
        epoch_losses: Mean training loss of each epoch run in this process.
        studies_per_s: Mean global throughput of the steps run in this process.
        seconds_per_epoch: Wall time of each epoch run in this process (loader start, steps; not its checkpoint).
        data_wait_per_epoch: Seconds of each epoch the training loop waited for the loader (the first batch
            included): near zero when loading keeps up.
        save_seconds_per_epoch: Seconds training stood still for each epoch-end checkpoint.
        eval: Last evaluator metrics.
        global_step: Global optimizer step at the end.
    """

    steps: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    studies_per_s: float = 0.0
    seconds_per_epoch: list[float] = field(default_factory=list)
    data_wait_per_epoch: list[float] = field(default_factory=list)
    save_seconds_per_epoch: list[float] = field(default_factory=list)
    eval: dict[str, float] = field(default_factory=dict)
    global_step: int = 0


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a batch moved to `device` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def train_stage(
    run: TrainingStage,
    start: Position,
    info: DistInfo,
    *,
    save: Callable[[Position], None],
    logger: TrainingLogger,
    evaluator: Evaluator | None = None,
    eval_every: int = 0,
    report: Report | None = None,
    report_metric: str | None = None,
    checkpoint_every: int = 0,
    log_every: int = 1,
    progress: bool = True,
) -> StageResult:
    """Train `run` from `start` to the end of its epochs.

    Args:
        run: The stage.
        start: Where to start (epoch, step within it, global step).
        info: Rank and device.
        save: Writes a checkpoint at a position (called on every rank; it writes on rank 0 only).
        logger: Metrics sink (rank 0).
        evaluator: Called with the unwrapped model every `eval_every` epochs (rank 0).
        eval_every: Epochs between evaluations (0: never).
        report: Receives `(epoch, value)` after each epoch that evaluates: `value` is evaluator metric
            `report_metric` (or its only metric); epochs between evaluations report nothing (a training loss is
            not the metric). Without an evaluator, every epoch reports its mean training loss. Exceptions
            propagate after the checkpoint.
        report_metric: Which evaluator metric `report` gets.
        checkpoint_every: Optimizer steps between checkpoints (0: end of epoch only).
        log_every: Optimizer steps between metric logs.
        progress: Draw a progress bar on rank 0.
    """
    steps_per_epoch = run.steps_per_epoch
    if steps_per_epoch < 1:
        raise ValueError(
            f"stage {run.name}: an epoch has fewer studies per rank than one optimizer step needs "
            f"(batch_size x accum_steps = {run.loader.batch_size} x {run.accum_steps}); lower the batch size"
        )
    total = run.epochs * steps_per_epoch
    done = start.epoch * steps_per_epoch + start.step_in_epoch
    result = StageResult(steps=done, global_step=start.global_step)
    global_step, rates = start.global_step, []
    run.train_model.train()
    sampler: Any = run.loader.sampler
    batch_size = run.loader.batch_size or 1
    with StageProgress(run.name, total, done, enabled=progress and info.is_main) as bar:
        for epoch in range(start.epoch, run.epochs):
            first = start.step_in_epoch if epoch == start.epoch else 0
            sampler.set_epoch(epoch)
            sampler.set_start(first * run.accum_steps * batch_size)
            epoch_start, losses, wait = time.perf_counter(), [], 0.0
            batches = iter(run.loader)  # loader workers start here: their start-up is part of the epoch
            for step in range(first, steps_per_epoch):
                tick = time.perf_counter()
                loss, studies, waited = _optimizer_step(run, batches, info)
                wait += waited
                global_step += 1
                result.steps += 1
                rate = studies * info.world_size / max(time.perf_counter() - tick, 1e-9)
                rates.append(rate)
                losses.append(loss)
                bar.update(loss, rate)
                if info.is_main and (global_step % max(log_every, 1) == 0 or step == steps_per_epoch - 1):
                    logger.log_metrics(_step_metrics(run, loss, rate), global_step)
                if checkpoint_every and global_step % checkpoint_every == 0 and step + 1 < steps_per_epoch:
                    save(Position(run.name, epoch, step + 1, global_step))
            del batches
            seconds = time.perf_counter() - epoch_start
            epoch_loss = mean_across_ranks(sum(losses) / max(len(losses), 1), info)
            result.epoch_losses.append(epoch_loss)
            result.seconds_per_epoch.append(seconds)
            result.data_wait_per_epoch.append(wait)
            if info.is_main:
                logger.log_metrics({f"{run.name}/epoch_loss": epoch_loss, f"{run.name}/epoch_seconds": seconds,
                                    f"{run.name}/epoch_data_wait_seconds": wait}, global_step)  # fmt: skip
            tick = time.perf_counter()
            save(Position(run.name, epoch + 1, 0, global_step))
            result.save_seconds_per_epoch.append(time.perf_counter() - tick)
            value: float | None = epoch_loss if evaluator is None else None
            if evaluator is not None and eval_every and (epoch + 1) % eval_every == 0 and info.is_main:
                result.eval = _evaluate(run.model, evaluator, global_step)
                logger.log_metrics({f"eval/{k}": v for k, v in result.eval.items()}, global_step)
                value = _pick(result.eval, report_metric)
            if report is not None and info.is_main and value is not None:
                report(epoch + 1, value)
    result.global_step = global_step
    result.studies_per_s = sum(rates) / len(rates) if rates else 0.0
    return result


def _optimizer_step(run: TrainingStage, batches: Iterator[dict[str, Any]], info: DistInfo) -> tuple[float, int, float]:
    """One optimizer step over `accum_steps` micro-batches; returns (mean loss, studies on this rank, seconds spent
    waiting for the loader)."""
    run.optimizer.zero_grad(set_to_none=True)
    total, studies, waited = 0.0, 0, 0.0
    for micro in range(run.accum_steps):
        tick = time.perf_counter()
        host_batch = next(batches)
        waited += time.perf_counter() - tick
        batch = to_device(host_batch, info.device)
        studies += len(batch["study_key"])
        sync = micro == run.accum_steps - 1 or not info.distributed
        no_sync = getattr(run.train_model, "no_sync", None)
        with contextlib.nullcontext() if sync or no_sync is None else no_sync():
            with autocast_context(info.device, run.autocast_dtype):
                loss = run.compute_loss(run.train_model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"stage {run.name}: non-finite loss {float(loss)}")
            run.scaler.scale(loss * (run.loss_scale / run.accum_steps)).backward()
        total += float(loss.detach())
    if run.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    clamp = getattr(run.model, "clamp_logit_scale_", None)
    if clamp is not None:
        clamp()
    return total / run.accum_steps, studies, waited


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """`torch.autocast` on `device` at `dtype`, or a no-op context for fp32 (`dtype` None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _step_metrics(run: TrainingStage, loss: float, rate: float) -> dict[str, float]:
    metrics = {f"{run.name}/loss": loss, f"{run.name}/lr": float(run.optimizer.param_groups[0]["lr"]),
               f"{run.name}/studies_per_s": rate}  # fmt: skip
    scale = getattr(run.model, "logit_scale", None)
    if isinstance(scale, Tensor):
        metrics[f"{run.name}/logit_scale"] = float(scale.detach().exp())
    return metrics


def _evaluate(model: nn.Module, evaluator: Evaluator, step: int) -> dict[str, float]:
    """Run the evaluator in eval mode without touching the training RNG streams."""
    state = rng_state()
    model.eval()
    try:
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluator(model, step).items()}
    finally:
        model.train()
        set_rng_state(state)
    return metrics


def _pick(metrics: dict[str, float], name: str | None) -> float:
    if name is not None:
        if name not in metrics:
            raise KeyError(f"evaluator returned {sorted(metrics)}, not the report metric {name!r}")
        return metrics[name]
    if len(metrics) != 1:
        raise ValueError(f"evaluator returned {sorted(metrics)}: name the one to report (report_metric)")
    return next(iter(metrics.values()))
