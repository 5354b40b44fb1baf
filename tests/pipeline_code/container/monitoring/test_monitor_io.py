"""monitor_io.iter_lines: lines of any length, read in chunks, over-long ones skipped unheld."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from aws_test_env import aws_environment
from monitoring_cases import CONTAINER_DIR, subprocess_env

from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_io

LINE_MB = 150
# The reader may hold one line up to the cap and one read chunk; "a little" more is allocator
# slack. Holding the 150 MB line (what a plain readline does) is far above this.
ALLOWED_GROWTH = monitor_io.MAX_LINE_BYTES + 2 * monitor_io.STREAM_CHUNK_BYTES + 8 * 2**20


def _lines(data: bytes, cap: int, chunk: int, monkeypatch) -> list:
    monkeypatch.setattr(monitor_io, "STREAM_CHUNK_BYTES", chunk)
    return list(monitor_io.split_lines(io.BytesIO(data).read, cap))


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 1 << 20])
def test_lines_are_reassembled_across_chunks_and_long_ones_replaced(chunk, monkeypatch):
    data = b'{"a":1}\n' + b"x" * 40 + b"\n\n" + b"tail-without-newline"
    lines = _lines(data, 20, chunk, monkeypatch)
    assert lines == [b'{"a":1}\n', monitor_io.OversizedLine(41), b"\n", b"tail-without-newline"]
    # A line exactly at the cap (newline included) is kept; one byte more is not.
    assert _lines(b"a" * 9 + b"\nb", 10, chunk, monkeypatch) == [b"a" * 9 + b"\n", b"b"]
    assert _lines(b"a" * 10 + b"\nb", 10, chunk, monkeypatch) == [monitor_io.OversizedLine(11), b"b"]
    # An over-long last line without a newline is still reported, in its place.
    assert _lines(b"ok\n" + b"z" * 30, 10, chunk, monkeypatch) == [b"ok\n", monitor_io.OversizedLine(30)]


def test_the_cap_is_above_any_line_an_endpoint_can_write():
    six_mb = 6 * 1024 * 1024  # the larger reading of "6 MB", request and response alike
    base64_bytes = 4 * -(-six_mb // 3)
    assert 2 * base64_bytes + 64 * 1024 < monitor_io.MAX_LINE_BYTES
    assert monitor_io.MAX_LINE_BYTES < LINE_MB * 10**6 // 4


# Reads every line of argv[1] and prints what came back and the growth of this process's peak
# RSS (VmHWM: the address space after exec, unlike rusage which also counts the forking parent).
READER = """
import json, re, sys
from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_io
def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
if sys.argv[1].startswith("s3://"):
    import boto3
    monitor_io.s3_client().list_buckets()  # clients and connections exist before measuring
before = peak()
lines = [
    {"oversized": line.length} if isinstance(line, monitor_io.OversizedLine) else {"bytes": len(line)}
    for line in monitor_io.iter_lines(sys.argv[1])
]
print(json.dumps({"before": before, "after": peak(), "lines": lines}))
"""


def _write_huge_line_file(path: Path) -> int:
    """A small line, one line of LINE_MB megabytes, a small line; returns the huge line's length."""
    block = b"A" * 2**20
    with path.open("wb") as handle:
        handle.write(b'{"first": 1}\n{"data": "')
        for _ in range(LINE_MB):
            handle.write(block)
        handle.write(b'"}\n{"last": 1}\n')
    return len(b'{"data": "') + LINE_MB * 2**20 + len(b'"}\n')


def _read_in_subprocess(location: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", READER, location],
        cwd=CONTAINER_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    growth = report["after"] - report["before"]
    print(f"{location}: peak RSS {report['before'] / 2**20:.1f} -> {report['after'] / 2**20:.1f} MiB")
    assert growth < ALLOWED_GROWTH, f"peak RSS grew by {growth / 2**20:.1f} MiB"
    return report


def test_a_150_mb_local_line_is_skipped_in_bounded_memory(tmp_path):
    path = tmp_path / "huge.jsonl"
    length = _write_huge_line_file(path)
    report = _read_in_subprocess(str(path), subprocess_env())
    assert report["lines"] == [{"bytes": 13}, {"oversized": length}, {"bytes": 12}]


def test_a_150_mb_s3_line_is_skipped_in_bounded_memory(aws, tmp_path):  # noqa: F811
    path = tmp_path / "huge.jsonl"
    length = _write_huge_line_file(path)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="capture", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with path.open("rb") as handle:
        s3.put_object(Bucket="capture", Key="ep/AllTraffic/huge.jsonl", Body=handle)
    path.unlink()
    env = subprocess_env(**aws_environment(aws))
    env.pop(monitor_io.LOCAL_S3_ROOT_ENV, None)
    report = _read_in_subprocess("s3://capture/ep/AllTraffic/huge.jsonl", env)
    assert report["lines"] == [{"bytes": 13}, {"oversized": length}, {"bytes": 12}]
