"""`dogbreeds pipeline start|status|watch|list` against a moto server (Stubber where moto has no
step listing or state changes), and `dogbreeds local pipeline status|list` on execution records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from aws_test_env import ACCOUNT, REGION
from botocore.stub import Stubber

from dogbreeds import pipeline_executions
from dogbreeds.cli import main
from dogbreeds.last_dataset import record_last_dataset

PIPELINE = "dogbreeds-dev-training"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
DEFINITION = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "DatasetS3Uri", "Type": "String", "DefaultValue": "s3://bucket/datasets/default/"},
        {"Name": "Epochs", "Type": "Integer", "DefaultValue": 10},
        {"Name": "Backbone", "Type": "String", "DefaultValue": "resnet18",
         "EnumValues": ["resnet18", "efficientnet_lite0"]},
    ],
    "Steps": [],
}
JOB = "pipelines-abc123-Train-x1"


@pytest.fixture
def pipeline(aws, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # the last-dataset record goes to ./.local of the test only
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_pipeline(
        PipelineName=PIPELINE, PipelineDefinition=json.dumps(DEFINITION),
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/pipeline",
    )
    return sagemaker


def _executions(sagemaker) -> list[dict]:
    return sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]


def test_start_checks_parameters_and_uses_the_last_uploaded_dataset(pipeline, capsys):
    record_last_dataset("dev", "s3://data/datasets/abc/")
    assert main(["pipeline", "start", "--env", "dev", "--param", "Epochs=3"]) == 0
    out = capsys.readouterr().out
    [execution] = _executions(pipeline)
    arn = execution["PipelineExecutionArn"]
    assert f"execution: {arn}" in out and f"dogbreeds pipeline watch --env dev {arn}" in out
    values = {p["Name"]: p["Value"] for p in pipeline.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=arn)["PipelineParameters"]}
    assert values == {"DatasetS3Uri": "s3://data/datasets/abc/", "Epochs": "3"}

    assert main(["pipeline", "list", "--env", "dev"]) == 0
    listed = capsys.readouterr().out
    row = next(line for line in listed.splitlines() if arn.rsplit("/", 1)[-1] in line)
    assert "DatasetS3Uri=s3://data/datasets/abc/ Epochs=3" in row


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("Epoch=3", "unknown parameter(s) Epoch; this pipeline has: Backbone, DatasetS3Uri, Epochs"),
        ("Epochs=three", "parameter 'Epochs' is Integer; 'three' is not a valid Integer"),
        ("Backbone=vgg", "parameter 'Backbone' must be one of 'resnet18', 'efficientnet_lite0'"),
        ("Epochs", "--param expects NAME=VALUE"),
    ],
)
def test_start_refuses_a_bad_parameter_before_starting_anything(pipeline, capsys, param, message):
    code = main(["pipeline", "start", "--env", "dev", "--dataset", "s3://d/x/", "--param", param])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert _executions(pipeline) == []


def test_start_without_any_dataset_says_how_to_get_one(pipeline, capsys):
    assert main(["pipeline", "start", "--env", "dev"]) == 2
    err = capsys.readouterr().err
    assert "pass --dataset s3://... or run `dogbreeds dataset upload DIR --env dev`" in err
    assert _executions(pipeline) == []


def _steps(status: str) -> list[dict]:
    started = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return [
        {"StepName": "Preprocess", "StepStatus": "Succeeded", "StartTime": started,
         "EndTime": datetime(2024, 5, 1, 12, 3, 5, tzinfo=UTC),
         "Metadata": {"ProcessingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/pre-1"}},
         },
        {"StepName": "Train", "StepStatus": status, "StartTime": started,
         "EndTime": datetime(2024, 5, 1, 12, 10, tzinfo=UTC),
         **({"FailureReason": "AlgorithmError: out of memory"} if status == "Failed" else {}),
         "Metadata": {"TrainingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{JOB}"}}},
    ]


def _describe(arn: str, status: str) -> dict:
    return {"PipelineExecutionArn": arn, "PipelineExecutionStatus": status}


@pytest.fixture
def stubbed(aws, monkeypatch):  # noqa: F811
    sagemaker = boto3.client("sagemaker")
    logs = boto3.client("logs")
    monkeypatch.setattr(pipeline_executions, "make_clients", lambda region: (sagemaker, logs))
    with Stubber(sagemaker) as stub:
        yield stub, logs
        stub.assert_no_pending_responses()


def test_status_of_the_newest_execution_shows_a_failed_steps_log_tail(stubbed, capsys):
    stub, logs = stubbed
    group = "/aws/sagemaker/TrainingJobs"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=f"{JOB}/algo-1-1714564800")
    now = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=f"{JOB}/algo-1-1714564800", logEvents=[
        {"timestamp": now + i, "message": f"epoch {i}"} for i in range(40)
    ] + [{"timestamp": now + 40, "message": "RuntimeError: CUDA out of memory"}])
    arn = f"{PIPELINE_ARN}/execution/abc123"
    stub.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [
        {"PipelineExecutionArn": arn, "PipelineExecutionStatus": "Failed"}]},
        {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 1})
    stub.add_response("describe_pipeline_execution",
                      {**_describe(arn, "Failed"), "FailureReason": "step Train"})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": _steps("Failed")},
                      {"PipelineExecutionArn": arn, "SortOrder": "Ascending"})

    assert main(["pipeline", "status", "--env", "dev"]) == 1
    out = capsys.readouterr().out
    assert f"execution {arn}: Failed (step Train)" in out
    preprocess = next(line for line in out.splitlines() if line.startswith("Preprocess"))
    assert "Succeeded" in preprocess and "2024-05-01 12:00:00" in preprocess and "3m05s" in preprocess
    assert "reason: AlgorithmError: out of memory" in out
    assert "logs: CloudWatch /aws/sagemaker/ProcessingJobs, streams pre-1/*" in out
    assert f"logs: CloudWatch {group}, streams {JOB}/*" in out
    tail = out.split(f"--- last 30 log lines of step 'Train' ({JOB}) ---")[1]
    assert "epoch 11\n" in tail and "epoch 10\n" not in tail
    assert tail.rstrip().endswith("RuntimeError: CUDA out of memory\n---")


@pytest.mark.parametrize(("final", "code"), [("Succeeded", 0), ("Failed", 1)])
def test_start_wait_polls_until_the_execution_ends(stubbed, capsys, tmp_path, monkeypatch, final, code):
    stub, _ = stubbed
    monkeypatch.chdir(tmp_path)
    arn = f"{PIPELINE_ARN}/execution/xyz"
    stub.add_response("describe_pipeline", {"PipelineArn": PIPELINE_ARN,
                                            "PipelineDefinition": json.dumps(DEFINITION)},
                      {"PipelineName": PIPELINE})
    stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, {
        "PipelineName": PIPELINE,
        "PipelineParameters": [{"Name": "Backbone", "Value": "efficientnet_lite0"},
                               {"Name": "DatasetS3Uri", "Value": "s3://d/x/"}]})
    for status in ("Executing", "Executing", final, final):
        stub.add_response("describe_pipeline_execution", _describe(arn, status),
                          {"PipelineExecutionArn": arn})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": _steps(final)[:1]})

    result = main(["pipeline", "start", "--env", "dev", "--dataset", "s3://d/x/", "--param",
                   "Backbone=efficientnet_lite0", "--wait", "--poll-seconds", "0"])
    out = capsys.readouterr().out
    assert result == code
    assert out.count(f"waiting for {arn} (Executing)") == 2
    assert f"execution ended: {final}" in out and "Preprocess" in out


def _record(workdir, execution_id: str, status: str, parameters: dict, steps: dict, **extra) -> None:
    folder = workdir / "executions" / execution_id
    folder.mkdir(parents=True)
    (folder / "Train").mkdir()
    (folder / "Train" / "step.log").write_text("training\n")
    (folder / "execution.json").write_text(json.dumps({
        "execution_id": execution_id, "status": status, "failed_step": extra.get("failed_step"),
        "failure_reason": extra.get("failure_reason"), "parameters": parameters,
        "defaults": {"Epochs": 10, "Backbone": "resnet18"}, "finished": 0.0,
        "steps": {name: {"name": name, "type": kind, "status": s, "seconds": secs, "detail": detail}
                  for name, (kind, s, secs, detail) in steps.items()},
        "properties": {},
    }))


def test_local_status_and_list_read_the_execution_records(tmp_path, capsys):
    _record(tmp_path, "20240501T120000-aaaaaa", "Succeeded", {"Epochs": 10, "Backbone": "resnet18"},
            {"Train": ("Training", "Succeeded", 65.0, "")})
    _record(tmp_path, "20240502T120000-bbbbbb", "Failed", {"Epochs": 2, "Backbone": "resnet18"},
            {"Preprocess": ("Processing", "Cached", 0.1, "reused the outputs of execution x"),
             "Train": ("Training", "Failed", 3.0, "exit status 1")},
            failed_step="Train", failure_reason="exit status 1")

    assert main(["local", "pipeline", "status", "--workdir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "execution 20240502T120000-bbbbbb: Failed (exit status 1)" in out
    assert "reason: exit status 1" in out
    assert f"logs: {tmp_path}/executions/20240502T120000-bbbbbb/Train/step.log" in out

    assert main(["local", "pipeline", "status", "--workdir", str(tmp_path), "20240501T120000-aaaaaa"]) == 0
    train = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Train"))
    assert "Succeeded" in train and "1m05s" in train

    assert main(["local", "pipeline", "list", "--workdir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("20240502T120000-bbbbbb") and lines[1].endswith("Epochs=2")
    assert "2024-05-01 12:00:00" in lines[2] and lines[2].split()[-1] == "12:00:00"

    assert main(["local", "pipeline", "status", "--workdir", str(tmp_path), "nope"]) == 2
    assert "no execution 'nope'" in capsys.readouterr().err


def test_watch_refreshes_the_status_until_the_execution_ends(stubbed, capsys):
    stub, _ = stubbed
    arn = f"{PIPELINE_ARN}/execution/w1"
    for status in ("Executing", "Succeeded"):
        stub.add_response("describe_pipeline_execution", _describe(arn, status),
                          {"PipelineExecutionArn": arn})
        stub.add_response("list_pipeline_execution_steps",
                          {"PipelineExecutionSteps": _steps("Succeeded")[:1]},
                          {"PipelineExecutionArn": arn, "SortOrder": "Ascending"})

    assert main(["pipeline", "watch", "--env", "dev", arn, "--poll-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"execution {arn}: ") == 2  # the table, printed on each check
    assert f"waiting for {arn} (Executing)" in out
    assert out.rstrip().endswith("execution ended: Succeeded")
