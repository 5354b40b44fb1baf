"""`dogbreeds local models list|show`: metrics from each version's evaluation.json in the local S3
folder, the threshold and dataset of the execution that registered it, and the live version."""

from __future__ import annotations

import json
from pathlib import Path

from dogbreeds.cli import main
from dogbreeds.local_registry import LocalModelRegistry

BUCKET = "dogbreeds-dev-data-000000000000-us-east-1"


def evaluation(accuracy: float, top5: float, f1: float) -> dict:
    return {
        "multiclass_classification_metrics": {
            "accuracy": {"value": accuracy, "standard_deviation": "NaN"},
            "top_5_accuracy": {"value": top5, "standard_deviation": "NaN"},
            "macro_f1": {"value": f1, "standard_deviation": "NaN"},
        }
    }


def write(workdir: Path, key: str, document: dict) -> str:
    path = workdir / "s3" / BUCKET / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return f"s3://{BUCKET}/{key}"


def add_version(workdir: Path, run: str, scores: tuple[float, float, float] | None) -> dict:
    """A version registered by execution `run` (threshold 0.5, its own dataset); no evaluation.json
    is written when `scores` is None."""
    uri = f"s3://{BUCKET}/runs/{run}/evaluation/evaluation.json"
    if scores is not None:
        write(workdir, f"runs/{run}/evaluation/evaluation.json", evaluation(*scores))
    execution = workdir / "executions" / run / "execution.json"
    execution.parent.mkdir(parents=True)
    execution.write_text(json.dumps({
        "execution_id": run,
        "parameters": {"AccuracyThreshold": 0.5, "DatasetS3Uri": f"s3://{BUCKET}/datasets/{run}/"},
    }))  # fmt: skip
    return LocalModelRegistry(workdir).register(
        group="dogbreeds-dev-models",
        model_data_url=f"s3://{BUCKET}/runs/{run}/model.tar.gz",
        model_metrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}},
        drift_check_baselines={
            "ModelQuality": {"Constraints": {"S3Uri": f"s3://{BUCKET}/runs/{run}/quality/constraints.json"}}
        },
        source={"pipeline_execution_id": run, "step": "Register-RegisterModel"},
    )


def test_list_shows_metrics_threshold_live_and_where_to_serve(tmp_path: Path, capsys) -> None:
    add_version(tmp_path, "run1", (0.75, 0.95, 0.7))
    add_version(tmp_path, "run2", (0.8125, 0.9875, 0.8))
    add_version(tmp_path, "run3", None)
    LocalModelRegistry(tmp_path).set_status(1, "Approved")

    assert main(["local", "models", "list", "--workdir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "group dogbreeds-dev-models"
    assert lines[1].split() == [
        "VERSION", "STATUS", "CREATED", "ACCURACY", "TOP5", "F1", "THRESHOLD", "LIVE", "SERVE"
    ]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["1"].split()[3:8] == ["0.7500", "0.9500", "0.7000", "0.5", "live"]
    assert rows["2"].split()[3:7] == ["0.8125", "0.9875", "0.8000", "0.5"]
    assert "newer than live" in rows["2"]
    assert f"--version 2  {tmp_path}/s3/{BUCKET}/runs/run2/model.tar.gz" in rows["2"]
    assert rows["3"].split()[3:6] == ["n/a", "n/a", "n/a"]


def test_show_compares_with_live_and_names_baselines_source_and_history(tmp_path: Path, capsys) -> None:
    add_version(tmp_path, "run1", (0.75, 0.95, 0.7))
    add_version(tmp_path, "run2", (0.8125, 0.9875, 0.8))
    registry = LocalModelRegistry(tmp_path)
    registry.set_status(1, "Approved")
    registry.set_status(2, "Rejected", reason="too slow")

    assert main(["local", "models", "show", "2", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dogbreeds-dev-models version 2: Rejected" in out
    assert "live: version 1" in out
    assert "accuracy         0.8125  (live v1: 0.7500, +0.0625)" in out
    assert "top_5_accuracy   0.9875  (live v1: 0.9500, +0.0375)" in out
    assert "macro_f1         0.8000  (live v1: 0.7000, +0.1000)" in out
    assert "threshold passed 0.5" in out
    baselines = out.split("baselines:")[1].splitlines()[1].split()
    assert baselines == ["ModelQuality.Constraints", f"s3://{BUCKET}/runs/run2/quality/constraints.json"]
    assert "training execution: run2" in out
    archive = f"{tmp_path}/s3/{BUCKET}/runs/run2/model.tar.gz"
    assert f"serve: dogbreeds local serve --version 2  (or --model {archive})" in out
    assert f"dataset: s3://{BUCKET}/datasets/run2/" in out
    history = out.split("approval history:")[1].split()
    assert history[1::2][:2] == ["PendingManualApproval", "Rejected"] and "(too slow)" in out


def test_show_without_evaluation_or_execution_prints_na_and_unknown(tmp_path: Path, capsys) -> None:
    LocalModelRegistry(tmp_path).register(group="g", model_data_url="s3://b/m.tar.gz")
    assert main(["local", "models", "show", "1", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy         n/a" in out and "threshold passed n/a" in out
    assert "training execution: unknown" in out and "dataset: unknown" in out
    assert "live: none" in out
