"""A 100,000-record capture goes through the data-quality monitor in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from monitoring_cases import CONTAINER_DIR, ENDPOINT, WINDOW_END, subprocess_env, write_tiny_capture

from pipeline_code.container.dogbreeds_jobs.monitoring.monitor_io import MAX_LINE_BYTES

# Peak RSS may grow by at most this much from 2,000 records to 100,000: holding the records (or
# one float per record and feature) would take several times more.
MAX_GROWTH_BYTES = 15 * 1024 * 1024


# Runs the monitor as __main__ and then reports the process's own peak RSS. VmHWM belongs to the
# address space after exec; rusage's ru_maxrss would also count the (large) pytest process that
# forked the child.
LAUNCHER = """
import re, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    status = open("/proc/self/status").read()
    print("PEAK_RSS_KB", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
"""


def _peak_rss(capture: Path, out: Path, baseline: Path, workers: str = "1") -> tuple[int, dict, float]:
    """Run the monitor; return its peak RSS in bytes, its summary and its seconds."""
    script = str(CONTAINER_DIR / "monitor_data_quality.py")
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            script,
            "--capture-uri",
            str(capture / ENDPOINT),
            "--output-uri",
            str(out),
            "--window-end",
            WINDOW_END,
            "--baseline-uri",
            str(baseline),
            "--metrics-sink",
            str(out / "metrics.jsonl"),
            "--workers",
            workers,
            "--chunk-records",
            "256",
        ],
        cwd=CONTAINER_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=400,  # a hang guard, not a speed target (bench/bench_monitor.py measures speed)
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    peak_kb = int(result.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    [summary] = out.rglob("summary.json")
    return peak_kb * 1024, json.loads(summary.read_text()), seconds


def test_hundred_thousand_records_in_flat_memory(monitor_case, tmp_path):
    small_rss, small, _ = _peak_rss(
        write_tiny_capture(tmp_path / "small", 2_000), tmp_path / "o1", monitor_case.run
    )
    large_rss, large, seconds = _peak_rss(
        write_tiny_capture(tmp_path / "large", 100_000), tmp_path / "o2", monitor_case.run
    )
    assert small["records_analysed"] == 2_000
    assert large["records_analysed"] == large["images_analysed"] == 100_000
    assert large["corrupt_records"] == 0
    growth = large_rss - small_rss
    print(
        f"peak RSS {small_rss / 2**20:.1f} MiB (2k) -> {large_rss / 2**20:.1f} MiB (100k), "
        f"100k records in {seconds:.1f} s"
    )
    assert growth < MAX_GROWTH_BYTES, f"peak RSS grew by {growth / 2**20:.1f} MiB"


def test_a_150_mb_capture_line_is_skipped_without_being_held(monitor_case, tmp_path):
    capture = write_tiny_capture(tmp_path / "capture", 2_000)
    plain_rss, plain, _ = _peak_rss(capture, tmp_path / "o1", monitor_case.run)
    # The same capture plus a file whose second line is 150 MB (a record with a huge "image").
    hour = next(capture.glob(f"{ENDPOINT}/AllTraffic/2026/11/20/09"))
    lines = (hour / "00000.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["eventMetadata"]["eventId"] = "huge"
    head, tail = json.dumps(record).split('"data": "', 1)
    with (hour / "00001.jsonl").open("w") as handle:
        handle.write(lines[1].replace('"eventId":"e1"', '"eventId":"after-huge-0"'))
        handle.write(head + '"data": "')
        for _ in range(150):
            handle.write("A" * 2**20)
        handle.write(tail + "\n")
        handle.write(lines[2].replace('"eventId":"e2"', '"eventId":"after-huge-1"'))
    huge_rss, huge, _ = _peak_rss(capture, tmp_path / "o2", monitor_case.run)
    assert huge["oversized_records"] == 1
    assert "00001.jsonl:2: line of " in huge["oversized_examples"][0]
    assert huge["records_analysed"] == plain["records_analysed"] + 2 == 2_002
    growth = huge_rss - plain_rss
    print(f"peak RSS {plain_rss / 2**20:.1f} MiB without, {huge_rss / 2**20:.1f} MiB with a 150 MB line")
    assert growth < MAX_LINE_BYTES + 16 * 2**20, f"peak RSS grew by {growth / 2**20:.1f} MiB"
