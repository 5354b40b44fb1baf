"""SageMaker data-capture records: shape, encodings, file layout, streaming reader."""

from __future__ import annotations

import base64
import errno
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT

from pipeline_code.container.dogbreeds_jobs.monitoring import capture_format

MOMENT = datetime(2026, 11, 27, 10, 15, 2, 123456, tzinfo=UTC)


def record(moment: datetime = MOMENT, inference_id: str | None = "order-17") -> object:
    return capture_format.build_record(
        request_body=b"\xff\xd8\xff\xe0 jpeg bytes",
        request_content_type="image/jpeg",
        response_body=b'{"predictions":[{"breed":"beagle"}]}',
        response_content_type="application/json",
        inference_id=inference_id,
        inference_time=moment,
    )


def test_record_has_sagemaker_shape_and_encodings() -> None:
    document = json.loads(record().to_json_line())
    assert set(document) == {"captureData", "eventMetadata", "eventVersion"}
    assert document["eventVersion"] == "0"
    inputs = document["captureData"]["endpointInput"]
    outputs = document["captureData"]["endpointOutput"]
    assert inputs["mode"] == "INPUT" and inputs["encoding"] == "BASE64"
    assert inputs["observedContentType"] == "image/jpeg"
    assert base64.b64decode(inputs["data"]) == b"\xff\xd8\xff\xe0 jpeg bytes"
    # JSON bodies are kept readable, as with CaptureContentTypeHeader.JsonContentTypes.
    assert outputs == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": '{"predictions":[{"breed":"beagle"}]}',
        "encoding": "JSON",
    }
    metadata = document["eventMetadata"]
    assert metadata["inferenceId"] == "order-17"
    assert metadata["inferenceTime"] == "2026-11-27T10:15:02.123Z"
    assert len(metadata["eventId"]) == 36


def test_without_inference_id_the_join_id_is_the_event_id() -> None:
    captured = record(inference_id=None)
    assert "inferenceId" not in captured.to_dict()["eventMetadata"]
    assert captured.join_id == captured.event_id


def test_non_utf8_body_under_a_json_type_falls_back_to_base64() -> None:
    payload = capture_format.encode_payload(b"\xff\xfe", "application/json", "INPUT")
    assert payload.encoding == "BASE64" and payload.raw_bytes() == b"\xff\xfe"
    with pytest.raises(ValueError, match="mode"):
        capture_format.encode_payload(b"x", "text/csv", "SIDEWAYS")


def test_writer_lays_files_out_by_endpoint_variant_and_hour(tmp_path) -> None:
    with capture_format.CaptureWriter(tmp_path, "dogs-dev", "AllTraffic") as writer:
        first = writer.write(record(MOMENT))
        same_hour = writer.write(record(MOMENT + timedelta(minutes=30)))
        next_hour = writer.write(record(MOMENT + timedelta(hours=1)))
    assert first == same_hour != next_hour
    assert first.parent == tmp_path / "dogs-dev" / "AllTraffic" / "2026" / "11" / "27" / "10"
    assert next_hour.parent.name == "11"
    assert first.name.startswith("15-02-123-") and first.suffix == ".jsonl"
    assert len(first.read_text().splitlines()) == 2


def test_writer_rotates_files_and_refuses_bad_names(tmp_path) -> None:
    writer = capture_format.CaptureWriter(tmp_path, "ep", max_records_per_file=2)
    paths = {writer.write(record()) for _ in range(5)}
    writer.close()
    assert len(paths) == 3
    with pytest.raises(ValueError, match="endpoint name"):
        capture_format.CaptureWriter(tmp_path, "a/b")


def test_reader_streams_back_what_was_written_and_filters_by_time(tmp_path) -> None:
    # Whole milliseconds: capture keeps inferenceTime to the millisecond.
    moments = [MOMENT.replace(microsecond=123000) + timedelta(minutes=25 * i) for i in range(6)]
    with capture_format.CaptureWriter(tmp_path, "ep") as writer:
        written = [writer.write(record(m, inference_id=f"id-{i}")) for i, m in enumerate(moments)]
    assert written
    read = list(capture_format.iter_capture_records(tmp_path))
    assert [r.inference_id for r in read] == [f"id-{i}" for i in range(6)]
    assert read[0].endpoint_input.raw_bytes() == b"\xff\xd8\xff\xe0 jpeg bytes"
    assert read[0].endpoint_output.json() == {"predictions": [{"breed": "beagle"}]}
    window = list(
        capture_format.iter_capture_records(
            tmp_path, start=moments[1], end=moments[4].replace(tzinfo=None)
        )
    )
    assert [r.inference_id for r in window] == ["id-1", "id-2", "id-3"]


def test_reader_names_the_bad_line_or_skips_it(tmp_path) -> None:
    with capture_format.CaptureWriter(tmp_path, "ep") as writer:
        path = writer.write(record())
    with path.open("a") as handle:
        handle.write('{"captureData": {}, "eventMetadata": {"eventId": "x"}}\n')
        handle.write("not json\n")
    with pytest.raises(capture_format.CaptureFormatError, match=rf"{path.name}:2"):
        list(capture_format.iter_capture_records(tmp_path))
    errors: list[str] = []
    good = list(capture_format.iter_capture_records(tmp_path, skip_invalid=True, errors=errors))
    assert len(good) == 1 and len(errors) == 2 and ":3" in errors[1]


def test_reader_parses_lines_from_any_stream() -> None:
    lines = [record().to_json_line().encode(), b"\n", record().to_json_line().encode()]
    parsed = list(capture_format.iter_records_from_lines(lines, source="s3://b/k.jsonl"))
    assert len(parsed) == 2 and parsed[0].inference_time == MOMENT.replace(microsecond=123000)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(capture_format.iter_capture_records(Path("/nonexistent/capture")))


# A child process whose file-size limit stands in for a full disk: writes past the limit fail
# part-way through a record (EFBIG, with SIGXFSZ ignored, as ENOSPC would), then the limit is
# lifted ("space returns") and writing goes on with the same writer.
FULL_DISK_CHILD = r"""
import json, resource, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from pipeline_code.container.dogbreeds_jobs.monitoring import capture_format

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
root = Path(sys.argv[1])
moment = datetime(2026, 11, 27, 10, 15, 2, 123000, tzinfo=UTC)

def record(index):
    return capture_format.build_record(
        # Bigger than io buffers, as photos are.
        request_body=bytes(range(256)) * 128, request_content_type="image/jpeg",
        response_body=b'{"predictions":[]}', response_content_type="application/json",
        inference_id=f"id-{index}", inference_time=moment,
    )

outcomes = {}
writer = capture_format.CaptureWriter(root, "ep")
path = writer.write(record(0))
outcomes[0] = "ok"
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# Room for half of the next record only.
resource.setrlimit(
    resource.RLIMIT_FSIZE, (path.stat().st_size + len(record(1).to_json_line()) // 2, hard)
)
for index in (1, 2):
    try:
        writer.write(record(index))
        outcomes[index] = "ok"
    except OSError as error:
        outcomes[index] = f"failed: {error.strerror}"
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
for index in (3, 4, 5):
    writer.write(record(index))
    outcomes[index] = "ok"
writer.close()
print(json.dumps(outcomes))
"""


def test_writer_keeps_whole_lines_after_the_disk_fills_and_empties(tmp_path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    outcomes = json.loads(child.stdout)
    assert outcomes["0"] == "ok" and outcomes["3"] == outcomes["4"] == outcomes["5"] == "ok"
    assert outcomes["1"].startswith("failed") and outcomes["2"].startswith("failed")
    lines = [
        line for path in sorted(tmp_path.rglob("*.jsonl")) for line in path.read_text().split("\n")
    ]
    assert lines[-1] == ""  # every file ends with a newline: no partial record is left behind
    ids = [json.loads(line)["eventMetadata"]["inferenceId"] for line in lines if line]
    assert ids == ["id-0", "id-3", "id-4", "id-5"]


def test_writer_starts_a_new_file_when_a_partial_line_cannot_be_cut_off(
    tmp_path, monkeypatch
) -> None:
    """ENOSPC half-way through a record and a failing truncate: the next record is not glued on."""
    real_write = os.write
    disk_full = {"on": False}

    def write(fd: int, data) -> int:
        if disk_full["on"]:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def ftruncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(capture_format.os, "write", write)
    monkeypatch.setattr(capture_format.os, "ftruncate", ftruncate)
    with capture_format.CaptureWriter(tmp_path, "ep") as writer:
        first = writer.write(record(inference_id="before"))
        disk_full["on"] = True
        with pytest.raises(OSError, match="No space"):
            writer.write(record(inference_id="lost"))
        disk_full["on"] = False
        after = writer.write(record(inference_id="after"))
    assert after != first
    assert first.read_text().count("\n") == 1  # the whole line, then the cut-off part
    errors: list[str] = []
    kept = list(capture_format.iter_capture_records(tmp_path, skip_invalid=True, errors=errors))
    assert sorted(r.inference_id for r in kept) == ["after", "before"] and len(errors) == 1


def test_an_unknown_or_missing_event_version_is_kept_not_read_as_zero() -> None:
    document = record().to_dict()
    assert capture_format.parse_record(json.dumps(document)).known_version
    document["eventVersion"] = "1"
    newer = capture_format.parse_record(json.dumps(document))
    assert newer.event_version == "1" and not newer.known_version
    document["eventVersion"] = 0  # a number, not the string SageMaker writes: still version "0"
    assert capture_format.parse_record(json.dumps(document)).known_version
    del document["eventVersion"]
    unversioned = capture_format.parse_record(json.dumps(document))
    assert unversioned.event_version == capture_format.MISSING_EVENT_VERSION
    assert not unversioned.known_version
    # Written back, a record without a version stays without one.
    assert "eventVersion" not in json.loads(unversioned.to_json_line())
