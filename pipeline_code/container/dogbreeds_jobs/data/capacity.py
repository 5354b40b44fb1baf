"""Say it before it fails: what each step will need for this dataset on the chosen instances.

Preprocess calls ``plan`` right after listing its files, before anything is decoded or written:
it reports the dataset's size and each step's memory and disk on the instance types from
instance_types.py, and ``problems`` lists every step that cannot fit, naming the setting or
parameter to change. The figures are estimates from file counts and sizes (a host sees its share
of the files; the dataset is about hosts x that).

What grows with the dataset, and where:
* preprocess, per host: disk for the cache shards it writes and the test originals it copies
  (memory is flat: one picture per worker in flight);
* training: disk for the whole cache (the channel is downloaded); memory only on the resident
  path, which training takes only when the cache fits (GPU: CACHE_DEVICE_MEMORY_SHARE of it, host:
  HOST_MEMORY_SHARE per process), else it streams from disk;
* evaluation: disk for the test originals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contract.instance_types import DEFAULT_VOLUME_GIB, INSTANCE_TYPES, instance_type

GIB = 2**30
# Training's cache placement reads these (dogbreeds_jobs/training/data_cache.py); they live here so that
# preprocess's plan, which imports no torch, predicts the same choice. Leave most of the GPU to
# activations: the cache goes on the device only below this share of free GPU memory.
CACHE_DEVICE_MEMORY_SHARE = 0.4
# The cache stays in host memory (when not on the GPU) only below this share of available memory.
HOST_MEMORY_SHARE = 0.5
# A preprocess worker holds one decoded picture and its copies: at most the decoder's pixel limit
# (image_decoding.DEFAULT_MAX_PIXELS, 40 MP) x 3 bytes x ~3 copies. The process itself: ~0.5 GiB.
WORKER_GIB = 0.35
BASE_GIB = 0.5
# Headroom left on a disk: logs, the code bundle, the filesystem's own reserve.
DISK_HEADROOM = 0.9


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def plan(
    *,
    files: int,
    input_bytes: int,
    hosts: int,
    cache_size: int,
    test_fraction: float,
    workers: int,
    free_disk_bytes: int | None,
    processing_type: str = "",
    training_type: str = "",
    training_count: int = 1,
    volume_gib: float = DEFAULT_VOLUME_GIB,
) -> Plan:
    result = Plan()
    image_bytes = cache_size * cache_size * 3
    cached_share = 1.0 - test_fraction
    host_cache = files * cached_share * image_bytes
    host_test = input_bytes * test_fraction
    total_files = files * hosts
    total_cache = host_cache * hosts
    result.figures = {
        "files_this_host": files,
        "files_estimated_total": total_files,
        "input_gib_this_host": input_bytes / GIB,
        "cache_gib_this_host": host_cache / GIB,
        "cache_gib_estimated_total": total_cache / GIB,
    }
    result.lines.append(
        f"dataset: {files} files ({input_bytes / GIB:.2f} GiB) on this host, about "
        f"{total_files} on {hosts} host(s); cache {cache_size} px = {image_bytes / 2**20:.2f} MiB "
        f"an image, about {total_cache / GIB:.2f} GiB in all"
    )

    # Preprocess, this host.
    preprocess_disk = host_cache + host_test + files * 512
    memory = BASE_GIB + workers * WORKER_GIB
    line = (f"preprocess (per host): disk {preprocess_disk / GIB:.2f} GiB for shards and test "
            f"copies, memory ~{memory:.1f} GiB ({workers} workers; flat in the image count)")  # fmt: skip
    if processing_type:
        spec = instance_type(processing_type)
        line += f"; {processing_type} has {spec.memory_gib:g} GiB"
        if memory > spec.memory_gib:
            result.problems.append(
                f"preprocess needs ~{memory:.1f} GiB with {workers} workers but "
                f"{processing_type} has {spec.memory_gib:g} GiB: choose a larger "
                "training.processing_instance_type"
            )
    if free_disk_bytes is not None:
        line += f", {free_disk_bytes / GIB:.1f} GiB disk free"
        if preprocess_disk > DISK_HEADROOM * free_disk_bytes:
            result.problems.append(
                f"preprocess needs {preprocess_disk / GIB:.1f} GiB of disk on this host but "
                f"{free_disk_bytes / GIB:.1f} GiB is free: raise the PreprocessInstanceCount "
                f"pipeline parameter (each host gets 1/N of the images; now {hosts})"
            )
    result.lines.append(line)

    # Training.
    if training_type:
        spec = instance_type(training_type)
        disk = spec.disk_gib(volume_gib) * GIB
        checkpoints = 2 * GIB
        where = "NVMe instance store" if spec.local_disk_gib is not None else "EBS volume"
        need = (total_cache + checkpoints) / GIB
        line = (f"training on {training_count} x {training_type}: disk {need:.1f} "
                f"GiB of {disk / GIB:g} GiB ({where})")  # fmt: skip
        if total_cache + checkpoints > DISK_HEADROOM * disk:
            bigger = [
                name for name, other in INSTANCE_TYPES.items()
                if other.is_gpu and other.disk_gib(volume_gib) * GIB * DISK_HEADROOM
                > total_cache + checkpoints
            ]  # fmt: skip
            result.problems.append(
                f"training downloads the whole cache ({total_cache / GIB:.1f} GiB) but "
                f"{training_type} has {disk / GIB:g} GiB of disk: set training.instance_type "
                f"(TrainingInstanceType) to one with more local disk"
                + (f", e.g. {bigger[0]}" if bigger else "")
                + ", or lower training.image_size (ImageSize; the cache is 256/224 of it)"
            )
        processes = max(1, spec.gpus)
        if spec.is_gpu and total_cache <= CACHE_DEVICE_MEMORY_SHARE * spec.gpu_memory_gib * GIB:
            path = f"resident on the GPU ({spec.gpu_memory_gib:g} GiB)"
        elif total_cache <= HOST_MEMORY_SHARE * spec.memory_gib * GIB / processes:
            path = f"resident in host memory ({spec.memory_gib:g} GiB)"
        else:
            path = (f"streamed from local disk (the cache exceeds "
                    f"{HOST_MEMORY_SHARE:.0%} of {spec.memory_gib:g} GiB host memory"
                    + (f" and {CACHE_DEVICE_MEMORY_SHARE:.0%} of the GPU's "
                       f"{spec.gpu_memory_gib:g} GiB" if spec.is_gpu else "") + ")")  # fmt: skip
        result.figures["training_cache_path"] = path.split(" (")[0]
        result.lines.append(line + f"; the cache will be {path}")
    if processing_type:
        spec = instance_type(processing_type)
        test_total = host_test * hosts
        disk = spec.disk_gib(volume_gib) * GIB
        line = f"evaluate on {processing_type}: disk {test_total / GIB:.2f} GiB of test originals"
        if test_total > DISK_HEADROOM * disk:
            result.problems.append(
                f"evaluation downloads the test split ({test_total / GIB:.1f} GiB) but "
                f"{processing_type} has a {disk / GIB:g} GiB volume: choose a "
                "training.processing_instance_type with local disk or a smaller test fraction"
            )
        result.lines.append(line)
    return result
