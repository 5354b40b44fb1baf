"""Distributed set-up in one place: the process group torchrun describes, and rank-0 logging."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import TrainingError


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_choice: str) -> Dist:
    """Join the process group torchrun describes in the environment (nccl on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        # Input shapes are fixed (one image size, full batches), so autotuned kernels pay off.
        torch.backends.cudnn.benchmark = True
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return Dist(rank, world_size, local_rank, device)


def shutdown_distributed(ctx: Dist) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Dist) -> None:
    if ctx.world_size > 1:
        dist.barrier()


def all_reduce_sum(values: list[float], ctx: Dist) -> list[float]:
    """Sum per-rank totals so every rank sees the same metrics (and stops at the same epoch)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.world_size > 1:
        dist.all_reduce(tensor)
    return tensor.tolist()


def log(ctx: Dist, message: str) -> None:
    if ctx.is_main:
        print(message, flush=True)
