"""Synth benchmark: `cdk synth` of one environment against a bare one-stack CDK app.

Both run through the same pinned CLI, offline, in the same invocation on the same machine, each
several times; we report medians and their ratio (target <= 1.5). Results are appended to
bench/results/synth.md with the machine description.

    .venv/bin/python bench/bench_synth.py [--env dev] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results" / "synth.md"
TARGET_RATIO = 1.5


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CDK_DISABLE_VERSION_CHECK="1",
               AWS_EC2_METADATA_DISABLED="true", SAGEMAKER_SUPPRESS_V2_WARNING="1")
    return env


def time_synth(app_command: str, extra: list[str], outdir: Path) -> float:
    cdk = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    command = [str(cdk), "synth", "-q", "--app", app_command, "-o", str(outdir), *extra]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"synth failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return elapsed


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    python = sys.executable
    cache = REPO_ROOT / ".cache" / "rendered-pipelines"
    project_app = f"{python} app.py"
    bare_app = f"{python} {REPO_ROOT / 'bench' / 'bare_app' / 'app.py'}"
    project_times, bare_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # Cold: no rendered definition cached yet (first synth after a change to pipeline code).
        shutil.rmtree(cache, ignore_errors=True)
        cold = time_synth(project_app, ["-c", f"env={args.env}"], Path(tmp) / "cold")
        print(f"cold (renders the pipelines): {args.env} {cold:.2f} s")
        for i in range(args.repeats):
            # Interleaved, so drift in machine load hits both alike.
            bare_times.append(time_synth(bare_app, [], Path(tmp) / f"bare{i}"))
            project_times.append(
                time_synth(project_app, ["-c", f"env={args.env}"], Path(tmp) / f"project{i}")
            )
            print(f"run {i + 1}: bare {bare_times[-1]:.2f} s, {args.env} {project_times[-1]:.2f} s")
    bare, project = statistics.median(bare_times), statistics.median(project_times)
    ratio = project / bare
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    row = (f"| {datetime.date.today()} | {args.env} | {project:.2f} | {bare:.2f} | {ratio:.2f} | "
           f"{verdict} <= {TARGET_RATIO} | {cold:.2f} ({cold / bare:.2f}) | {args.repeats} | {machine()} |")
    print(f"\nmedian of {args.repeats}: {args.env} {project:.2f} s, bare {bare:.2f} s, "
          f"ratio {ratio:.2f} ({verdict} target <= {TARGET_RATIO}); cold {cold:.2f} s ({cold / bare:.2f})")
    if not RESULTS.exists():
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# cdk synth: project environment vs a bare one-stack app\n\n"
            "Produced by `make bench-synth` (bench/bench_synth.py); one row per run.\n\n"
            "Cold = the first synth after pipeline code changed, which renders the pipeline definitions "
            "(pipeline_code/render_cache.py reuses them otherwise); the ratio is of warm medians.\n\n"
            "| date | env | project synth s (median) | bare synth s (median) | ratio | target | "
            "cold s (ratio) | repeats | machine |\n|---|---|---|---|---|---|---|---|---|\n"
        )
    with RESULTS.open("a") as results:
        results.write(row + "\n")


if __name__ == "__main__":
    main()
