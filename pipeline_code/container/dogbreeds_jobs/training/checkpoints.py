"""Checkpoints: ``last.pt`` every epoch (so a restarted spot job resumes), ``best.pt`` on improvement."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from ..serving import model_artifact
from .distributed import Dist, log

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    best_accuracy: float = -1.0
    best_epoch: int = 0
    epochs_without_gain: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def save_atomically(value: Any, path: Path) -> None:
    """Write then rename: a spot interruption mid-write must not leave a corrupt checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(value, temporary)
    os.replace(temporary, path)


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LRScheduler,
    scaler: torch.amp.GradScaler | None,
    state: TrainState,
    identity: dict[str, Any],
) -> None:
    save_atomically(
        {
            "model": model_artifact.unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "state": state.__dict__,
            "identity": identity,
        },
        path,
    )


def try_resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LRScheduler,
    scaler: torch.amp.GradScaler | None,
    identity: dict[str, Any],
    ctx: Dist,
) -> TrainState:
    """Continue from ``last.pt`` (managed spot training restarts the job from the start)."""
    if not path.is_file():
        return TrainState()
    checkpoint = torch.load(path, map_location=ctx.device, weights_only=False)
    if checkpoint.get("identity") != identity:
        log(
            ctx,
            f"train: WARNING {path} is from a different run ({checkpoint.get('identity')}); starting fresh",
        )
        return TrainState()
    model_artifact.unwrap(model).load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    state = TrainState(**checkpoint["state"])
    log(ctx, f"train: resumed from {path} after epoch {state.epoch}")
    return state


def save_best(path: Path, model: nn.Module, epoch: int, identity: dict[str, Any]) -> None:
    save_atomically(
        {"model": model_artifact.unwrap(model).state_dict(), "epoch": epoch, "identity": identity},
        path,
    )


def load_best(path: Path, model: nn.Module) -> None:
    """The model directory holds the best epoch's weights, not the last."""
    best = torch.load(path, map_location="cpu", weights_only=True)
    model_artifact.unwrap(model).load_state_dict(best["model"])
