"""Augmentation on the device, for a whole uint8 batch at once (no per-image work in workers)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.ops import roi_align


class DeviceAugment:
    """Random resized crop + horizontal flip + normalise, for a whole uint8 batch at once on its
    device. ``roi_align`` crops and resizes every image of the batch with its own box in one op."""

    def __init__(
        self,
        image_size: int,
        mean: tuple,
        std: tuple,
        min_scale: float,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.image_size = image_size
        self.min_scale = min_scale
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)

    def train(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, height, width, _ = batch.shape
        device = batch.device
        x = batch.permute(0, 3, 1, 2).float()
        rand = torch.rand((n, 5), device=device, generator=generator)
        area = (self.min_scale + (1 - self.min_scale) * rand[:, 0]) * height * width
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * rand[:, 1]
        ratio = torch.exp(log_ratio)
        crop_w = torch.sqrt(area * ratio).clamp(max=width)
        crop_h = torch.sqrt(area / ratio).clamp(max=height)
        x1 = rand[:, 2] * (width - crop_w)
        y1 = rand[:, 3] * (height - crop_h)
        boxes = torch.stack(
            [torch.arange(n, device=device, dtype=x.dtype), x1, y1, x1 + crop_w, y1 + crop_h], 1
        )
        out = roi_align(x, boxes, (self.image_size, self.image_size), 1.0, 2, True)
        flip = rand[:, 4] < 0.5
        out = torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)
        return self._normalise(out)

    def evaluate(self, batch: torch.Tensor) -> torch.Tensor:
        """The whole cached square resized to the input size: the same view serving gets from
        "resize the shorter side to image_size, centre-crop a square"."""
        x = batch.permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.image_size:
            x = nn.functional.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        return self._normalise(x)
