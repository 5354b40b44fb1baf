"""`dogbreeds traffic` and `dogbreeds ground-truth` against a real `dogbreeds local serve`, then
both monitors over what the server captured (and `dogbreeds local monitor` once the local executor
is installed)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import monitoring_cases
import numpy as np
import pytest
from monitoring_cases import run_monitor, subprocess_env
from repo_paths import REPO_ROOT
from serving_models import image_files, start_server

from dogbreeds.traffic import DRIFTS, apply_drift
from pipeline_code.container.dogbreeds_jobs.data import image_features

SERVED_ENDPOINT = "dogbreeds-local"
# The dev data bucket as local mode resolves it (account 000000000000, region us-east-1).
LOCAL_DEV_BUCKET = "dogbreeds-dev-data-000000000000-us-east-1"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dogbreeds", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", DRIFTS)
def test_each_drift_moves_the_feature_it_is_meant_to(monitor_case, kind):
    path, _ = image_files(monitor_case.clean_dir)[0]
    original = image_features.features_from_bytes(path.read_bytes())
    data, content_type = apply_drift(path.read_bytes(), kind, np.random.default_rng(0))
    drifted = image_features.features_from_bytes(data)
    assert content_type == "image/jpeg"
    if kind == "brightness":
        assert drifted["brightness"] > original["brightness"] + 0.1
    elif kind == "blur":
        assert drifted["sharpness"] < original["sharpness"] / 2
    elif kind == "noise":
        assert drifted["sharpness"] > original["sharpness"] * 2
    else:
        assert drifted["width"] == round(original["width"] / 2)


def test_traffic_through_local_serve_then_ground_truth_then_both_monitors(monitor_case, tmp_path):
    started = datetime.now(UTC)
    capture = tmp_path / "capture"
    server = start_server(monitor_case.model_dir, "--capture-dir", str(capture))
    try:
        record = tmp_path / "traffic.jsonl"
        sent = _cli(
            "traffic",
            "--endpoint",
            server.url,
            "--images",
            str(monitor_case.clean_dir),
            "--count",
            "45",
            "--rate",
            "200",
            "--record",
            str(record),
        )
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["statuses"] == {"200": 45}
        drifted = _cli(
            "traffic",
            "--endpoint",
            server.url + "/invocations",
            "--images",
            str(monitor_case.clean_dir),
            "--count",
            "45",
            "--drift",
            "brightness",
        )
        assert drifted.returncode == 0, drifted.stderr
    finally:
        assert server.stop()[0] == 0
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(entries) == 45 and len({e["inference_id"] for e in entries}) == 45
    assert {e["true_label"] for e in entries} == set(monitor_case.classes)  # round-robin over folders
    assert all(e["predicted_breed"] in monitor_case.classes for e in entries)

    gt = _cli(
        "ground-truth", "--records", str(record), "--out", str(tmp_path / "gt"), "--wrong-fraction", "0.2"
    )
    assert gt.returncode == 0, gt.stderr
    assert json.loads(gt.stdout)["wrong"] == 9
    [gt_file] = (tmp_path / "gt").rglob("*.jsonl")
    first = json.loads(gt_file.read_text().splitlines()[0])
    assert first["eventMetadata"]["eventId"] == entries[0]["inference_id"]
    assert first["groundTruthData"]["encoding"] == "CSV" and first["eventVersion"] == "0"

    # The window of whole hours the server captured in (two when the run crosses an hour).
    first_hour = started.replace(minute=0, second=0, microsecond=0)
    window_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    common = [
        "--capture-uri",
        str(capture / SERVED_ENDPOINT),
        "--window-end",
        window_end.strftime("%Y-%m-%dT%H:00:00Z"),
        "--window-hours",
        str(int((window_end - first_hour) / timedelta(hours=1))),
        "--baseline-uri",
        str(monitor_case.run),
        "--endpoint-name",
        SERVED_ENDPOINT,
    ]
    quality = run_monitor(
        "monitor_model_quality.py",
        *common,
        "--ground-truth-uri",
        str(tmp_path / "gt"),
        "--output-uri",
        str(tmp_path / "mq"),
        "--metrics-sink",
        str(tmp_path / "mq.jsonl"),
    )
    assert quality.returncode == 0, quality.stderr
    [summary] = (tmp_path / "mq").rglob("summary.json")
    summary = json.loads(summary.read_text())
    assert summary["records_analysed"] == 90 and summary["labelled_records"] == 45
    assert summary["ground_truth_coverage"] == 0.5
    expected = sum(e["predicted_breed"] == e["true_label"] for e in entries) / 45
    assert summary["metrics"]["accuracy"]["window"] < expected  # 9 labels were swapped

    data = run_monitor(
        "monitor_data_quality.py",
        *common,
        "--output-uri",
        str(tmp_path / "dq"),
        "--metrics-sink",
        str(tmp_path / "dq.jsonl"),
        "--workers",
        "1",
    )
    assert data.returncode == 0, data.stderr
    [violations] = (tmp_path / "dq").rglob("constraint_violations.json")
    drifted_features = {v["feature_name"] for v in json.loads(violations.read_text())["violations"]}
    assert "brightness" in drifted_features  # half the window was brightened


def test_traffic_rejects_bad_input(tmp_path):
    result = _cli("traffic", "--endpoint", "http://127.0.0.1:9", "--images", str(tmp_path), "--count", "1")
    assert result.returncode == 2 and "holds no image files" in result.stderr
    result = _cli("traffic", "--endpoint", "x", "--images", str(tmp_path / "missing"))
    assert result.returncode == 2 and "is not a folder" in result.stderr
    result = _cli("traffic", "--endpoint", "x", "--images", str(tmp_path), "--drift", "fog")
    assert result.returncode == 2 and "invalid choice: 'fog'" in result.stderr


def test_local_monitor_runs_the_definition_through_the_local_executor(monitor_case, tmp_path):
    capture = tmp_path / "capture"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    monitoring_cases.capture_traffic(monitor_case, capture, limit=60, start=hour)
    result = _cli(
        "local",
        "monitor",
        "--window-end",  # the captured hour, even when the clock has moved on to the next one
        (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z"),
        "--workdir",
        str(tmp_path / "work"),
        "--endpoint-name",
        monitoring_cases.ENDPOINT,
        "--capture-dir",
        str(capture),
        "--baseline-uri",
        str(monitor_case.run),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reports = tmp_path / "work" / "s3" / LOCAL_DEV_BUCKET / "monitoring" / monitoring_cases.ENDPOINT
    [summary] = (reports / "data_quality").rglob("summary.json")
    assert json.loads(summary.read_text())["records_analysed"] == 60
    assert list((reports / "model_quality").rglob("summary.json"))
    metrics = (tmp_path / "work" / "monitoring" / "metrics.jsonl").read_text()
    assert '"RecordsAnalysed"' in metrics


def test_local_monitor_uses_the_newest_approved_package_of_the_local_registry(monitor_case, tmp_path):
    from dogbreeds.local_registry import LocalModelRegistry

    work = tmp_path / "work"
    shutil.copytree(monitor_case.run, work / "s3" / LOCAL_DEV_BUCKET / "pipeline-runs" / "exec-1")

    def baselines(run: str) -> dict:
        def pair(folder: str) -> dict:
            uri = f"s3://{LOCAL_DEV_BUCKET}/pipeline-runs/{run}/{folder}"
            return {
                "Statistics": {"S3Uri": f"{uri}/statistics.json", "ContentType": "application/json"},
                "Constraints": {"S3Uri": f"{uri}/constraints.json", "ContentType": "application/json"},
            }

        return {
            "ModelDataQuality": pair("Preprocess/baseline"),
            "ModelQuality": pair("Evaluate/quality_baseline"),
        }

    registry = LocalModelRegistry(work)
    group = "dogbreeds-local-models"
    registry.register(
        group=group, model_data_url="s3://x/1/model.tar.gz", drift_check_baselines=baselines("exec-1")
    )
    registry.set_status(1, "Approved", group)
    # Newer but not approved: the monitor must keep using version 1's baselines.
    registry.register(
        group=group, model_data_url="s3://x/2/model.tar.gz", drift_check_baselines=baselines("exec-2")
    )
    capture = tmp_path / "capture"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    monitoring_cases.capture_traffic(monitor_case, capture, limit=40, start=hour)
    result = _cli(
        "local",
        "monitor",
        "--window-end",  # the captured hour, even when the clock has moved on to the next one
        (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z"),
        "--workdir",
        str(work),
        "--endpoint-name",
        monitoring_cases.ENDPOINT,
        "--capture-dir",
        str(capture),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [summary] = (work / "s3" / LOCAL_DEV_BUCKET / "monitoring").rglob("data_quality/**/summary.json")
    used = json.loads(summary.read_text())["baselines"]
    assert (
        used["data_statistics"]
        == f"s3://{LOCAL_DEV_BUCKET}/pipeline-runs/exec-1/Preprocess/baseline/statistics.json"
    )
    assert used["source"].endswith(":model-package/dogbreeds-local-models/1")


def test_endpoint_names_are_invoked_with_boto3_and_an_inference_id(monitor_case, tmp_path):
    """The request is checked against botocore's real sagemaker-runtime model by the Stubber."""
    import io

    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import ANY, Stubber

    from dogbreeds.traffic import endpoint_sender, find_images, send_traffic

    runtime = boto3.client(
        "sagemaker-runtime", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    images = find_images(monitor_case.clean_dir)[:2]
    answer = json.dumps({"predictions": [{"breed": "pug", "confidence": 0.9, "top_k": []}]}).encode()
    with Stubber(runtime) as stub:
        for path, _ in images:
            stub.add_response(
                "invoke_endpoint",
                {"Body": StreamingBody(io.BytesIO(answer), len(answer)), "ContentType": "application/json"},
                {
                    "EndpointName": "dogbreeds-dev-endpoint",
                    "Body": path.read_bytes(),
                    "ContentType": "image/jpeg",
                    "Accept": "application/json",
                    "InferenceId": ANY,
                },
            )
        summary = send_traffic(
            endpoint_sender("dogbreeds-dev-endpoint", runtime),
            images,
            count=2,
            rate=0,
            drift=None,
            record=tmp_path / "r.jsonl",
        )
        stub.assert_no_pending_responses()
    assert summary["statuses"] == {"200": 2}
    entries = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [e["predicted_breed"] for e in entries] == ["pug", "pug"]
    assert [e["true_label"] for e in entries] == [label for _, label in images]


def test_a_server_that_is_down_is_recorded_as_no_response_not_a_crash():
    import socket

    from dogbreeds.traffic import url_sender

    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, body = url_sender(f"http://127.0.0.1:{port}")(b"jpeg", "image/jpeg", "id-1")
    assert (status, body) == (0, f"connection refused: http://127.0.0.1:{port}/invocations")


@pytest.fixture(scope="module")
def few_images(tmp_path_factory):
    from dogbreeds import sample_data

    root = tmp_path_factory.mktemp("few") / "data"
    sample_data.generate(root, breeds=2, per_breed=1, size=(32, 32), seed=1, odd=False, progress=False)
    return root


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_closed_port_is_named_with_its_url_on_stderr_in_the_record_and_summary(few_images, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    record = tmp_path / "r.jsonl"
    result = _cli(
        "traffic", "--endpoint", f"127.0.0.1:{port}", "--images", str(few_images), "--count", "3",
        "--record", str(record),
    )
    reason = f"connection refused: http://127.0.0.1:{port}/invocations"
    assert result.returncode == 1
    assert result.stderr == f"dogbreeds traffic: request 1 failed: {reason}\n"  # each reason once
    summary = json.loads(result.stdout)
    assert summary["statuses"] == {"0": 3} and summary["reasons"] == {reason: 3}
    assert [(e["status"], e["reason"]) for e in _records(record)] == [(0, reason)] * 3


def test_an_error_answer_is_counted_by_its_status_and_first_body_line(few_images, tmp_path):
    import http.server
    import threading

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"\nunsupported content type: image/jpeg\nTraceback (most recent call last): ...\n"
            self.send_response(415)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        record = tmp_path / "r.jsonl"
        result = _cli(
            "traffic", "--endpoint", f"http://127.0.0.1:{server.server_address[1]}",
            "--images", str(few_images), "--count", "2", "--record", str(record),
        )
    finally:
        server.shutdown()
        server.server_close()
    reason = "HTTP 415: unsupported content type: image/jpeg"
    assert result.returncode == 1 and reason in result.stderr and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["reasons"] == {reason: 2}
    assert [(e["status"], e["reason"]) for e in _records(record)] == [(415, reason)] * 2


def test_endpoint_names_are_called_in_the_region_cdk_json_pins_for_the_env(
    aws, few_images, tmp_path, monkeypatch  # noqa: F811 - the moto fixture
):
    """moto has no invoke_endpoint: the Stubber answers, on the client the command builds."""
    import io

    from botocore.response import StreamingBody
    from botocore.stub import ANY, Stubber

    from dogbreeds import traffic
    from dogbreeds.cli import traffic as traffic_cli

    context = json.loads((REPO_ROOT / "cdk.json").read_text())
    context["context"]["environments"]["staging"].update(account="123456789012", region="eu-central-1")
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps(context))
    answer = json.dumps({"predictions": [{"breed": "pug"}]}).encode()
    build, built = traffic.runtime_client, []

    def stubbed_client(region):
        runtime = build(region)
        stub = Stubber(runtime)
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(answer), len(answer))},
            {
                "EndpointName": "dogbreeds-x", "Body": ANY, "ContentType": ANY, "Accept": ANY,
                "InferenceId": ANY,
            },
        )
        stub.activate()
        built.append((runtime, stub))
        return runtime

    monkeypatch.setattr(traffic, "runtime_client", stubbed_client)
    parser = argparse.ArgumentParser()
    traffic_cli.register(parser.add_subparsers())
    pinned = ["--env", "staging", "--cdk-json", str(cdk_json)]
    # The pinned region wins over AWS_DEFAULT_REGION; unpinned (dev), boto3's own: moto's eu-west-1.
    for extra, region in [(pinned, "eu-central-1"), ([], "eu-west-1")]:
        args = parser.parse_args(
            ["traffic", "--endpoint", "dogbreeds-x", "--images", str(few_images), "--count", "1", *extra]
        )
        assert args.func(args) == 0
        runtime, stub = built[-1]
        stub.assert_no_pending_responses()
        assert runtime.meta.region_name == region
