"""`dogbreeds demo`: the whole lifecycle on this machine, through the same commands a user runs.

sample data -> `local run` (the one training definition, via the local executor) -> registered
version -> `local models approve` -> `local serve` with data capture -> clean traffic (unseen
pictures of the same breeds) + ground truth -> `local monitor` -> the same pictures brightened +
ground truth -> `local monitor` -> summary.

Each step is the real CLI in a subprocess, so the demo exercises what the README documents. The
working folder is emptied first, so a second run starts from the same place; the server is always
stopped, also when a step fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dogbreeds.cloud_assembly import AssemblyError, CloudAssembly, synthesize
from dogbreeds.local_executor import local_s3_root
from dogbreeds.local_monitor import LAST_RUN_FILE

DEMO_ENV = "dev"
SUMMARY_FILE = "demo_summary.json"
MARKER_FILE = ".dogbreeds-demo"
# Small enough for a 2-core laptop in about a minute of training, big enough to learn the breeds.
DEFAULTS = {
    "breeds": 6,
    "per_breed": 40,
    "size": "96x72",
    "epochs": 4,
    "image_size": 64,
    "traffic": 180,
    "threshold": 0.6,
}


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and shows the end of its output."""


@dataclass
class DemoSummary:
    workdir: str
    test_accuracy: float | None = None
    registered_version: int | None = None
    approved: bool = False
    requests_sent: int = 0
    clean_violations: list[str] = field(default_factory=list)
    drifted_features: list[str] = field(default_factory=list)
    drift_violations: int = 0
    live_accuracy: float | None = None
    # Alarm name -> state after each monitoring run, evaluated as CloudWatch would.
    clean_alarms: dict[str, str] = field(default_factory=dict)
    drift_alarms: dict[str, str] = field(default_factory=dict)
    alarms_without_data: int = 0
    # What the drift run's alarm changes set off: the retrain guard's decision among them.
    retrain_decisions: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        accuracy = f"{self.test_accuracy:.3f}" if self.test_accuracy is not None else "n/a"
        live = f"{self.live_accuracy:.3f}" if self.live_accuracy is not None else "n/a"
        lines = [
            "",
            "=== demo summary ===",
            f"test accuracy (evaluate step):   {accuracy}",
            f"registered model version:        {self.registered_version} "
            f"({'approved and served' if self.approved else 'not approved'})",
            f"requests sent to the endpoint:   {self.requests_sent}",
            f"clean traffic violations:        {', '.join(self.clean_violations) or 'none'}",
            f"drift found after drifted batch: {', '.join(self.drifted_features) or 'none'}",
            f"live accuracy (ground truth):    {live}",
            f"alarms after clean traffic:      {_alarm_line(self.clean_alarms, self.alarms_without_data)}",
            f"alarms after drifted traffic:    {_alarm_line(self.drift_alarms, self.alarms_without_data)}",
            *[f"retrain guard:                   {decision}" for decision in self.retrain_decisions],
            "HTML reports:",
            *[f"  {path}" for path in self.reports],
            f"took {self.seconds:.0f} s; everything is under {self.workdir}",
        ]
        return "\n".join(lines)


def _alarm_line(states: dict[str, str], without_data: int) -> str:
    if not states:
        return "not evaluated"
    firing = sorted(name for name, state in states.items() if state != "OK")
    # Alarms on AWS's own metrics (endpoint, Lambdas) have no local data: say so, not just "OK".
    note = f" ({without_data} on metrics only AWS produces, so no local data)" if without_data else ""
    if not firing:
        return f"all {len(states)} OK{note}"
    return f"{len(states) - len(firing)} OK{note}; " + ", ".join(f"{name} {states[name]}" for name in firing)


def _decisions(changes: list[dict[str, Any]]) -> list[str]:
    lines = []
    for change in changes:
        for decision in change.get("decisions", []):
            if decision.get("action") == "started":
                lines.append(f"{change['alarm']} -> would start {decision['would_start']['PipelineName']}")
            else:
                lines.append(f"{change['alarm']} -> {decision.get('action')}: {decision.get('reason')}")
    return lines


class Demo:
    def __init__(self, workdir: Path, options: dict[str, Any]) -> None:
        self.workdir = workdir.resolve()
        self.options = options
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }

    # -- running the CLI -------------------------------------------------------------------
    def cli(self, step: str, *args: str, shown_lines: int = 12) -> str:
        print(f"\n>>> {step}: dogbreeds {' '.join(args)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "dogbreeds", *args],
            env=self.env, cwd=self.workdir, capture_output=True, text=True,
        )
        output = result.stdout + result.stderr
        print("\n".join(line for line in result.stdout.splitlines()[-shown_lines:]), flush=True)
        if result.returncode != 0:
            tail = "\n".join(output.splitlines()[-30:])
            raise DemoError(f"step '{step}' failed (exit {result.returncode}):\n{tail}")
        return result.stdout

    # -- steps -----------------------------------------------------------------------------
    def run(self) -> DemoSummary:
        started = time.monotonic()
        self._reset_workdir()
        summary = DemoSummary(workdir=str(self.workdir))
        o = self.options
        # One synthesised assembly for every step: the pipelines, bucket and endpoint names that
        # `cdk deploy -c env=dev` would create.
        try:
            self.assembly = synthesize(DEMO_ENV)
            _, monitoring = CloudAssembly.load(self.assembly).monitoring_pipeline()
        except AssemblyError as error:
            raise DemoError(str(error)) from None
        self.monitoring = {p["Name"]: p.get("DefaultValue") for p in monitoring["Parameters"]}
        self.endpoint = self.monitoring["EndpointName"]

        self.cli("generate a sample dataset", "sample-data", "images", "--breeds", str(o["breeds"]),
                 "--per-breed", str(o["per_breed"]), "--size", o["size"], "--seed", "7", "--broken", "2")
        self.cli(
            "train, evaluate and register (local executor)", "local", "run", "--data", "images",
            "--workdir", ".", "--assembly", str(self.assembly), "--param", "Backbone=efficientnet_lite0",
            "--param", f"ImageSize={o['image_size']}", "--param", f"Epochs={o['epochs']}",
            "--param", "BatchSize=16", "--param", f"AccuracyThreshold={o['threshold']}",
        )
        package = self._registered_package()
        summary.registered_version = package["version"]
        summary.test_accuracy = self._test_accuracy(package)
        self.cli("approve it", "local", "models", "approve", str(package["version"]), "--workdir", ".")
        summary.approved = True

        # Traffic: new pictures of the same breeds (a different seed), enough of them that the drift
        # statistics compare distributions rather than a couple of dozen repeated test images.
        self.cli("generate unseen images for traffic", "sample-data", "traffic-images",
                 "--breeds", str(o["breeds"]), "--per-breed", str(max(1, o["traffic"] // o["breeds"])),
                 "--size", o["size"], "--seed", "8")
        traffic_images = self.workdir / "traffic-images"
        server = self._start_server(package)
        try:
            url = server[1]
            summary.requests_sent += self._traffic(url, traffic_images, "clean.jsonl", drift=None)
            self._ground_truth("clean.jsonl")
            clean = self._monitor("monitor the clean traffic")
            summary.clean_violations = clean["data_quality"]["drifted"]
            summary.clean_alarms = clean["alarms"]
            summary.requests_sent += self._traffic(url, traffic_images, "drift.jsonl", drift="brightness")
            self._ground_truth("drift.jsonl")
            drifted = self._monitor("monitor after the brightness-drifted traffic")
            summary.drifted_features = drifted["data_quality"]["drifted"]
            summary.drift_violations = drifted["data_quality"]["violation_count"]
            summary.live_accuracy = drifted["model_quality"]["accuracy"]
            summary.drift_alarms = drifted["alarms"]
            summary.alarms_without_data = drifted["without_data"]
            summary.retrain_decisions = _decisions(drifted["changes"])
            summary.reports = drifted["reports"]
        finally:
            self._stop_server(server[0])
        summary.seconds = time.monotonic() - started
        (self.workdir / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2) + "\n")
        return summary

    def _reset_workdir(self) -> None:
        """Start from an empty folder, but only ever delete one the demo made (it leaves a marker):
        `--workdir .` must not wipe a repository."""
        marker = self.workdir / MARKER_FILE
        if self.workdir.exists() and any(self.workdir.iterdir()):
            if not marker.is_file():
                raise DemoError(
                    f"{self.workdir} is not empty and was not made by the demo; choose another --workdir"
                )
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        marker.write_text("made by `dogbreeds demo`; the next demo run empties this folder\n")

    def _registered_package(self) -> dict[str, Any]:
        from dogbreeds.local_registry import LocalModelRegistry

        package = LocalModelRegistry(self.workdir).latest()
        if package is None:
            raise DemoError("the pipeline succeeded but registered no model version")
        return package

    def _local(self, uri: str) -> Path:
        return local_s3_root(self.workdir) / uri.removeprefix("s3://")

    def _test_accuracy(self, package: dict[str, Any]) -> float | None:
        uri = package.get("model_metrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        if not uri:
            return None
        report = json.loads(self._local(uri).read_text())
        return float(report["multiclass_classification_metrics"]["accuracy"]["value"])

    def _start_server(self, package: dict[str, Any]) -> tuple[subprocess.Popen, str]:
        command = [
            sys.executable, "-m", "dogbreeds", "local", "serve", "--version", str(package["version"]),
            "--group", package["group"], "--workdir", ".", "--port", "0",
            # The endpoint's capture destination is the prefix above <endpoint>/ that the monitor reads.
            "--capture-dir", str(self._local(self.monitoring["CaptureS3Uri"]).parent),
            "--capture-percent", "100", "--endpoint-name", self.endpoint,
        ]
        print(f"\n>>> serve the approved version: dogbreeds {' '.join(command[3:])}", flush=True)
        # The server's output goes to a file, not a pipe: nobody reads a pipe after start-up, and a
        # full pipe would block the server.
        log_path = self.workdir / "serve.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for line in log_path.read_text().splitlines():
                try:
                    url = json.loads(line).get("url") if line.startswith("{") else None
                except ValueError:  # the line is still being written
                    url = None
                if url:
                    print(f"serving at {url}", flush=True)
                    return process, url
            if process.poll() is not None:
                raise DemoError(
                    f"the local server exited with {process.returncode} before it was ready; "
                    f"see {log_path}"
                )
            time.sleep(0.2)
        self._stop_server(process)
        raise DemoError(f"the local server did not report its URL within 120 s; see {log_path}")

    @staticmethod
    def _stop_server(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print("local server stopped", flush=True)

    def _traffic(self, url: str, images: Path, record: str, drift: str | None) -> int:
        args = ["traffic", "--endpoint", url, "--images", str(images),
                "--count", str(self.options["traffic"]), "--record", record, "--seed", "3"]
        if drift:
            args += ["--drift", drift]
        self.cli(f"send {'drifted (' + drift + ')' if drift else 'clean'} traffic", *args)
        return sum(1 for _ in (self.workdir / record).open())

    def _ground_truth(self, record: str) -> None:
        out = self._local(self.monitoring["GroundTruthS3Uri"])
        self.cli("write ground truth", "ground-truth", "--records", record, "--out", str(out))

    def _monitor(self, step: str) -> dict[str, Any]:
        # The whole summary: what the monitors found, every alarm's state, what a change set off.
        self.cli(step, "local", "monitor", "--workdir", ".", "--assembly", str(self.assembly),
                 "--window-hours", "2", shown_lines=40)
        run = json.loads((self.workdir / "monitoring" / LAST_RUN_FILE).read_text())
        result: dict[str, Any] = {
            "reports": [], "alarms": run["alarm_states"], "changes": run["state_changes"],
            "without_data": len(run["alarms_without_data"]),
        }
        for monitor in ("data_quality", "model_quality"):
            found = run["monitors"].get(monitor)
            if not found:
                raise DemoError(f"the {monitor} monitor wrote no summary.json under {run['reports']}")
            summary = found["summary"]
            drifted = sorted(
                {v["feature_name"] for v in found["violations"]
                 if v.get("constraint_check_type") == "baseline_drift_check" and "feature_name" in v}
            )
            accuracy = (summary.get("metrics", {}).get("accuracy") or {}).get("window")
            result[monitor] = {
                "drifted": drifted,
                "violation_count": summary["violation_count"],
                "accuracy": accuracy,
            }
            result["reports"].append(found["report"])
        return result

