"""What a step runner gets: the step's resolved arguments and where its files go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dogbreeds.local_executor.s3_mapping import ContainerPaths, LocalS3


@dataclass(frozen=True)
class StepContext:
    """One step's run: `arguments` has every expression already resolved."""

    name: str
    arguments: dict[str, Any]
    job_name: str
    step_dir: Path
    local_s3: LocalS3
    echo: TextIO | None = None
    console: TextIO | None = None  # the run's progress stream: per-epoch metric lines go there

    @property
    def paths(self) -> ContainerPaths:
        return ContainerPaths(self.step_dir)

    @property
    def log_path(self) -> Path:
        return self.step_dir / "step.log"
