"""The instance types this project's jobs may run on: memory, local disk and GPU memory of each.

One table, read by the settings (only these types are allowed for preprocessing and training)
and by preprocess's plan (what each step will need on the chosen types, refused before anything
is written where a step cannot fit). Figures are AWS's published specifications; GiB throughout.

``local_disk_gib`` is the NVMe instance store SageMaker uses as the job's storage volume on those
types; on EBS-only types (None) the volume is the job's VolumeSizeInGB (DEFAULT_VOLUME_GIB).
"""

from __future__ import annotations

from dataclasses import dataclass

# What the SDK asks for when a job names no volume size (this project names none).
DEFAULT_VOLUME_GIB = 30


@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_gib: float
    local_disk_gib: float | None = None  # NVMe instance store; None: an EBS volume
    gpus: int = 0
    gpu_memory_gib: float = 0.0  # per GPU

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    def disk_gib(self, volume_gib: float = DEFAULT_VOLUME_GIB) -> float:
        return self.local_disk_gib if self.local_disk_gib is not None else volume_gib


INSTANCE_TYPES: dict[str, InstanceType] = {
    # CPU: preprocessing, evaluation (and CPU training for small experiments).
    "ml.m5.large": InstanceType(2, 8),
    "ml.m5.xlarge": InstanceType(4, 16),
    "ml.m5.2xlarge": InstanceType(8, 32),
    "ml.m5.4xlarge": InstanceType(16, 64),
    "ml.c5.xlarge": InstanceType(4, 8),
    "ml.c5.2xlarge": InstanceType(8, 16),
    "ml.c5.4xlarge": InstanceType(16, 32),
    "ml.r5.xlarge": InstanceType(4, 32),
    "ml.r5.2xlarge": InstanceType(8, 64),
    # GPU: training.
    "ml.g4dn.xlarge": InstanceType(4, 16, 125, 1, 16),
    "ml.g4dn.2xlarge": InstanceType(8, 32, 225, 1, 16),
    "ml.g4dn.4xlarge": InstanceType(16, 64, 225, 1, 16),
    "ml.g4dn.12xlarge": InstanceType(48, 192, 900, 4, 16),
    "ml.g5.xlarge": InstanceType(4, 16, 250, 1, 24),
    "ml.g5.2xlarge": InstanceType(8, 32, 450, 1, 24),
    "ml.g5.4xlarge": InstanceType(16, 64, 600, 1, 24),
    "ml.g5.12xlarge": InstanceType(48, 192, 3800, 4, 24),
    "ml.g6.xlarge": InstanceType(4, 16, 250, 1, 24),
    "ml.g6.2xlarge": InstanceType(8, 32, 450, 1, 24),
    "ml.p3.2xlarge": InstanceType(8, 61, None, 1, 16),
}

PROCESSING_TYPES = tuple(name for name, spec in INSTANCE_TYPES.items() if not spec.is_gpu)
TRAINING_TYPES = tuple(INSTANCE_TYPES)


def instance_type(name: str) -> InstanceType:
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        raise ValueError(
            f"instance type {name!r} is not in the table (pipeline_code/container/"
            f"instance_types.py); known: {', '.join(INSTANCE_TYPES)}"
        ) from None
