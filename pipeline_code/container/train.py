"""Training job: fine-tune a backbone on preprocess's uint8 cache; write the model directory.

Run by SageMaker's PyTorch estimator (``source_dir`` = this folder), alone or under torchrun (what
the ``torch_distributed`` distribution launches), and the same way by the local executor. The
structure follows torchvision's references/classification/train.py: plain argparse, one function
per phase, distributed set-up in one place.

Why it is fast: the cache is decoded once by preprocess and stays resident on the GPU when it
fits; random-resized-crop, flip and normalisation run on the device in one batched op
(``torchvision.ops.roi_align``); bf16 autocast (fp16 + GradScaler on GPUs without bf16) and
channels_last. The seed's per-epoch PIL decoding in DataLoader workers is gone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any

import backbones
import model_artifact
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torchvision.ops import roi_align

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
# Leave most of the GPU to activations: the cache goes on the device only below this share.
CACHE_DEVICE_MEMORY_SHARE = 0.4
# The cache stays in host memory (when not on the GPU) only below this share of available memory.
HOST_MEMORY_SHARE = 0.5


# ---- arguments ----------------------------------------------------------------------------------


def str2bool(text: str) -> bool:
    """SageMaker passes every hyperparameter as a string, so booleans arrive as "true"/"false"."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Fine-tune an image classifier on the cache.")
    # Paths: SageMaker's environment variables, with the container paths as fall-backs.
    parser.add_argument(
        "--train", type=Path, default=Path(env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=env("SM_CHANNEL_WEIGHTS"),
        help="pretrained weights channel (a folder) or file",
    )
    parser.add_argument("--weights-file", default="", help="file name inside the weights channel")
    parser.add_argument(
        "--model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "/opt/ml/model"))
    )
    parser.add_argument(
        "--output-data-dir",
        type=Path,
        default=Path(env("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
    )
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("/opt/ml/checkpoints"))
    # Model and optimisation.
    parser.add_argument(
        "--backbone",
        default=backbones.DEFAULT_BACKBONE,
        help=f"one of {', '.join(sorted(backbones.BACKBONES))}",
    )
    parser.add_argument("--fine-tune", choices=("all", "head"), default="all")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--min-crop-scale",
        type=float,
        default=0.35,
        help="random resized crop: smallest area share",
    )
    parser.add_argument(
        "--patience", type=int, default=3, help="epochs without val accuracy gain before stopping"
    )
    parser.add_argument("--min-delta", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    # Speed knobs.
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto")
    parser.add_argument("--channels-last", type=str2bool, default=True)
    parser.add_argument("--cache-on-device", choices=("auto", "true", "false"), default="auto")
    parser.add_argument(
        "--cache-mode",
        choices=("auto", "resident", "stream"),
        default="auto",
        help="resident: the whole cache in (GPU or host) memory; stream: shards read from local "
        "disk as training goes, memory not growing with the dataset; auto: resident when it fits",
    )
    parser.add_argument("--prefetch-batches", type=int, default=4, help="streamed batches read ahead")
    parser.add_argument("--compile", type=str2bool, default=False, help="torch.compile the model")
    args = parser.parse_args(argv)
    validate_args(args, parser)
    return args


def validate_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.backbone not in backbones.BACKBONES:
        parser.error(
            f"--backbone {args.backbone!r} is unknown; "
            f"allowed: {', '.join(sorted(backbones.BACKBONES))}"
        )
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.05 <= args.min_crop_scale <= 1.0:
        parser.error("--min-crop-scale must be between 0.05 and 1")
    if not args.train.is_dir():
        parser.error(f"training channel {args.train} is not a directory (SM_CHANNEL_TRAIN)")


# ---- distributed set-up (the one place) ---------------------------------------------------------


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
        raise SystemExit("train: --device cuda was asked for but no CUDA device is available")
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


def all_reduce_sum(values: list[float], ctx: Dist) -> list[float]:
    """Sum per-rank totals so every rank sees the same metrics (and stops at the same epoch)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.world_size > 1:
        dist.all_reduce(tensor)
    return tensor.tolist()


def log(ctx: Dist, message: str) -> None:
    if ctx.is_main:
        print(message, flush=True)


# ---- data ---------------------------------------------------------------------------------------


@dataclass
class CacheData:
    classes: list[str]
    train_images: torch.Tensor  # uint8 N x S x S x 3
    train_labels: torch.Tensor  # int64 N
    val_images: torch.Tensor
    val_labels: torch.Tensor
    fingerprint: str
    cache_size: int
    manifests: list[str] = field(default_factory=list)


@dataclass
class CacheIndex:
    """What the manifests say, before any picture is read: classes, shards, sizes."""

    classes: list[str]
    cache_size: int
    shards: list[dict[str, Any]]  # file, split, count, remap (manifest class index -> ours)
    fingerprint: str
    manifests: list[str]

    def count(self, split: str) -> int:
        return sum(shard["count"] for shard in self.shards if shard["split"] == split)

    @property
    def image_bytes(self) -> int:
        return self.cache_size * self.cache_size * 3

    def nbytes(self) -> int:
        return (self.count("train") + self.count("validation")) * self.image_bytes


def read_index(train_dir: Path) -> CacheIndex:
    """Read every host's manifest; class indices are assigned here, over the union.

    Preprocess hosts each saw a share of the files, so their class lists can differ; sorted names
    give one index order that classes.json records.
    """
    manifest_paths = sorted(train_dir.glob("manifest*.json"))
    if not manifest_paths:
        raise SystemExit(f"train: no manifest*.json in {train_dir}; run preprocess first")
    manifests = [json.loads(path.read_text()) for path in manifest_paths]
    sizes = {m["cache_size"] for m in manifests}
    if len(sizes) != 1:
        raise SystemExit(f"train: manifests disagree on cache_size: {sorted(sizes)}")
    classes = sorted({name for m in manifests for name in m["classes"]})
    index = {name: i for i, name in enumerate(classes)}
    shards = []
    for manifest in manifests:
        remap = np.array([index[name] for name in manifest["classes"]], dtype=np.int64)
        for shard in manifest["shards"]:
            shards.append({**shard, "path": train_dir / shard["file"], "remap": remap})
    fingerprint = (
        manifests[0]["fingerprint"]
        if len(manifests) == 1
        else hashlib.sha256(
            "".join(sorted(m["fingerprint"] for m in manifests)).encode()
        ).hexdigest()
    )
    result = CacheIndex(classes, sizes.pop(), shards, fingerprint, [p.name for p in manifest_paths])
    if result.count("train") == 0:
        raise SystemExit(f"train: the cache in {train_dir} has no training images")
    return result


def shard_images(path: Path) -> np.ndarray:
    """A shard's images memory-mapped straight from the .npz (preprocess stores it uncompressed):
    pages are read from disk when indexed, nothing is loaded up front."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("images.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path) as data:
            return data["images"]
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        name_length, extra_length = int.from_bytes(local[26:28], "little"), int.from_bytes(
            local[28:30], "little"
        )
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}  # fmt: skip
        if version not in readers:
            with np.load(path) as data:
                return data["images"]
        shape, fortran, dtype = readers[version](handle)
        offset = handle.tell()
    if fortran or dtype != np.uint8:
        raise SystemExit(f"train: {path} images are not C-order uint8")
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape, offset=offset)


def shard_labels(shard: dict[str, Any]) -> np.ndarray:
    with np.load(shard["path"]) as data:
        labels = data["labels"]
    return shard["remap"][labels] if len(labels) else labels.astype(np.int64)


def load_cache(train_dir: Path, device: torch.device | None = None) -> CacheData:
    """The whole cache as tensors, on ``device`` (host memory by default). Shards are copied one
    at a time into tensors allocated at their final size: nothing is concatenated in host memory,
    so putting the cache on a GPU costs the host one shard."""
    index = read_index(train_dir)
    device = device or torch.device("cpu")
    size = index.cache_size
    tensors = {}
    for split in ("train", "validation"):
        count = index.count(split)
        images = torch.empty((count, size, size, 3), dtype=torch.uint8, device=device)
        labels = torch.empty(count, dtype=torch.int64, device=device)
        start = 0
        for shard in (s for s in index.shards if s["split"] == split):
            part = shard_images(shard["path"])
            images[start : start + len(part)] = torch.from_numpy(np.array(part))
            labels[start : start + len(part)] = torch.from_numpy(shard_labels(shard))
            start += len(part)
            del part
        tensors[split] = (images, labels)
    return CacheData(
        classes=index.classes,
        train_images=tensors["train"][0],
        train_labels=tensors["train"][1],
        val_images=tensors["validation"][0],
        val_labels=tensors["validation"][1],
        fingerprint=index.fingerprint,
        cache_size=size,
        manifests=index.manifests,
    )


class StreamingCache:
    """The cache read from local disk as training goes: host memory holds the prefetched batches,
    not the dataset. Each rank reads only its share of the shards (every world_size-th, in file
    order); every rank takes the same number of steps (the smallest share's), as DDP needs."""

    def __init__(self, index: CacheIndex, batch_size: int, seed: int, ctx: Dist,
                 prefetch: int) -> None:  # fmt: skip
        self.index, self.batch_size, self.seed, self.ctx = index, batch_size, seed, ctx
        self.prefetch = max(1, prefetch)
        self.classes, self.cache_size = index.classes, index.cache_size
        self.fingerprint, self.manifests = index.fingerprint, index.manifests
        self.shares = {
            split: [
                [s for s in index.shards if s["split"] == split][rank :: ctx.world_size]
                for rank in range(ctx.world_size)
            ]
            for split in ("train", "validation")
        }
        per_rank = [sum(s["count"] for s in share) for share in self.shares["train"]]
        smallest = min(per_rank)
        if smallest < 2:
            raise SystemExit(
                f"train: a rank's share of the training shards has {smallest} image(s); use fewer "
                "training processes or smaller preprocess shards (--shard-size)"
            )
        self.steps_per_epoch = max(1, smallest // batch_size)
        self.train_count = index.count("train")
        self.val_count = index.count("validation")
        self.pin = ctx.device.type == "cuda"

    def _batches(self, split: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shards = list(self.shares[split][self.ctx.rank])
        if split != "train":  # evaluation: every image of this rank's share, in order
            for shard in shards:
                images, labels = shard_images(shard["path"]), shard_labels(shard)
                for start in range(0, len(labels), self.batch_size * 2):
                    stop = start + self.batch_size * 2
                    yield self._tensor(images[start:stop]), torch.from_numpy(labels[start:stop])
            return
        # Training: shards in a seeded order, each shuffled; batches carry over shard ends.
        rng = np.random.default_rng([self.seed, epoch, self.ctx.rank])
        size, made = self.batch_size, 0
        carry_images = np.empty((0, self.cache_size, self.cache_size, 3), dtype=np.uint8)
        carry_labels = np.empty(0, dtype=np.int64)
        for shard_number in rng.permutation(len(shards)):
            shard = shards[shard_number]
            images, labels = shard_images(shard["path"]), shard_labels(shard)
            order = rng.permutation(len(labels))
            start = 0
            while start < len(order):
                need = size - len(carry_labels)
                # Sorted within a batch: the memory map is read front to back.
                chunk = np.sort(order[start : start + need])
                start += len(chunk)
                batch_images = np.concatenate([carry_images, images[chunk]])
                batch_labels = np.concatenate([carry_labels, labels[chunk]])
                if len(batch_labels) < size:
                    carry_images, carry_labels = batch_images, batch_labels
                    continue
                carry_images, carry_labels = carry_images[:0], carry_labels[:0]
                yield self._tensor(batch_images), torch.from_numpy(batch_labels)
                made += 1
                if made >= self.steps_per_epoch:
                    return
        if made < self.steps_per_epoch and len(carry_labels) >= 2:  # smaller than one batch
            yield self._tensor(carry_images), torch.from_numpy(carry_labels)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.array(array))  # a copy: memory maps are read-only
        return tensor.pin_memory() if self.pin else tensor

    def batches(self, split: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``_batches`` read ahead in a thread, ``prefetch`` batches deep."""
        queue: Queue = Queue(maxsize=self.prefetch)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in self._batches(split, epoch):
                    while not stop.is_set():
                        try:
                            queue.put(item, timeout=0.1)
                            break
                        except Full:
                            continue
                    if stop.is_set():
                        return
                queue.put(done)
            except BaseException as error:  # surfaced in the training thread
                queue.put(error)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while (item := queue.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)


def train_count(data) -> int:
    return data.train_count if isinstance(data, StreamingCache) else len(data.train_labels)


def val_count(data) -> int:
    return data.val_count if isinstance(data, StreamingCache) else len(data.val_labels)


def host_memory_available() -> int:
    """MemAvailable from /proc/meminfo (bytes), or the physical memory where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def choose_cache_mode(args, index: CacheIndex, ctx: Dist) -> str:
    """resident (the fast path) when the cache fits where it would live, else stream. On a GPU
    it must fit the device share; in host memory, HOST_MEMORY_SHARE of what is available per
    process on this instance. Decided from the manifests, before any picture is read."""
    if args.cache_mode != "auto":
        return args.cache_mode
    needed = index.nbytes()
    if cache_fits_device(args, index, ctx):
        return "resident"
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if needed <= HOST_MEMORY_SHARE * host_memory_available() / local_processes:
        return "resident"
    return "stream"


def cache_fits_device(args, index: CacheIndex, ctx: Dist) -> bool:
    """Whether the resident cache goes on the GPU: asked for, or below the device share."""
    if ctx.device.type != "cuda" or args.cache_on_device == "false":
        return False
    if args.cache_on_device == "true":
        return True
    free, _total = torch.cuda.mem_get_info(ctx.device)
    return index.nbytes() <= CACHE_DEVICE_MEMORY_SHARE * free


def place_cache(data: CacheData, choice: str, ctx: Dist) -> bool:
    """Move the uint8 cache onto the GPU when asked or when it fits; returns whether it moved."""
    if ctx.device.type != "cuda" or choice == "false":
        return False
    needed = data.train_images.nbytes + data.val_images.nbytes
    if choice == "auto":
        free, _total = torch.cuda.mem_get_info(ctx.device)
        if needed > CACHE_DEVICE_MEMORY_SHARE * free:
            log(ctx, f"train: cache of {needed / 2**30:.2f} GiB stays in host memory")
            return False
    for name in ("train_images", "train_labels", "val_images", "val_labels"):
        setattr(data, name, getattr(data, name).to(ctx.device))
    log(ctx, f"train: cache of {needed / 2**30:.2f} GiB is resident on {ctx.device}")
    return True


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, ctx: Dist) -> list[torch.Tensor]:
    """This rank's batches of one epoch: a shared seeded permutation, dealt out like
    DistributedSampler (padded so every rank takes the same number of steps, or DDP would hang)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator)
    per_rank = math.ceil(n / ctx.world_size)
    order = (
        torch.cat([order, order[: per_rank * ctx.world_size - n]])
        if per_rank * ctx.world_size > n
        else order
    )
    mine = order[ctx.rank :: ctx.world_size]
    batches = list(torch.split(mine, batch_size))
    # BatchNorm cannot train on a batch of one; every rank drops the same tail.
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches


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


# ---- model --------------------------------------------------------------------------------------


def find_weights_file(weights: Path | None, file_name: str) -> Path | None:
    """The pretrained weights file in the weights channel (a folder), or None if not given."""
    if weights is None or str(weights) == "":
        return None
    weights = Path(weights)
    if weights.is_file():
        return weights
    if not weights.is_dir():
        raise SystemExit(f"train: weights channel {weights} does not exist")
    if file_name:
        path = weights / file_name
        if not path.is_file():
            raise SystemExit(f"train: --weights-file {file_name} is not in {weights}")
        return path
    candidates = sorted(p for p in weights.rglob("*") if p.suffix in (".pt", ".pth", ".bin"))
    if len(candidates) != 1:
        raise SystemExit(
            f"train: weights channel {weights} must hold exactly one .pt/.pth file "
            f"(or name one with --weights-file); found {[p.name for p in candidates]}"
        )
    return candidates[0]


def build_model(
    args: argparse.Namespace, num_classes: int, weights_path: Path | None, ctx: Dist
) -> nn.Module:
    if weights_path is None and ctx.is_main:
        warnings.warn(
            f"no pretrained weights given (SM_CHANNEL_WEIGHTS); {args.backbone} starts from "
            "random initialisation, which needs far more data and epochs",
            stacklevel=2,
        )
    model = backbones.build_backbone(args.backbone, num_classes, weights_path)
    if args.fine_tune == "head":
        head = backbones.get_head(model, args.backbone)
        for parameter in model.parameters():
            parameter.requires_grad = False
        for parameter in head.parameters():
            parameter.requires_grad = True
    model.to(ctx.device)
    if args.channels_last and ctx.device.type == "cuda":
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
    return {"bf16": (torch.bfloat16, False), "fp16": (torch.float16, True), "fp32": (None, False)}[
        choice
    ]


# ---- checkpoints --------------------------------------------------------------------------------


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
    path: Path, model: nn.Module, optimizer, scheduler, scaler, state: TrainState, identity: dict
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
    path: Path, model: nn.Module, optimizer, scheduler, scaler, identity: dict, ctx: Dist
) -> TrainState:
    """Continue from ``last.pt`` (managed spot training restarts the job from the start)."""
    if not path.is_file():
        return TrainState()
    checkpoint = torch.load(path, map_location=ctx.device, weights_only=False)
    if checkpoint.get("identity") != identity:
        log(
            ctx,
            f"train: WARNING {path} is from a different run "
            f"({checkpoint.get('identity')}); starting fresh",
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


# ---- one epoch ----------------------------------------------------------------------------------


def train_one_epoch(
    model,
    optimizer,
    scheduler,
    scaler,
    criterion,
    data: CacheData,
    augment: DeviceAugment,
    args,
    epoch: int,
    amp_dtype,
    ctx: Dist,
) -> dict[str, float]:
    set_train_mode(model, args.fine_tune)
    if isinstance(data, StreamingCache):
        source = data.batches("train", epoch)
    else:
        batches = epoch_batches(len(data.train_labels), args.batch_size, epoch, args.seed, ctx)
        source = (
            (data.train_images[i.to(data.train_images.device)],
             data.train_labels[i.to(data.train_images.device)])
            for i in batches
        )  # fmt: skip
    generator = torch.Generator(device=ctx.device).manual_seed(
        args.seed * 7919 + epoch * 101 + ctx.rank
    )
    loss_sum = correct = seen = 0.0
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    start = time.perf_counter()
    for batch_images, batch_labels in source:
        images = batch_images.to(ctx.device, non_blocking=True)
        labels = batch_labels.to(ctx.device, non_blocking=True)
        inputs = augment.train(images, generator)
        with autocast(ctx.device, amp_dtype):
            logits = model(inputs)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
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


@torch.no_grad()
def evaluate(
    model, criterion, data: CacheData, augment: DeviceAugment, batch_size: int, amp_dtype, ctx: Dist
) -> dict[str, float]:
    model.eval()
    if isinstance(data, StreamingCache):
        source = data.batches("validation", 0)
    else:
        indices = torch.arange(ctx.rank, len(data.val_labels), ctx.world_size)
        source = (
            (data.val_images[c.to(data.val_images.device)], data.val_labels[c.to(data.val_images.device)])
            for c in torch.split(indices, batch_size)
        )
    loss_sum = correct = seen = 0.0
    for batch_images, batch_labels in source:
        images = batch_images.to(ctx.device, non_blocking=True)
        labels = batch_labels.to(ctx.device, non_blocking=True)
        with autocast(ctx.device, amp_dtype):
            logits = model(augment.evaluate(images))
        loss_sum = loss_sum + criterion(logits.float(), labels).float() * len(labels)
        correct = correct + (logits.argmax(1) == labels).sum()
        seen += len(labels)
    totals = all_reduce_sum([float(loss_sum), float(correct), seen], ctx)
    if totals[2] == 0:
        return {"val_loss": float("nan"), "val_accuracy": float("nan")}
    return {"val_loss": totals[0] / totals[2], "val_accuracy": totals[1] / totals[2]}


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
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


# ---- the job ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    ctx = setup_distributed(args.device)
    torch.manual_seed(args.seed)  # identical initial heads on every rank
    try:
        return _run(args, ctx)
    finally:
        if ctx.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(args: argparse.Namespace, ctx: Dist) -> dict[str, Any]:
    index = read_index(args.train)
    cache_mode = choose_cache_mode(args, index, ctx)
    log(ctx, f"train: cache of {index.nbytes() / 2**30:.2f} GiB: {cache_mode}")
    if cache_mode == "stream":
        data = StreamingCache(index, args.batch_size, args.seed, ctx, args.prefetch_batches)
        on_device = False
    else:
        # Filled shard by shard where it will live: a GPU-resident cache never passes through
        # host memory whole.
        on_device = cache_fits_device(args, index, ctx)
        data = load_cache(args.train, ctx.device if on_device else None)
        where = ctx.device if on_device else "host memory"
        log(ctx, f"train: cache of {index.nbytes() / 2**30:.2f} GiB is resident in {where}")
    spec = backbones.backbone_spec(args.backbone)
    log(
        ctx,
        f"train: {train_count(data)} train / {val_count(data)} validation images, "
        f"{len(data.classes)} classes, cache {data.cache_size}px, "
        f"{ctx.world_size} process(es) on {ctx.device.type}",
    )
    if val_count(data) == 0:
        log(
            ctx,
            "train: WARNING no validation images; early stopping and best-checkpoint "
            "selection use train accuracy",
        )
    weights_path = find_weights_file(args.weights, args.weights_file)
    model = build_model(args, len(data.classes), weights_path, ctx)
    amp_dtype, needs_scaler = choose_precision(args.precision, ctx.device)
    trained = model
    if ctx.world_size > 1:
        device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
        trained = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if args.compile:
        trained = torch.compile(trained)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = (
        data.steps_per_epoch
        if isinstance(data, StreamingCache)
        else len(epoch_batches(len(data.train_labels), args.batch_size, 0, args.seed, ctx))
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=max(1, steps_per_epoch * args.epochs), pct_start=0.15
    )
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    augment = DeviceAugment(
        args.image_size,
        spec.mean,
        spec.std,
        args.min_crop_scale,
        ctx.device,
        args.channels_last and ctx.device.type == "cuda",
    )
    identity = {
        "backbone": args.backbone,
        "classes": data.classes,
        "fingerprint": data.fingerprint,
        "image_size": args.image_size,
        "fine_tune": args.fine_tune,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "world_size": ctx.world_size,
    }
    last_path = args.checkpoint_dir / CHECKPOINT_LAST
    best_path = args.checkpoint_dir / CHECKPOINT_BEST
    state = try_resume(last_path, model, optimizer, scheduler, scaler, identity, ctx)
    # A job restarted after it had already stopped early (e.g. a spot interruption while writing
    # the model) must not train on past the stop.
    first_epoch = args.epochs + 1 if state.epochs_without_gain >= args.patience else state.epoch + 1

    for epoch in range(first_epoch, args.epochs + 1):
        metrics = train_one_epoch(
            trained,
            optimizer,
            scheduler,
            scaler,
            criterion,
            data,
            augment,
            args,
            epoch,
            amp_dtype,
            ctx,
        )
        metrics.update(
            evaluate(model, criterion, data, augment, args.batch_size * 2, amp_dtype, ctx)
        )
        score = metrics["val_accuracy"] if val_count(data) else metrics["train_accuracy"]
        state.epoch = epoch
        state.history.append({"epoch": epoch, **metrics})
        if score > state.best_accuracy + args.min_delta:
            state.best_accuracy, state.best_epoch, state.epochs_without_gain = score, epoch, 0
            if ctx.is_main:
                save_atomically(
                    {
                        "model": model_artifact.unwrap(model).state_dict(),
                        "epoch": epoch,
                        "identity": identity,
                    },
                    best_path,
                )
        else:
            state.epochs_without_gain += 1
        if ctx.is_main:
            save_checkpoint(last_path, model, optimizer, scheduler, scaler, state, identity)
        # Printed after the checkpoint is on disk: a job stopped after this line resumes after it.
        log(ctx, metric_line(epoch, metrics))
        if state.epochs_without_gain >= args.patience:
            log(
                ctx,
                f"train: early stop after epoch {epoch}: no validation accuracy gain "
                f"for {args.patience} epochs",
            )
            break
    if ctx.world_size > 1:
        dist.barrier()  # best.pt is complete before anyone reads it

    result = {
        "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_accuracy,
        "epochs_run": state.epoch,
        "history": [{k: finite_or_none(v) for k, v in h.items()} for h in state.history],
    }
    if ctx.is_main:
        best = torch.load(best_path, map_location="cpu", weights_only=True)
        model_artifact.unwrap(model).load_state_dict(best["model"])
        metadata = build_metadata(args, data, spec, state, weights_path, ctx, amp_dtype, on_device)
        model_artifact.write_model_dir(args.model_dir, model, data.classes, metadata)
        args.output_data_dir.mkdir(parents=True, exist_ok=True)
        (args.output_data_dir / "history.json").write_text(json.dumps(result, indent=1) + "\n")
        log(
            ctx,
            f"train: best val_accuracy={state.best_accuracy:.6f} at epoch "
            f"{state.best_epoch}; model written to {args.model_dir}",
        )
    return result


def finite_or_none(value: Any) -> Any:
    """NaN (no validation split) becomes null: strict JSON readers reject NaN."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def build_metadata(
    args,
    data,
    spec,
    state: TrainState,
    weights_path,
    ctx: Dist,
    amp_dtype,
    on_device: bool,
) -> dict[str, Any]:
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), {})
    return {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "eval_transform": (
            "resize shorter side to image_size (bilinear, antialiased), centre-crop "
            "image_size x image_size, scale to 0..1, normalise with mean/std"
        ),
        "num_classes": len(data.classes),
        "dataset_fingerprint": data.fingerprint,
        "cache_size": data.cache_size,
        "metrics": {
            "best_epoch": state.best_epoch,
            "val_accuracy": finite_or_none(best.get("val_accuracy")),
            "val_loss": finite_or_none(best.get("val_loss")),
            "train_accuracy": finite_or_none(best.get("train_accuracy")),
            "train_loss": finite_or_none(best.get("train_loss")),
            "epochs_run": state.epoch,
        },
        "training": {
            "fine_tune": args.fine_tune,
            "epochs": args.epochs,
            "batch_size_per_process": args.batch_size,
            "world_size": ctx.world_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "label_smoothing": args.label_smoothing,
            "min_crop_scale": args.min_crop_scale,
            "seed": args.seed,
            "device": ctx.device.type,
            "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype],
            "cache_on_device": on_device,
            "cache_mode": "stream" if isinstance(data, StreamingCache) else "resident",
            "pretrained_weights": weights_path.name if weights_path else None,
            "torch_version": torch.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
