"""Evaluation step (SageMaker Processing): score the trained model on the test split.

The model is loaded from ``model.tar.gz`` through the artifact's own ``code/inference.py`` and every
test image goes through ``input_fn`` -> ``predict_fn`` -> ``output_fn`` as raw bytes, exactly as an
endpoint request would, so the accuracy the pipeline gates on is the accuracy production serves.

Outputs (paths per the container README):

* ``--evaluation-dir/evaluation.json``: Model Monitor's multiclass model-quality shape (accuracy,
  top-5, weighted and macro precision/recall/F1, confusion matrix) plus per-class metrics; the
  pipeline's gate reads ``multiclass_classification_metrics.accuracy.value``.
* ``--quality-baseline-dir``: ``predictions.csv`` (inference_id, true_label, predicted_label,
  confidence) with its ``statistics.json`` (plus ``per_class_metrics``) / ``constraints.json``:
  the model-quality baseline.
* ``--prediction-baseline-dir``: ``statistics.json`` / ``constraints.json`` of the prediction side
  (confidence and predicted-class distributions): the baseline for drift in live predictions.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..data import class_names
from ..monitoring import model_monitor_files
from ..serving import serving_handlers

TOP_K_REPORTED = 5
REQUEST_CONTENT_TYPE = "application/x-image"


@dataclass(frozen=True)
class ScoredImage:
    """One test image's outcome."""

    inference_id: str
    relative_path: str
    true_label: str
    predicted_label: str
    confidence: float
    top_k: list[str]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("/opt/ml/processing/model"),
        help="folder holding model.tar.gz (or an unpacked model directory)",
    )
    parser.add_argument(
        "--test-dir",
        type=Path,
        default=Path("/opt/ml/processing/test"),
        help="test split: one folder per class of original image files",
    )
    parser.add_argument(
        "--evaluation-dir", type=Path, default=Path("/opt/ml/processing/evaluation")
    )
    parser.add_argument(
        "--quality-baseline-dir", type=Path, default=Path("/opt/ml/processing/quality_baseline")
    )
    parser.add_argument(
        "--prediction-baseline-dir",
        type=Path,
        default=Path("/opt/ml/processing/prediction_baseline"),
    )
    parser.add_argument(
        "--progress-every", type=int, default=100, help="print progress after this many images"
    )
    return parser.parse_args(argv)  # fmt: skip


def test_images(test_dir: Path) -> list[tuple[Path, str]]:
    """(file, normalised class name) for every file under ``test_dir/<class>/``, sorted."""
    if not test_dir.is_dir():
        raise FileNotFoundError(f"test folder {test_dir} does not exist")
    files = []
    for class_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        label = class_names.normalise_class_name(class_dir.name)
        files.extend((path, label) for path in sorted(class_dir.iterdir()) if path.is_file())
    if not files:
        raise ValueError(f"{test_dir} holds no images in class folders (<test-dir>/<class>/<file>)")
    return files


def inference_id_for(relative_path: str) -> str:
    """A stable id per test file, so baselines from two runs line up row by row."""
    return "eval-" + hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:20]


def score(
    service: serving_handlers.HandlerService,
    files: list[tuple[Path, str]],
    test_dir: Path,
    progress_every: int,
) -> tuple[list[ScoredImage], dict[str, str]]:
    """Predict every file through the handler; returns scored images and failures (path -> why)."""
    scored, failures = [], {}
    started = time.perf_counter()
    for number, (path, label) in enumerate(files, start=1):
        relative = path.relative_to(test_dir).as_posix()
        result = service.invoke(path.read_bytes(), REQUEST_CONTENT_TYPE, "application/json")
        if result.status != 200:
            failures[relative] = f"{result.status}: {result.body.decode('utf-8', 'replace')}"
        else:
            prediction = json.loads(result.body)["predictions"][0]
            scored.append(
                ScoredImage(
                    inference_id=inference_id_for(relative),
                    relative_path=relative,
                    true_label=label,
                    predicted_label=prediction["breed"],
                    confidence=float(prediction["confidence"]),
                    top_k=[entry["breed"] for entry in prediction["top_k"]],
                )
            )
        if number % progress_every == 0 or number == len(files):
            rate = number / max(time.perf_counter() - started, 1e-9)
            print(f"evaluated {number}/{len(files)} images ({rate:.1f} images/s, "
                  f"{len(failures)} failed)", flush=True)  # fmt: skip
    return scored, failures


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_outputs(
    args: argparse.Namespace,
    scored: list[ScoredImage],
    failures: dict[str, str],
    classes: list[str],
    model_version: str,
) -> dict:
    """Write evaluation.json and both baselines; returns evaluation.json's content."""
    true_labels = [s.true_label for s in scored]
    predicted = [s.predicted_label for s in scored]
    top_k = min(TOP_K_REPORTED, len(classes))
    in_top_k = [s.true_label in s.top_k[:top_k] for s in scored]
    metrics = model_monitor_files.multiclass_metrics(
        true_labels, predicted, extra={f"top_{top_k}_accuracy": in_top_k}
    )
    evaluation = {
        "version": 0.0,
        "dataset": {"item_count": len(scored), "failed_count": len(failures),
                    "class_count": len(classes)},
        "model_version": model_version,
        "multiclass_classification_metrics": metrics,
        "per_class_metrics": model_monitor_files.per_class_metrics(true_labels, predicted, classes),
        "failures": failures,
    }  # fmt: skip
    write_json(args.evaluation_dir / "evaluation.json", evaluation)

    quality = args.quality_baseline_dir
    quality.mkdir(parents=True, exist_ok=True)
    with (quality / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["inference_id", "true_label", "predicted_label", "confidence"])
        for s in scored:
            writer.writerow(
                [s.inference_id, s.true_label, s.predicted_label, f"{s.confidence:.6f}"]
            )
    quality_statistics = model_monitor_files.model_quality_statistics(metrics, len(scored))
    # An extra top-level key (Model Monitor reads only its own): the monitor's report compares
    # each breed's live recall with this.
    quality_statistics["per_class_metrics"] = evaluation["per_class_metrics"]
    write_json(quality / "statistics.json", quality_statistics)
    write_json(quality / "constraints.json", model_monitor_files.model_quality_constraints(metrics))

    features = [
        model_monitor_files.numerical_feature_statistics(
            "confidence", [s.confidence for s in scored]
        ),
        model_monitor_files.string_feature_statistics("predicted_label", predicted),
    ]
    prediction_dir = args.prediction_baseline_dir
    write_json(prediction_dir / "statistics.json",
               model_monitor_files.data_quality_statistics(features, len(scored)))  # fmt: skip
    write_json(
        prediction_dir / "constraints.json",
        model_monitor_files.data_quality_constraints(
            features, string_domains={"predicted_label": classes}
        ),
    )
    return evaluation


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="evaluate-model-") as scratch:
        try:
            model_dir = serving_handlers.resolve_model_dir(args.model_dir, Path(scratch))
            service = serving_handlers.HandlerService(model_dir)
            files = test_images(args.test_dir)
        except (serving_handlers.ModelLoadError, FileNotFoundError, ValueError) as error:
            print(f"evaluate: {error}", file=sys.stderr)
            return 2
        classes = list(service.model.classes)
        unknown = sorted({label for _, label in files} - set(classes))
        if unknown:
            print(f"evaluate: test classes {unknown} are not among the model's classes "
                  f"{classes}; the test split and the model come from different datasets",
                  file=sys.stderr)  # fmt: skip
            return 2
        print(f"evaluating model {service.model_version} on {len(files)} test images "
              f"of {len({label for _, label in files})} classes", flush=True)  # fmt: skip
        scored, failures = score(service, files, args.test_dir, max(1, args.progress_every))
        if not scored:
            print(f"evaluate: every test image failed, e.g. {next(iter(failures.items()))}",
                  file=sys.stderr)  # fmt: skip
            return 1
        evaluation = write_outputs(args, scored, failures, classes, service.model_version)
    metrics = evaluation["multiclass_classification_metrics"]
    print("evaluation: " + " ".join(
        f"{name}={metrics[name]['value']:.4f}"
        for name in ("accuracy", f"top_{min(TOP_K_REPORTED, len(classes))}_accuracy",
                     "macro_f1", "weighted_f1")
    ), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
