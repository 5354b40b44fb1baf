"""evaluate.py as a Processing-job subprocess: model.tar.gz + test split in, reports out."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import serving_models
from repo_paths import REPO_ROOT

from pipeline_code.container.dogbreeds_jobs.monitoring import model_monitor_files

EVALUATE = REPO_ROOT / "pipeline_code" / "container" / "evaluate.py"


@pytest.fixture(scope="module")
def processing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A /opt/ml/processing-like tree: model/model.tar.gz and test/<class>/<file>.

    The generated dataset is split by file: the first 8 of each class train the tiny model, the
    other 4 are the held-out test split (originals, as preprocess leaves them).
    """
    root = tmp_path_factory.mktemp("processing")
    data = serving_models.write_dataset(root / "all", breeds=3, per_breed=12, seed=11)
    train, test = root / "train", root / "test"
    for class_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for index, path in enumerate(sorted(class_dir.iterdir())):
            target = (train if index < 8 else test) / class_dir.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    model_dir = serving_models.train_tiny_model(train, root / "model_dir")
    serving_models.pack_model(model_dir, root / "model" / "model.tar.gz")
    return root


def run_evaluate(root: Path, test_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EVALUATE), "--model-dir", str(root / "model"),
         "--test-dir", str(test_dir), "--evaluation-dir", str(root / "evaluation"),
         "--quality-baseline-dir", str(root / "quality_baseline"),
         "--prediction-baseline-dir", str(root / "prediction_baseline"), "--progress-every", "4"],
        cwd=root, env=serving_models.subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(processing: Path) -> tuple[Path, subprocess.CompletedProcess]:
    result = run_evaluate(processing, processing / "test")
    assert result.returncode == 0, result.stdout + result.stderr
    return processing, result


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_evaluation_json_has_the_gate_metric_and_a_consistent_confusion_matrix(evaluated) -> None:
    root, result = evaluated
    evaluation = read_json(root / "evaluation" / "evaluation.json")
    metrics = evaluation["multiclass_classification_metrics"]
    accuracy = metrics["accuracy"]["value"]
    assert accuracy >= 0.6  # three classes: chance is 0.33; the tiny model learns them
    assert metrics["accuracy"]["standard_deviation"] == "NaN"  # fewer than 200 samples
    assert evaluation["dataset"]["item_count"] == 12 and evaluation["dataset"]["failed_count"] == 0
    confusion = metrics["confusion_matrix"]
    assert sum(sum(row.values()) for row in confusion.values()) == 12
    assert sum(confusion[c][c] for c in confusion) / 12 == pytest.approx(accuracy)
    assert metrics["top_3_accuracy"]["value"] == 1.0  # top-k over all three classes
    for name in ("weighted_precision", "weighted_recall", "weighted_f1", "macro_precision",
                 "macro_recall", "macro_f1", "accuracy_best_constant_classifier"):  # fmt: skip
        assert 0.0 <= metrics[name]["value"] <= 1.0, name
    per_class = evaluation["per_class_metrics"]
    assert {c: v["support"] for c, v in per_class.items()} == dict.fromkeys(confusion, 4)
    assert evaluation["model_version"] == "tiny-test-1"
    assert "evaluated 12/12 images" in result.stdout
    assert f"accuracy={accuracy:.4f}" in result.stdout


def test_quality_baseline_predictions_match_the_metrics(evaluated) -> None:
    root, _ = evaluated
    with (root / "quality_baseline" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert len({row["inference_id"] for row in rows}) == 12
    classes = set(json.loads((root / "model_dir" / "classes.json").read_text()))
    assert {row["true_label"] for row in rows} == classes
    assert {row["predicted_label"] for row in rows} <= classes
    assert all(0.0 < float(row["confidence"]) <= 1.0 for row in rows)
    statistics = read_json(root / "quality_baseline" / "statistics.json")
    hits = sum(row["true_label"] == row["predicted_label"] for row in rows)
    accuracy = statistics["multiclass_classification_metrics"]["accuracy"]["value"]
    assert accuracy == pytest.approx(hits / 12)
    # Per-breed recall, which the model-quality report compares live recall with.
    recall = {name: entry["recall"] for name, entry in statistics["per_class_metrics"].items()}
    assert set(recall) == classes
    for name in classes:
        mine = [row for row in rows if row["true_label"] == name]
        assert recall[name] == pytest.approx(sum(r["predicted_label"] == name for r in mine) / len(mine))
    constraints = read_json(root / "quality_baseline" / "constraints.json")
    accuracy_constraint = constraints["multiclass_classification_constraints"]["accuracy"]
    assert accuracy_constraint == {
        "threshold": accuracy,
        "comparison_operator": "LessThanThreshold",
    }


def test_prediction_baseline_describes_confidence_and_predicted_classes(evaluated) -> None:
    root, _ = evaluated
    with (root / "quality_baseline" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    statistics = read_json(root / "prediction_baseline" / "statistics.json")
    features = {f["name"]: f for f in statistics["features"]}
    confidence = features["confidence"]["numerical_statistics"]
    assert confidence["common"] == {"num_present": 12, "num_missing": 0}
    assert sum(b["count"] for b in confidence["distribution"]["kll"]["buckets"]) == 12
    assert confidence["min"] == pytest.approx(min(float(r["confidence"]) for r in rows), abs=1e-6)
    buckets = features["predicted_label"]["string_statistics"]["distribution"]["categorical"]
    assert {b["value"]: b["count"] for b in buckets["buckets"]} == dict(
        Counter(row["predicted_label"] for row in rows)
    )
    constraints = read_json(root / "prediction_baseline" / "constraints.json")
    by_name = {f["name"]: f for f in constraints["features"]}
    classes = json.loads((root / "model_dir" / "classes.json").read_text())
    assert by_name["predicted_label"]["string_constraints"]["domains"] == classes


def test_test_classes_unknown_to_the_model_fail_clearly(processing: Path, tmp_path: Path) -> None:
    stray = tmp_path / "test" / "golden_retriever"
    stray.mkdir(parents=True)
    source = next((processing / "test").rglob("*.jpg"))
    shutil.copy2(source, stray / source.name)
    result = run_evaluate(processing, tmp_path / "test")
    assert result.returncode == 2
    assert "golden_retriever" in result.stderr and "not among the model's classes" in result.stderr


def test_metrics_match_a_hand_computed_case() -> None:
    """Two classes, one mistake: values worked out by hand, with the best-constant baseline."""
    true = ["a", "a", "a", "b"]
    predicted = ["a", "a", "b", "b"]
    metrics = model_monitor_files.multiclass_metrics(true, predicted)
    value = {name: entry["value"] for name, entry in metrics.items() if name != "confusion_matrix"}
    assert value["accuracy"] == pytest.approx(0.75)
    # a: precision 1, recall 2/3; b: precision 1/2, recall 1; weights 3/4 and 1/4.
    assert value["weighted_precision"] == pytest.approx(0.75 * 1 + 0.25 * 0.5)
    assert value["macro_recall"] == pytest.approx((2 / 3 + 1) / 2)
    assert value["weighted_f1"] == pytest.approx(0.75 * 0.8 + 0.25 * (2 / 3))
    assert value["accuracy_best_constant_classifier"] == pytest.approx(0.75)
    assert value["weighted_precision_best_constant_classifier"] == pytest.approx(0.75**2)
    assert metrics["confusion_matrix"] == {"a": {"a": 2, "b": 1}, "b": {"a": 0, "b": 1}}
    many = model_monitor_files.multiclass_metrics(true * 60, predicted * 60)
    assert isinstance(many["accuracy"]["standard_deviation"], float)  # 240 >= 200 samples


def test_pipeline_chain_preprocess_train_evaluate(tmp_path: Path) -> None:
    """The real chain: preprocess's test originals and train.py's artifact, packed as SageMaker
    packs SM_MODEL_DIR, evaluated through the artifact's handlers."""
    from ml_jobs import make_dataset, run_preprocess, run_train

    images = make_dataset(tmp_path, breeds=3, per_breed=24, seed=5)
    prepared, paths = run_preprocess(images, tmp_path / "prep")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    trained = run_train(paths["cache"], tmp_path / "job", "--epochs", "6", "--batch-size", "8")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    serving_models.pack_model(tmp_path / "job" / "model", tmp_path / "model" / "model.tar.gz")
    result = run_evaluate(tmp_path, paths["test"])
    assert result.returncode == 0, result.stdout + result.stderr
    evaluation = read_json(tmp_path / "evaluation" / "evaluation.json")
    classes = json.loads((tmp_path / "job" / "model" / "classes.json").read_text())
    assert set(evaluation["multiclass_classification_metrics"]["confusion_matrix"]) <= set(classes)
    test_count = sum(1 for p in paths["test"].rglob("*") if p.is_file())
    # The split is per file by hash: ~10% of 72 images, at least 5 for this seed.
    assert evaluation["dataset"]["item_count"] == test_count and test_count >= 5
    # train.py's validation reaches 1.0 on this data; serving's transform must keep it there
    # (chance is 1/3, and a train/serve preprocessing mismatch shows up as a large drop).
    assert evaluation["multiclass_classification_metrics"]["accuracy"]["value"] >= 0.8


def test_a_truncated_model_archive_fails_the_step_with_a_clear_message(tmp_path: Path) -> None:
    archive = serving_models.truncated_archive(tmp_path / "model" / "model.tar.gz")
    (tmp_path / "test").mkdir()
    result = run_evaluate(tmp_path, tmp_path / "test")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith(f"evaluate: cannot read the model archive {archive}: ")
    assert len(result.stderr.strip().splitlines()) == 1
