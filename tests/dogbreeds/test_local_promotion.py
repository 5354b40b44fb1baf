"""`dogbreeds local models promote`: dev's version promoted into prod's local group, gated on dev's
local record (registry history, alarm_states.json, alarm_history.jsonl, metrics.jsonl,
last_run.json), with each gate passing and failing, and --force."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contract import monitoring_metrics as mm
from contract.naming import Names
from contract.promotion_gates import gate_alarm_names
from contract.settings import load_environment
from dogbreeds.cli import main
from dogbreeds.local_promotion import live_since
from dogbreeds.local_registry import LocalModelRegistry
from dogbreeds.promotion import PROMOTED_FROM_ARN

DEV, PROD = Names("dogbreeds", "dev"), Names("dogbreeds", "prod")
DEV_BUCKET = DEV.bucket("000000000000", "us-east-1")
PROD_BUCKET = PROD.bucket("000000000000", "us-east-1")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class LocalWorld:
    def __init__(self, workdir: Path) -> None:
        from cdk_helpers import project_context

        self.workdir = workdir
        self.registry = LocalModelRegistry(workdir)
        run = f"s3://{DEV_BUCKET}/pipeline-runs/exec1"
        for key, body in {
            "pipeline-runs/exec1/Train/model.tar.gz": "model",
            "pipeline-runs/exec1/Evaluate/evaluation.json": "{}",
            "pipeline-runs/exec1/Preprocess/baseline/constraints.json": "{}",
            "pipeline-runs/exec1/Evaluate/prediction/predictions.json": "{}",
        }.items():
            path = workdir / "s3" / DEV_BUCKET / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        package = self.registry.register(
            group=DEV.model_package_group,
            model_data_url=f"{run}/Train/model.tar.gz",
            model_metrics={"ModelQuality": {"Statistics": {"S3Uri": f"{run}/Evaluate/evaluation.json"}}},
            drift_check_baselines={
                "ModelDataQuality": {"Constraints": {"S3Uri": f"{run}/Preprocess/baseline/constraints.json"}}
            },
            inference_specification={
                "Containers": [
                    {
                        "Image": "img",
                        "ModelDataUrl": f"{run}/Train/model.tar.gz",
                        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                    }
                ]
            },  # fmt: skip
            customer_metadata_properties={"PredictionBaselineS3Uri": f"{run}/Evaluate/prediction/"},
            source={"pipeline_execution_id": "exec1"},
        )
        self.arn = package["arn"]
        self.registry.set_status(1, "Approved", DEV.model_package_group)
        self.live_since = live_since(self.registry.packages(DEV.model_package_group), 1)
        _, dev = load_environment(project_context(), "dev")
        self.alarms = gate_alarm_names(DEV, dev)
        self.monitoring = workdir / "monitoring"
        self.monitoring.mkdir(parents=True, exist_ok=True)
        self.states = {
            name: {"state": "OK", "reason": "", "updated": _iso(self.live_since)} for name in self.alarms
        }
        self._save_states()
        (self.monitoring / "last_run.json").write_text(
            json.dumps({"execution_id": "m1", "status": "Succeeded"})
        )

    def _save_states(self) -> None:
        (self.monitoring / "alarm_states.json").write_text(json.dumps(self.states))

    def alarm(self, name: str, state: str, at: datetime) -> None:
        previous = self.states[name]["state"]
        self.states[name] = {"state": state, "reason": "test", "updated": _iso(at)}
        self._save_states()
        item = {
            "AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": _iso(at),
            "HistoryItemType": "StateUpdate", "HistorySummary": f"Alarm updated from {previous} to {state}",
            "HistoryData": json.dumps(
                {"oldState": {"stateValue": previous}, "newState": {"stateValue": state}}
            ),
        }  # fmt: skip
        with (self.monitoring / "alarm_history.jsonl").open("a") as out:
            out.write(json.dumps(item) + "\n")

    def accuracy(self, value: float, labelled: int, hours: int = 20) -> None:
        dimensions = [{"Name": mm.DIMENSION_ENDPOINT, "Value": DEV.endpoint},
                      {"Name": mm.DIMENSION_MONITOR, "Value": mm.MONITOR_MODEL_QUALITY}]  # fmt: skip
        with (self.monitoring / "metrics.jsonl").open("a") as out:
            for hour in range(1, hours + 1):
                at = _iso(self.live_since + timedelta(hours=hour))
                out.write(json.dumps({"Namespace": DEV.metric_namespace, "MetricData": [
                    {"MetricName": mm.ACCURACY, "Dimensions": dimensions, "Timestamp": at, "Value": value},
                    {"MetricName": mm.LABELLED_RECORDS, "Dimensions": dimensions, "Timestamp": at,
                     "Value": labelled / hours},
                ]}) + "\n")  # fmt: skip

    def promote(self, capsys, *extra: str, hours: float = 30) -> tuple[int, str, str]:
        now = (self.live_since + timedelta(hours=hours)).isoformat()
        code = main(["local", "models", "promote", "1", "--from", "dev", "--to", "prod",
                     "--workdir", str(self.workdir), "--now", now, *extra])  # fmt: skip
        out = capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture
def world(tmp_path) -> LocalWorld:
    return LocalWorld(tmp_path)


def test_every_gate_passes_and_the_copy_lands_in_prods_bucket_and_group(world, capsys):
    world.accuracy(0.9, 400)
    code, out, err = world.promote(capsys)
    assert code == 0, out + err
    assert "note: prod promotes from staging on AWS" in out
    for gate in ("live", "live_for", "alarms", "live_accuracy"):
        assert f"pass  {gate}" in out, out
    [promoted] = world.registry.packages(PROD.model_package_group)
    assert promoted["approval_status"] == "PendingManualApproval"
    prefix = f"s3://{PROD_BUCKET}/promoted/dev/v1"
    assert promoted["model_data_url"] == f"{prefix}/model-0/model.tar.gz"
    assert (
        world.workdir / "s3" / PROD_BUCKET / "promoted/dev/v1/model-0/model.tar.gz"
    ).read_text() == "model"
    assert promoted["baseline_uris"]["ModelDataQuality.Constraints"].startswith(prefix)
    metadata = promoted["customer_metadata_properties"]
    assert metadata[PROMOTED_FROM_ARN] == world.arn and metadata["TrainingExecutionArn"] == "exec1"
    assert metadata["PredictionBaselineS3Uri"].startswith(prefix)
    copied = (
        world.workdir
        / "s3"
        / PROD_BUCKET
        / "promoted/dev/v1/CustomerMetadataProperties.PredictionBaselineS3Uri"
    )
    assert (copied / "predictions.json").is_file()
    gates = json.loads((world.workdir / "s3" / PROD_BUCKET / "promoted/dev/v1/gates.json").read_text())
    assert gates["passed"] and "last local monitor run m1 (Succeeded)" in json.dumps(gates)
    # Again: found by its lineage, nothing new.
    code, out, _ = world.promote(capsys)
    assert code == 0 and "already promoted" in out
    assert len(world.registry.packages(PROD.model_package_group)) == 1


def test_not_live_long_enough(world, capsys):
    world.accuracy(0.9, 400, hours=2)
    code, out, _ = world.promote(capsys, hours=3)
    assert code == 1 and "FAIL  live_for" in out
    assert world.registry.packages(PROD.model_package_group) == []


def test_not_live_when_a_newer_version_is_approved(world, capsys):
    world.registry.register(group=DEV.model_package_group, model_data_url="s3://x/y")
    world.registry.set_status(2, "Approved", DEV.model_package_group)
    world.accuracy(0.9, 400)
    code, out, _ = world.promote(capsys)
    assert code == 1 and "FAIL  live " in out and "serves version 2, not version 1" in out


def test_an_alarm_while_live_is_refused(world, capsys):
    world.accuracy(0.9, 400)
    name = "dogbreeds-dev-monitoring-feature-drift"
    world.alarm(name, "ALARM", world.live_since + timedelta(hours=3))
    world.alarm(name, "OK", world.live_since + timedelta(hours=4))
    code, out, _ = world.promote(capsys)
    assert code == 1 and "FAIL  alarms" in out and f"{name} went to ALARM" in out


def test_gate_alarms_never_evaluated_are_missing_evidence(world, capsys):
    (world.monitoring / "alarm_states.json").write_text("{}")
    world.accuracy(0.9, 400)
    code, out, _ = world.promote(capsys)
    assert code == 1 and "not found in dev" in out


def test_low_accuracy_is_refused_and_force_records_the_override(world, capsys):
    world.accuracy(0.6, 400)
    code, out, _ = world.promote(capsys)
    assert code == 1 and "FAIL  live_accuracy" in out and "accuracy 0.600" in out
    code, _, err = world.promote(capsys, "--force")
    assert code == 2 and "--force needs --reason" in err
    code, out, _ = world.promote(capsys, "--force", "--reason", "accepted for a pilot")
    assert code == 0, out
    [promoted] = world.registry.packages(PROD.model_package_group)
    assert promoted["customer_metadata_properties"]["PromotionGates"] == "forced past live_accuracy"
    assert promoted["customer_metadata_properties"]["PromotionReason"] == "accepted for a pilot"


def test_too_few_labels_fail_in_prod(world, capsys):
    world.accuracy(0.95, 50)  # prod: min_labelled_records 200, require_labels true
    code, out, _ = world.promote(capsys)
    assert code == 1 and "50 labelled records" in out and "require_labels" in out


def test_live_since_follows_the_newest_approved_version():
    def entry(status, hour):
        return {"status": status, "at": datetime(2026, 1, 1, hour, tzinfo=UTC).isoformat()}

    packages = [
        {"version": 1, "status_history": [entry("PendingManualApproval", 0), entry("Approved", 1)]},
        {"version": 2, "status_history": [entry("PendingManualApproval", 2), entry("Approved", 3),
                                          entry("Rejected", 5)]},
    ]  # fmt: skip
    # v1 live from 1:00, replaced by v2 at 3:00, live again when v2 was rejected at 5:00.
    assert live_since(packages, 1) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert live_since(packages, 2) is None
