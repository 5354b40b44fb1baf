"""Preprocess's uint8 cache: the manifests' index, the resident load, the streaming reader, the
choice between them and where the cache lives, and each rank's batches of an epoch."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any

import numpy as np
import torch

# The shares live with preprocess's size plan, which must predict this module's choice without torch.
from ..data.capacity import CACHE_DEVICE_MEMORY_SHARE, HOST_MEMORY_SHARE
from .distributed import Dist, log
from .errors import TrainingError


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
        raise TrainingError(f"no manifest*.json in {train_dir}; run preprocess first")
    manifests = [json.loads(path.read_text()) for path in manifest_paths]
    sizes = {m["cache_size"] for m in manifests}
    if len(sizes) != 1:
        raise TrainingError(f"manifests disagree on cache_size: {sorted(sizes)}")
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
        else hashlib.sha256("".join(sorted(m["fingerprint"] for m in manifests)).encode()).hexdigest()
    )
    result = CacheIndex(classes, sizes.pop(), shards, fingerprint, [p.name for p in manifest_paths])
    if result.count("train") == 0:
        raise TrainingError(f"the cache in {train_dir} has no training images")
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
        name_length, extra_length = (
            int.from_bytes(local[26:28], "little"),
            int.from_bytes(local[28:30], "little"),
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
        raise TrainingError(f"{path} images are not C-order uint8")
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
            raise TrainingError(
                f"a rank's share of the training shards has {smallest} image(s); use fewer "
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


Cache = CacheData | StreamingCache


def train_count(data: Cache) -> int:
    return data.train_count if isinstance(data, StreamingCache) else len(data.train_labels)


def val_count(data: Cache) -> int:
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


def choose_cache_mode(mode: str, cache_on_device: str, index: CacheIndex, ctx: Dist) -> str:
    """resident (the fast path) when the cache fits where it would live, else stream. On a GPU
    it must fit the device share; in host memory, HOST_MEMORY_SHARE of what is available per
    process on this instance. Decided from the manifests, before any picture is read."""
    if mode != "auto":
        return mode
    needed = index.nbytes()
    if cache_fits_device(cache_on_device, index, ctx):
        return "resident"
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if needed <= HOST_MEMORY_SHARE * host_memory_available() / local_processes:
        return "resident"
    return "stream"


def cache_fits_device(cache_on_device: str, index: CacheIndex, ctx: Dist) -> bool:
    """Whether the resident cache goes on the GPU: asked for, or below the device share."""
    if ctx.device.type != "cuda" or cache_on_device == "false":
        return False
    if cache_on_device == "true":
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
        torch.cat([order, order[: per_rank * ctx.world_size - n]]) if per_rank * ctx.world_size > n else order
    )
    mine = order[ctx.rank :: ctx.world_size]
    batches = list(torch.split(mine, batch_size))
    # BatchNorm cannot train on a batch of one; every rank drops the same tail.
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches


def train_batches(
    data: Cache, batch_size: int, epoch: int, seed: int, ctx: Dist
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's (uint8 images, labels) training batches of one epoch, wherever the cache lives."""
    if isinstance(data, StreamingCache):
        return data.batches("train", epoch)
    device = data.train_images.device
    return (
        (data.train_images[i.to(device)], data.train_labels[i.to(device)])
        for i in epoch_batches(len(data.train_labels), batch_size, epoch, seed, ctx)
    )


def validation_batches(
    data: Cache, batch_size: int, ctx: Dist
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's share of the validation images (every world_size-th), in order."""
    if isinstance(data, StreamingCache):
        return data.batches("validation", 0)
    device = data.val_images.device
    indices = torch.arange(ctx.rank, len(data.val_labels), ctx.world_size)
    return (
        (data.val_images[c.to(device)], data.val_labels[c.to(device)])
        for c in torch.split(indices, batch_size)
    )


def steps_per_epoch(data: Cache, batch_size: int, seed: int, ctx: Dist) -> int:
    if isinstance(data, StreamingCache):
        return data.steps_per_epoch
    return len(epoch_batches(len(data.train_labels), batch_size, 0, seed, ctx))
