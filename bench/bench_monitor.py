"""Data-quality monitor throughput: captured records per second through monitor_data_quality.py.

Writes a capture of 500x375 JPEG requests (base64 in SageMaker's capture format, as an endpoint
writes them) with real-shaped responses, a matching baseline, and runs the monitor script as the
processing step does (a separate python3 process), once per worker count. Reports records/s and
the peak memory of the monitor process and of its worker processes. Target: >= 500 records/s on
a 2-core machine.

    OMP_NUM_THREADS=1 python bench/bench_monitor.py [--records 4000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from dogbreeds.sample_data import breed_style, render_image  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.data import image_features  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.monitoring import capture_format, model_monitor_files  # noqa: E402

CONTAINER = REPO / "pipeline_code" / "container"
START = datetime(2026, 11, 20, 9, tzinfo=UTC)
BREEDS = ("beagle", "boxer", "pug", "whippet")
DISTINCT_IMAGES = 64
# Peak RSS of the monitor process (VmHWM: its own address space) and of its children (rusage).
LAUNCHER = """
import re, resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("PEAK_KB", hwm, children, file=sys.stderr)
"""


def photos(count: int) -> list[bytes]:
    out = []
    for index in range(count):
        picture = render_image(breed_style(index % 4, 4), 500, 375, np.random.default_rng(index))
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def write_case(root: Path, records: int) -> None:
    images = photos(DISTINCT_IMAGES)
    rows = [image_features.features_from_bytes(data) for data in images]
    statistics = image_features.dataset_statistics(rows)
    baseline = root / "run" / "Preprocess" / "baseline"
    baseline.mkdir(parents=True)
    (baseline / "statistics.json").write_text(json.dumps(statistics))
    (baseline / "constraints.json").write_text(json.dumps(image_features.dataset_constraints(statistics)))
    rng = np.random.default_rng(0)
    confidences = rng.uniform(0.4, 1.0, 500).tolist()
    predicted = [BREEDS[i % 4] for i in range(500)]
    features = [
        model_monitor_files.numerical_feature_statistics("confidence", confidences),
        model_monitor_files.string_feature_statistics("predicted_label", predicted),
    ]
    prediction = root / "run" / "Evaluate" / "prediction_baseline"
    prediction.mkdir(parents=True)
    (prediction / "statistics.json").write_text(
        json.dumps(model_monitor_files.data_quality_statistics(features, 500))
    )
    (prediction / "constraints.json").write_text(
        json.dumps(
            model_monitor_files.data_quality_constraints(
                features, string_domains={"predicted_label": list(BREEDS)}
            )
        )
    )
    folder = root / "capture" / "bench-endpoint" / "AllTraffic" / "2026" / "11" / "20" / "09"
    folder.mkdir(parents=True)
    lines = []
    for number in range(records):
        breed = BREEDS[number % 4]
        answer = {
            "model_version": "bench",
            "predictions": [
                {
                    "breed": breed,
                    "confidence": confidences[number % 500],
                    "top_k": [{"breed": b, "confidence": 0.1} for b in BREEDS],
                }
            ],
        }
        record = capture_format.build_record(
            request_body=images[number % DISTINCT_IMAGES],
            request_content_type="image/jpeg",
            response_body=json.dumps(answer).encode(),
            response_content_type="application/json",
            inference_time=START + timedelta(milliseconds=number * 3_599_000 // records),
        )
        lines.append(record.to_json_line())
        if len(lines) == 1000 or number == records - 1:
            (folder / f"{number // 1000:04d}.jsonl").write_text("".join(lines))
            lines = []


def run(root: Path, workers: int) -> dict:
    out = root / f"out-{workers}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            str(CONTAINER / "monitor_data_quality.py"),
            "--capture-uri",
            str(root / "capture" / "bench-endpoint"),
            "--output-uri",
            str(out),
            "--window-end",
            "2026-11-20T10:00:00Z",
            "--baseline-uri",
            str(root / "run"),
            "--metrics-sink",
            str(out / "metrics.jsonl"),
            "--workers",
            str(workers),
        ],
        cwd=CONTAINER,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(result.stderr)
    own_kb, children_kb = (int(v) for v in result.stderr.rsplit("PEAK_KB", 1)[1].split()[:2])
    [summary] = out.rglob("summary.json")
    records = json.loads(summary.read_text())["records_analysed"]
    return {
        "workers": workers,
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "peak_rss_mib": own_kb / 1024,
        "worker_peak_rss_mib": children_kb / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    try:
        write_case(root, args.records)
        size = sum(p.stat().st_size for p in (root / "capture").rglob("*.jsonl"))
        print(
            f"capture: {args.records} records of 500x375 JPEG, {size / 2**20:.1f} MiB, "
            f"cpus={os.cpu_count()}, "
            f"load={os.getloadavg()[0]:.1f}"
        )
        print("| workers | records | seconds | records/s | monitor peak RSS MiB | worker peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for workers in args.workers:
            r = run(root, workers)
            print(
                f"| {r['workers']} | {r['records']} | {r['seconds']:.1f} | {r['records_per_s']:.0f} | "
                f"{r['peak_rss_mib']:.0f} | {r['worker_peak_rss_mib']:.0f} |"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
