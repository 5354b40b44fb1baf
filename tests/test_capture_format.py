"""SageMaker data-capture records: shape, encodings, file layout, streaming reader."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline_code.container import capture_format

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
