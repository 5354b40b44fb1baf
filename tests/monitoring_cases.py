"""Shared helpers for the monitoring tests: a real trained model, real baselines, real capture.

A tiny resnet18 (32 px) is really trained and served through the artifact's own handlers; the
training-data baseline is computed with ``image_features`` exactly as preprocess does, and the
prediction and model-quality baselines with ``evaluate.write_outputs``; capture records are
written by ``capture_format.CaptureWriter`` from real handler responses. Tests take the built
case as the ``monitor_case`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from repo_paths import REPO_ROOT
from serving_models import image_files, train_tiny_model

from dogbreeds import sample_data
from dogbreeds.traffic import apply_drift
from pipeline_code.container.dogbreeds_jobs.data import image_decoding, image_features
from pipeline_code.container.dogbreeds_jobs.monitoring import capture_format
from pipeline_code.container.dogbreeds_jobs.serving import serving_handlers
from pipeline_code.container.dogbreeds_jobs.training import evaluate

CONTAINER_DIR = REPO_ROOT / "pipeline_code" / "container"
ENDPOINT = "dogbreeds-test-endpoint"
# Every test window is the hour before WINDOW_END; records are spread over that hour.
WINDOW_END = "2026-11-20T10:00:00Z"
WINDOW_START = datetime(2026, 11, 20, 9, tzinfo=UTC)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def generate(root: Path, *, seed: int, per_breed: int, breeds: int = 3) -> Path:
    sample_data.generate(
        root, breeds=breeds, per_breed=per_breed, size=(48, 40), seed=seed, odd=False, progress=False
    )
    return root


def write_data_baseline(image_dir: Path, out_dir: Path) -> None:
    """statistics.json / constraints.json of the images, the way preprocess writes them."""
    rows = [image_features.features_from_bytes(p.read_bytes()) for p, _ in image_files(image_dir)]
    statistics = image_features.dataset_statistics(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "statistics.json").write_text(json.dumps(statistics))
    (out_dir / "constraints.json").write_text(json.dumps(image_features.dataset_constraints(statistics)))


def write_evaluation_baselines(
    service: serving_handlers.HandlerService, image_dir: Path, run: Path, classes: list[str]
) -> dict:
    """Score the images through the handler and write evaluate.py's three outputs under ``run``."""
    scored, failures = evaluate.score(service, image_files(image_dir), image_dir, progress_every=10**9)
    args = argparse.Namespace(
        evaluation_dir=run / "Evaluate" / "evaluation",
        quality_baseline_dir=run / "Evaluate" / "quality_baseline",
        prediction_baseline_dir=run / "Evaluate" / "prediction_baseline",
    )
    return evaluate.write_outputs(args, scored, failures, classes, service.model_version)


@dataclass
class MonitorCase:
    """A trained model, its baselines under ``run`` (a pipeline-run layout) and unseen images."""

    root: Path
    model_dir: Path
    run: Path
    clean_dir: Path
    classes: list[str]
    service: serving_handlers.HandlerService
    evaluation: dict


def build_case(root: Path) -> MonitorCase:
    train_dir = generate(root / "train", seed=1, per_breed=16)
    model_dir = train_tiny_model(train_dir, root / "model", epochs=6)
    classes = json.loads((model_dir / "classes.json").read_text())
    service = serving_handlers.HandlerService(model_dir)
    run = root / "pipeline-runs" / "exec-1"
    write_data_baseline(generate(root / "baseline", seed=2, per_breed=150), run / "Preprocess" / "baseline")
    evaluation = write_evaluation_baselines(
        service, generate(root / "evaluation", seed=3, per_breed=100), run, classes
    )
    clean_dir = generate(root / "clean", seed=4, per_breed=100)
    return MonitorCase(root, model_dir, run, clean_dir, classes, service, evaluation)


def capture_traffic(
    case: MonitorCase,
    capture_root: Path,
    *,
    drift: str | None = None,
    limit: int | None = None,
    start: datetime = WINDOW_START,
) -> list[dict]:
    """Send the clean images (optionally drifted) through the handler and capture each exchange.

    Returns one entry per request: inference id and true label, as `dogbreeds traffic` records.
    """
    files = image_files(case.clean_dir)[:limit]
    rng = np.random.default_rng(0)
    sent = []
    with capture_format.CaptureWriter(capture_root, ENDPOINT) as writer:
        for number, (path, label) in enumerate(files):
            body, content_type = apply_drift(path.read_bytes(), drift, rng)
            result = case.service.invoke(body, content_type, "application/json")
            assert result.status == 200, result.body
            inference_id = f"req-{drift or 'clean'}-{number:05d}"
            when = start + timedelta(seconds=number * 3599 / max(len(files), 1))
            writer.write(
                capture_format.build_record(
                    request_body=body,
                    request_content_type=content_type,
                    response_body=result.body,
                    response_content_type="application/json",
                    inference_id=inference_id,
                    inference_time=when,
                )
            )
            sent.append(
                {
                    "inference_id": inference_id,
                    "true_label": label,
                    "status": 200,
                    "predicted_breed": json.loads(result.body)["predictions"][0]["breed"],
                }
            )
    return sent


def run_monitor(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run a monitor script the way run_step.sh does: a plain python3 process in the code folder."""
    return subprocess.run(
        [sys.executable, str(CONTAINER_DIR / script), *args],
        cwd=CONTAINER_DIR,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report_dir(output: Path) -> Path:
    """Where a run for WINDOW_END writes (the window end's hour)."""
    return output / "2026" / "11" / "20" / "10"


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metric_values(requests: list[dict], name: str) -> dict[str | None, float]:
    """Feature (or None) -> value of every datum called ``name`` across the requests."""
    values = {}
    for request in requests:
        for datum in request["MetricData"]:
            if datum["MetricName"] == name:
                feature = next((d["Value"] for d in datum["Dimensions"] if d["Name"] == "Feature"), None)
                values[feature] = datum["Value"]
    return values


def tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 80, 40)).save(out, format="PNG")
    assert image_decoding.decode_image(out.getvalue()).image.size == (8, 8)
    return out.getvalue()


def write_tiny_capture(root: Path, count: int, *, per_file: int = 2000) -> Path:
    """``count`` small records (an 8x8 PNG and a one-breed answer) spread over the test hour.

    Lines are written directly (not through CaptureWriter's per-record flush) so a 100,000-record
    capture takes a second or two to write; each line is still a real capture_format record.
    """
    image = tiny_png()
    answer = json.dumps(
        {
            "model_version": "t",
            "predictions": [
                {"breed": "beagle", "confidence": 0.9, "top_k": [{"breed": "beagle", "confidence": 0.9}]}
            ],
        }
    ).encode()
    folder = root / ENDPOINT / "AllTraffic" / "2026" / "11" / "20" / "09"
    folder.mkdir(parents=True, exist_ok=True)
    for first in range(0, count, per_file):
        lines = []
        for number in range(first, min(first + per_file, count)):
            when = WINDOW_START + timedelta(milliseconds=number * 3_599_000 // count)
            record = capture_format.build_record(
                request_body=image,
                request_content_type="image/png",
                response_body=answer,
                response_content_type="application/json",
                event_id=f"e{number}",
                inference_time=when,
            )
            lines.append(record.to_json_line())
        (folder / f"{first // per_file:05d}.jsonl").write_text("".join(lines))
    return root
