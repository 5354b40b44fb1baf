"""One epoch of training, one pass of evaluation, and the per-epoch metric line."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from . import data_cache
from .augmentation import DeviceAugment
from .distributed import Dist, all_reduce_sum
from .network import set_train_mode


@dataclass
class LoopSetup:
    """What the epoch loop needs, built once per job (``bench/bench_training.py`` builds its own)."""

    model: nn.Module  # what the optimizer steps: the DDP or torch.compile wrapper when there is one
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler | None  # fp16 only
    criterion: nn.Module
    augment: DeviceAugment
    amp_dtype: torch.dtype | None  # None: fp32
    ctx: Dist
    batch_size: int  # per process
    seed: int = 0
    fine_tune: str = "all"


def train_one_epoch(setup: LoopSetup, data: data_cache.Cache, epoch: int) -> dict[str, float]:
    ctx, model = setup.ctx, setup.model
    set_train_mode(model, setup.fine_tune)
    source = data_cache.train_batches(data, setup.batch_size, epoch, setup.seed, ctx)
    generator = torch.Generator(device=ctx.device).manual_seed(setup.seed * 7919 + epoch * 101 + ctx.rank)
    loss_sum = correct = seen = 0.0
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    start = time.perf_counter()
    for batch_images, batch_labels in source:
        images = batch_images.to(ctx.device, non_blocking=True)
        labels = batch_labels.to(ctx.device, non_blocking=True)
        loss, logits = train_step(setup, setup.augment.train(images, generator), labels)
        # Summed on the device; one host sync per epoch instead of one per step.
        loss_sum = loss_sum + loss.detach().float() * len(labels)
        correct = correct + (logits.argmax(1) == labels).sum()
        seen += len(labels)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    elapsed = time.perf_counter() - start
    totals = all_reduce_sum([float(loss_sum), float(correct), seen, elapsed], ctx)
    return {
        "train_loss": totals[0] / max(totals[2], 1),
        "train_accuracy": totals[1] / max(totals[2], 1),
        # Images of all ranks over the mean rank time.
        "images_per_second": totals[2] / max(totals[3] / ctx.world_size, 1e-9),
    }


def train_step(
    setup: LoopSetup, inputs: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch ready for the network; (loss, logits), left on the device so
    the caller syncs with the host only when it must."""
    with autocast(setup.ctx.device, setup.amp_dtype):
        logits = setup.model(inputs)
        loss = setup.criterion(logits, labels)
    setup.optimizer.zero_grad(set_to_none=True)
    if setup.scaler is not None:
        setup.scaler.scale(loss).backward()
        setup.scaler.step(setup.optimizer)
        setup.scaler.update()
    else:
        loss.backward()
        setup.optimizer.step()
    setup.scheduler.step()
    return loss, logits


@torch.no_grad()
def evaluate(model: nn.Module, setup: LoopSetup, data: data_cache.Cache) -> dict[str, float]:
    """``model`` is the plain module, not the DDP wrapper: evaluation has no gradients to sync.
    Batches are twice the training size: nothing is kept for a backward pass."""
    ctx = setup.ctx
    model.eval()
    loss_sum = correct = seen = 0.0
    for batch_images, batch_labels in data_cache.validation_batches(data, setup.batch_size * 2, ctx):
        images = batch_images.to(ctx.device, non_blocking=True)
        labels = batch_labels.to(ctx.device, non_blocking=True)
        with autocast(ctx.device, setup.amp_dtype):
            logits = model(setup.augment.evaluate(images))
        loss_sum = loss_sum + setup.criterion(logits.float(), labels).float() * len(labels)
        correct = correct + (logits.argmax(1) == labels).sum()
        seen += len(labels)
    totals = all_reduce_sum([float(loss_sum), float(correct), seen], ctx)
    if totals[2] == 0:
        return {"val_loss": float("nan"), "val_accuracy": float("nan")}
    return {"val_loss": totals[0] / totals[2], "val_accuracy": totals[1] / totals[2]}


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def metric_line(epoch: int, metrics: dict[str, float]) -> str:
    """The per-epoch line the estimator's metric definitions parse (see the container README)."""
    return (
        f"epoch={epoch} train_loss={metrics['train_loss']:.6f} "
        f"train_accuracy={metrics['train_accuracy']:.6f} val_loss={metrics['val_loss']:.6f} "
        f"val_accuracy={metrics['val_accuracy']:.6f} "
        f"images_per_second={metrics['images_per_second']:.1f}"
    )
