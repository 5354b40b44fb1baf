"""Local executor: runs a rendered SageMaker pipeline definition on one machine (see README.md)."""

from dogbreeds.local_executor.definition import PipelineDefinition, parse_definition
from dogbreeds.local_executor.errors import DefinitionError, LocalExecutorError, StepFailedError
from dogbreeds.local_executor.executor import ExecutionResult, StepOutcome, local_s3_root, run_pipeline

__all__ = [
    "DefinitionError",
    "ExecutionResult",
    "LocalExecutorError",
    "PipelineDefinition",
    "StepFailedError",
    "StepOutcome",
    "local_s3_root",
    "parse_definition",
    "run_pipeline",
]
