"""Run a SageMaker pipeline definition on this machine, step by step, in dependency order."""

from __future__ import annotations

import dataclasses
import json
import secrets
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dogbreeds.local_executor.caching import StepCache
from dogbreeds.local_executor.conditions import check_conditions, evaluate_all
from dogbreeds.local_executor.definition import (
    PipelineDefinition,
    Step,
    check_step_type,
    parse_definition,
)
from dogbreeds.local_executor.errors import LocalExecutorError, StepFailedError
from dogbreeds.local_executor.expressions import ResolveContext, lookup_path, resolve
from dogbreeds.local_executor.processing import check_processing, run_processing
from dogbreeds.local_executor.progress import Progress, log_tail
from dogbreeds.local_executor.registration import check_registration, run_registration
from dogbreeds.local_executor.s3_mapping import LocalS3
from dogbreeds.local_executor.step_context import StepContext
from dogbreeds.local_executor.training import check_training, run_training
from dogbreeds.local_registry import LocalModelRegistry


def local_s3_root(workdir: Path | str) -> Path:
    """The folder that plays S3: `s3://bucket/key` is `<workdir>/s3/bucket/key`."""
    return Path(workdir) / "s3"


@dataclass
class StepOutcome:
    """How one step ended: Succeeded, Cached, Skipped or Failed."""

    name: str
    type: str
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ExecutionResult:
    """The run's outcome; `status` is Succeeded or Failed, as a SageMaker execution reports it."""

    execution_id: str
    status: str
    execution_dir: Path
    parameters: dict[str, Any]
    steps: dict[str, StepOutcome] = field(default_factory=dict)
    failed_step: str | None = None
    failure_reason: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


class _FailStepReachedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- step types ----------------------------------------------------------------------------------
# A runner gets the run and the step's context (arguments resolved) and returns the step's
# properties (the Describe* shape later steps read) and a detail for the console line.
StepRunner = Callable[["_Run", StepContext], tuple[dict[str, Any], str]]


@dataclass(frozen=True)
class StepType:
    """What the executor knows of one step type: how to run it, what to refuse up front, caching."""

    run: StepRunner
    check: Callable[[str, Mapping[str, Any]], None] | None = None  # (step name, arguments)
    cacheable: bool = False  # CacheConfig can reuse an earlier run's outputs


def _run_condition(run: _Run, context: StepContext) -> tuple[dict[str, Any], str]:
    try:
        outcome = evaluate_all(context.arguments["Conditions"], lambda value: value)
    except LocalExecutorError as error:
        raise StepFailedError(context.name, str(error)) from None
    run.chosen_branch[context.name] = "IfSteps" if outcome else "ElseSteps"
    return {"Outcome": outcome}, f"outcome {str(outcome).lower()}"


def _run_fail(run: _Run, context: StepContext) -> tuple[dict[str, Any], str]:
    message = context.arguments.get("ErrorMessage", "")
    run.result.properties[context.name] = {"ErrorMessage": message}
    raise _FailStepReachedError(str(message))


def _run_processing(run: _Run, context: StepContext) -> tuple[dict[str, Any], str]:
    return run_processing(context), ""


def _run_training(run: _Run, context: StepContext) -> tuple[dict[str, Any], str]:
    return run_training(context), ""


def _run_registration(run: _Run, context: StepContext) -> tuple[dict[str, Any], str]:
    source = {"pipeline_execution_id": run.result.execution_id, "step": context.name}
    properties = run_registration(context, run.registry, source)
    return properties, f"version {properties['ModelPackageVersion']}"


# Every step type local mode runs; a definition with any other is refused before anything runs.
STEP_TYPES: dict[str, StepType] = {
    "Processing": StepType(_run_processing, check_processing, cacheable=True),
    "Training": StepType(_run_training, check_training, cacheable=True),
    "Condition": StepType(_run_condition, check_conditions),
    "Fail": StepType(_run_fail),
    "RegisterModel": StepType(_run_registration, check_registration),
}


def new_execution_id() -> str:
    """Sortable by start time, unique enough for one machine, and safe in paths and job names."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def run_pipeline(
    definition: str | Mapping[str, Any] | PipelineDefinition,
    *,
    workdir: Path | str,
    parameters: Mapping[str, Any] | None = None,
    pipeline_name: str = "local-pipeline",
    stream: TextIO | None = sys.stdout,
    echo_logs: bool = False,
    use_cache: bool = True,
    execution_id: str | None = None,
) -> ExecutionResult:
    """Run every step the definition reaches; return how the execution ended.

    Definition problems (unsupported step types, unknown references or parameters, bad values)
    raise DefinitionError before any step runs. A failing step or a Fail step ends the run with
    status Failed; the result names the step and the reason.
    """
    if isinstance(definition, PipelineDefinition):
        parsed = definition
        for step in parsed.steps.values():
            check_step_type(step.name, step.type, STEP_TYPES)
    else:
        parsed = parse_definition(definition, step_types=STEP_TYPES)
    values = parsed.resolve_parameters(parameters)
    for step in parsed.steps.values():
        check = STEP_TYPES[step.type].check
        if check is not None:
            check(step.name, step.arguments)

    workdir = Path(workdir).resolve()  # steps run in their own folders: relative paths would break
    execution_id = execution_id or new_execution_id()
    execution_dir = workdir / "executions" / execution_id
    execution_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(
        parsed, values, workdir, execution_id, execution_dir, pipeline_name, stream, echo_logs, use_cache
    )
    return run.execute()


class _Run:
    def __init__(
        self,
        parsed: PipelineDefinition,
        values: dict[str, Any],
        workdir: Path,
        execution_id: str,
        execution_dir: Path,
        pipeline_name: str,
        stream: TextIO | None,
        echo_logs: bool,
        use_cache: bool,
    ) -> None:
        self.parsed = parsed
        self.workdir = workdir
        self.local_s3 = LocalS3(local_s3_root(workdir))
        self.registry = LocalModelRegistry(workdir)
        self.stream = stream
        self.echo = stream if echo_logs else None
        self.progress = Progress(len(parsed.order), stream)
        self.cache = StepCache(workdir / "cache", self.local_s3, self.progress.say) if use_cache else None
        self.result = ExecutionResult(execution_id, "Executing", execution_dir, values)
        self.pipeline_name = pipeline_name
        self.chosen_branch: dict[str, str] = {}
        self._property_files: dict[tuple[str, str], Any] = {}
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self.started = started
        arn = f"arn:aws:sagemaker:local:000000000000:pipeline/{pipeline_name.lower()}"
        self.context = ResolveContext(
            parameters=values,
            execution={
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": f"{arn}/execution/{execution_id}",
                "PipelineName": pipeline_name,
                "PipelineArn": arn,
                "StartDateTime": started,
                "CurrentDateTime": started,
            },
            step_properties=self.result.properties,
            read_property_file=self._read_property_file,
            read_json_uri=self.local_s3.read_json,
        )

    def execute(self) -> ExecutionResult:
        self.progress.say(
            f"execution {self.result.execution_id}: {len(self.parsed.order)} steps, "
            f"files under {self.result.execution_dir}"
        )
        for name in self.parsed.order:
            step = self.parsed.steps[name]
            reason = self._skip_reason(step)
            if reason:
                self.progress.step_skipped(name, step.type, reason)
                self.result.steps[name] = StepOutcome(name, step.type, "Skipped", detail=reason)
                continue
            self.progress.step_started(name, step.type)
            try:
                outcome, detail = self._run_step(step)
            except _FailStepReachedError as failure:
                seconds = self.progress.step_finished(name, "Fail step reached")
                self._fail(step, seconds, failure.message)
                self.progress.say(f"pipeline failed at Fail step {name!r}: {failure.message}")
                break
            except StepFailedError as failure:
                seconds = self.progress.step_finished(name, "FAILED")
                self._fail(step, seconds, failure.reason)
                self.progress.say(f"error: {failure}")
                if failure.log_tail:
                    self.progress.say(
                        f"--- last lines of the log of step {name!r} ---\n{failure.log_tail.rstrip()}\n---"
                    )
                break
            seconds = self.progress.step_finished(name, outcome if not detail else f"{outcome}, {detail}")
            self.result.steps[name] = StepOutcome(name, step.type, outcome, seconds, detail)
        else:
            self.result.status = "Succeeded"
            self.progress.say(f"execution {self.result.execution_id} succeeded")
        self._save_record()
        return self.result

    def _fail(self, step: Step, seconds: float, reason: str) -> None:
        self.result.steps[step.name] = StepOutcome(step.name, step.type, "Failed", seconds, reason)
        self.result.status = "Failed"
        self.result.failed_step = step.name
        self.result.failure_reason = reason

    def _skip_reason(self, step: Step) -> str | None:
        if step.branch_of:
            condition, branch = step.branch_of
            if self.chosen_branch.get(condition) != branch:
                return f"not on the branch condition {condition!r} chose"
        for dependency in sorted(self.parsed.dependencies[step.name]):
            if self.result.steps[dependency].status == "Skipped":
                return f"it depends on {dependency!r}, which did not run"
        return None

    def _run_step(self, step: Step) -> tuple[str, str]:
        step_dir = self.result.execution_dir / step.name
        step_dir.mkdir(parents=True, exist_ok=True)
        self.context.execution["CurrentDateTime"] = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            arguments = resolve(step.arguments, self.context)
        except LocalExecutorError as error:
            raise StepFailedError(step.name, f"cannot resolve its arguments: {error}") from None

        step_type = STEP_TYPES[step.type]
        job_name = _job_name(self.result.execution_id, step.name)
        context = StepContext(step.name, arguments, job_name, step_dir, self.local_s3, self.echo, self.stream)
        cache_key = None
        if self.cache is not None and step.cache_enabled and step_type.cacheable:
            cache_key = self.cache.key(step.type, self._resolve_for_cache_key(step))
            entry = self.cache.lookup(cache_key, step.cache_expire_after, step.name)
            if entry is not None:
                self.result.properties[step.name] = entry["properties"]
                return "Cached", f"reused the outputs of execution {entry['execution_id']}"
        try:
            properties, detail = step_type.run(self, context)
        except StepFailedError:
            raise  # already names the step and carries its log tail
        except (LocalExecutorError, OSError, tarfile.TarError) as error:
            # Staging and packing errors (a missing input, a full disk, a broken code tarball)
            # are the step's failure, reported like one rather than as a traceback.
            raise StepFailedError(step.name, str(error), log_tail(context.log_path)) from None
        self.result.properties[step.name] = properties
        if cache_key is not None:
            try:
                self.cache.store(cache_key, step.type, self.result.execution_id, properties)
            except OSError as error:  # the step did its work; only its reuse is lost
                self.progress.say(f"step {step.name!r}: could not store its cache entry ({error})")
        return "Succeeded", detail

    def _resolve_for_cache_key(self, step: Step) -> Any:
        # The SDK puts the execution id in default output paths; SageMaker's cache ignores it, so
        # the key is taken with execution variables masked. Values from earlier steps stay real:
        # a step downstream of a cache hit then sees the same inputs as in the earlier run.
        masked = dataclasses.replace(
            self.context, execution={name: f"<{name}>" for name in self.context.execution}
        )
        return resolve(step.arguments, masked)

    def _read_property_file(self, step_name: str, file_name: str) -> Any:
        if (step_name, file_name) in self._property_files:
            return self._property_files[(step_name, file_name)]
        step = self.parsed.steps[step_name]
        declared = [p for p in step.property_files if p.get("PropertyFileName") == file_name]
        if not declared:
            raise StepFailedError(step_name, f"declares no property file {file_name!r}")
        output_name, file_path = declared[0]["OutputName"], declared[0]["FilePath"]
        outputs = self.result.properties[step_name].get("ProcessingOutputConfig", {}).get("Outputs", [])
        output = lookup_path(outputs, f"['{output_name}']", f"property file {file_name} of {step_name}")
        uri = output["S3Output"]["S3Uri"].rstrip("/") + "/" + file_path
        document = self.local_s3.read_json(uri)
        self._property_files[(step_name, file_name)] = document
        return document

    def _save_record(self) -> None:
        record = {
            "execution_id": self.result.execution_id,
            # What ListPipelineExecutions reports, for readers such as the local retrain guard.
            "pipeline_name": self.pipeline_name,
            "pipeline_execution_arn": self.context.execution["PipelineExecutionArn"],
            "started": self.started,
            "status": self.result.status,
            "failed_step": self.result.failed_step,
            "failure_reason": self.result.failure_reason,
            "parameters": self.result.parameters,
            "defaults": {name: p.default for name, p in self.parsed.parameters.items()},
            "finished": time.time(),
            "steps": {name: asdict(outcome) for name, outcome in self.result.steps.items()},
            "properties": self.result.properties,
        }
        (self.result.execution_dir / "execution.json").write_text(json.dumps(record, indent=2, default=str))


def _job_name(execution_id: str, step_name: str) -> str:
    # SageMaker job names: letters, digits and '-', at most 63 characters.
    cleaned = "".join(c if c.isalnum() else "-" for c in f"pipelines-{execution_id}-{step_name}")
    return cleaned[:63].rstrip("-")
