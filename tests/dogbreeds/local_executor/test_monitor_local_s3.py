"""Local mode: a processing step that takes s3:// URIs as arguments reads and writes the executor's
local S3 folder, through the same monitor_io the monitors use."""

from __future__ import annotations

import io
import json
from pathlib import Path

from repo_paths import REPO_ROOT

from dogbreeds.local_executor import run_pipeline
from dogbreeds.local_executor.s3_mapping import LOCAL_S3_ROOT_ENV
from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_io

# Local steps run under the import guard of the image they name.
PROCESSING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312"

# The step copies one object to another with monitor_io, both named by s3:// URIs.
STEP_SCRIPT = (
    "import sys; from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_io; "
    "data = b''.join(monitor_io.iter_lines(sys.argv[1])); "
    "monitor_io.write_bytes(sys.argv[2], data.upper())"
)


def _definition(source: str, target: str, worktree: Path) -> dict:
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Source", "Type": "String", "DefaultValue": source}],
        "Steps": [
            {
                "Name": "CopyThroughS3",
                "Type": "Processing",
                "Arguments": {
                    "AppSpecification": {
                        "ImageUri": PROCESSING_IMAGE,
                        "ContainerEntrypoint": ["python3", "-c", STEP_SCRIPT],
                        "ContainerArguments": [{"Get": "Parameters.Source"}, target],
                    },
                    "ProcessingResources": {
                        "ClusterConfig": {
                            "InstanceCount": 1,
                            "InstanceType": "ml.m5.large",
                            "VolumeSizeInGB": 1,
                        }
                    },
                    "RoleArn": "arn:aws:iam::000000000000:role/local",
                    "Environment": {"PYTHONPATH": str(worktree)},
                },
            }
        ],
    }


def test_processing_steps_resolve_s3_uris_in_their_arguments_under_the_local_s3_folder(tmp_path):
    assert LOCAL_S3_ROOT_ENV == monitor_io.LOCAL_S3_ROOT_ENV  # the executor and the jobs agree
    workdir = tmp_path / "work"
    source = workdir / "s3" / "dogbreeds-local" / "in" / "capture.jsonl"
    source.parent.mkdir(parents=True)
    source.write_text('{"a": 1}\n{"b": 2}\n')
    definition = _definition(
        "s3://dogbreeds-local/in/capture.jsonl", "s3://dogbreeds-local/out/2026/11/copy.jsonl", REPO_ROOT
    )
    result = run_pipeline(json.dumps(definition), workdir=workdir, stream=io.StringIO(), use_cache=False)
    assert result.succeeded, result.failure_reason
    copied = workdir / "s3" / "dogbreeds-local" / "out" / "2026" / "11" / "copy.jsonl"
    assert copied.read_text() == '{"A": 1}\n{"B": 2}\n'
