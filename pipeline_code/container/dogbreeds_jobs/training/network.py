"""The network: pretrained weights lookup, building (with a frozen body for head-only fine-tuning),
train mode, and the precision to train in."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..serving import backbones
from .distributed import Dist
from .errors import TrainingError


def find_weights_file(weights: Path | None, file_name: str) -> Path | None:
    """The pretrained weights file in the weights channel (a folder), or None if not given."""
    if weights is None or str(weights) == "":
        return None
    weights = Path(weights)
    if weights.is_file():
        return weights
    if not weights.is_dir():
        raise TrainingError(f"weights channel {weights} does not exist")
    if file_name:
        path = weights / file_name
        if not path.is_file():
            raise TrainingError(f"--weights-file {file_name} is not in {weights}")
        return path
    candidates = sorted(p for p in weights.rglob("*") if p.suffix in (".pt", ".pth", ".bin"))
    if len(candidates) != 1:
        raise TrainingError(
            f"weights channel {weights} must hold exactly one .pt/.pth file "
            f"(or name one with --weights-file); found {[p.name for p in candidates]}"
        )
    return candidates[0]


def build_model(
    backbone: str,
    num_classes: int,
    weights_path: Path | None,
    ctx: Dist,
    *,
    fine_tune: str = "all",
    channels_last: bool = True,
) -> nn.Module:
    if weights_path is None and ctx.is_main:
        warnings.warn(
            f"no pretrained weights given (SM_CHANNEL_WEIGHTS); {backbone} starts from "
            "random initialisation, which needs far more data and epochs",
            stacklevel=2,
        )
    model = backbones.build_backbone(backbone, num_classes, weights_path)
    if fine_tune == "head":
        head = backbones.get_head(model, backbone)
        for parameter in model.parameters():
            parameter.requires_grad = False
        for parameter in head.parameters():
            parameter.requires_grad = True
    model.to(ctx.device)
    if channels_last and ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def set_train_mode(model: nn.Module, fine_tune: str) -> None:
    """Train mode, except that a frozen backbone keeps its BatchNorm statistics as pretrained."""
    model.train()
    if fine_tune == "head":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def choose_precision(choice: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed)."""
    if device.type != "cuda":
        if choice in ("bf16", "fp16"):
            warnings.warn(f"--precision {choice} is ignored on CPU; training in fp32", stacklevel=2)
        return None, False
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": (torch.bfloat16, False), "fp16": (torch.float16, True), "fp32": (None, False)}[choice]


PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
