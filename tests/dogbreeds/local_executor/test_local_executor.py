"""The local executor on pipelines rendered by the real sagemaker SDK, over toy step scripts."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT
from toy_pipelines import BUCKET, GROUP, parse, render_toy_pipeline, stage_toy_code, stage_toy_data

from dogbreeds.local_executor import DefinitionError, parse_definition, run_pipeline
from dogbreeds.local_executor.conditions import evaluate_all
from dogbreeds.local_executor.expressions import ExpressionError, lookup_path
from dogbreeds.local_executor.s3_mapping import ContainerPaths, LocalS3, S3MappingError
from dogbreeds.local_registry import LocalModelRegistry


@pytest.fixture(scope="module")
def toy_definition() -> str:
    return render_toy_pipeline()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    stage_toy_code(work / "s3")
    stage_toy_data(work / "s3")
    return work


def run_quiet(definition: str, workdir: Path, **kwargs):
    stream = io.StringIO()
    result = run_pipeline(definition, workdir=workdir, stream=stream, pipeline_name="ToyPipeline", **kwargs)
    return result, stream.getvalue()


def s3_file(workdir: Path, uri: str) -> Path:
    return LocalS3(workdir / "s3").path_for(uri)


def read_tar_member(archive_path: Path, member: str) -> bytes:
    with tarfile.open(archive_path) as archive:
        return archive.extractfile(member).read()


# -- the whole pipeline -------------------------------------------------------------------------
def test_full_run_passes_gate_and_registers_version_1(toy_definition: str, workdir: Path) -> None:
    result, output = run_quiet(toy_definition, workdir)

    assert result.succeeded, output
    statuses = {name: outcome.status for name, outcome in result.steps.items()}
    assert statuses == {
        "Pre": "Succeeded",
        "Train": "Succeeded",
        "Eval": "Succeeded",
        "CheckAccuracy": "Succeeded",
        "Register-RegisterModel": "Succeeded",
        "AccuracyTooLow": "Skipped",
    }
    assert list(result.steps) == [
        "Pre",
        "Train",
        "Eval",
        "CheckAccuracy",
        "Register-RegisterModel",
        "AccuracyTooLow",
    ]
    package = LocalModelRegistry(workdir).get(1, GROUP)
    assert package["approval_status"] == "PendingManualApproval"
    assert package["model_data_url"] == result.properties["Train"]["ModelArtifacts"]["S3ModelArtifacts"]
    # The metrics URI (a Join over Eval's output) names the real evaluation report.
    report = json.loads(s3_file(workdir, package["metrics_uris"]["ModelQuality.Statistics"]).read_text())
    assert report["multiclass_classification_metrics"]["accuracy"]["value"] == 0.8
    assert package["baseline_uris"] == {
        "ModelDataQuality.Statistics": f"s3://{BUCKET}/baselines/statistics.json"
    }
    assert "Bias" not in package["model_metrics"]
    assert "[5/6] Register-RegisterModel: Succeeded, version 1" in output
    # Without --verbose the console still shows training's per-epoch metric lines, and only those.
    assert "  Train | epoch=1 train_loss=1.000000 val_accuracy=0.800000\n" in output
    assert "  Train | epoch=2 train_loss=0.500000 val_accuracy=0.800000\n" in output
    assert " | " not in output.replace("  Train | epoch=", "")
    record = json.loads((result.execution_dir / "execution.json").read_text())
    assert record["status"] == "Succeeded" and record["parameters"]["AccuracyThreshold"] == 0.5


def test_training_step_gets_the_sagemaker_training_contract(toy_definition: str, workdir: Path) -> None:
    result, output = run_quiet(toy_definition, workdir)
    assert result.succeeded, output
    train = result.properties["Train"]
    job = train["TrainingJobName"]
    model_uri = train["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{BUCKET}/models/{job}/output/model.tar.gz"
    model_tar = s3_file(workdir, model_uri)
    with tarfile.open(model_tar) as archive:
        names = archive.getnames()
    # SageMaker packs the model folder's contents at the archive root, without "./".
    assert sorted(names) == ["code", "code/inference.py", "model.json"]
    model = json.loads(read_tar_member(model_tar, "model.json"))
    assert model["items"]["names"] == ["a.txt", "b.txt"]

    seen = json.loads(
        read_tar_member(s3_file(workdir, model_uri.replace("model.tar.gz", "output.tar.gz")), "seen-0.json")
    )
    step_opt_ml = result.execution_dir / "Train" / "opt" / "ml"
    assert seen["argv"] == [
        "--accuracy", "0.8",
        "--checkpoint-dir", str(step_opt_ml / "checkpoints"),
        "--epochs", "2",
        "--note", "hello world",
    ]  # fmt: skip
    env = seen["env"]
    assert Path(env["SM_CHANNEL_TRAIN"]) == step_opt_ml / "input" / "data" / "train"
    assert Path(env["SM_MODEL_DIR"]) == step_opt_ml / "model"
    assert Path(env["SM_OUTPUT_DATA_DIR"]) == step_opt_ml / "output" / "data"
    assert json.loads(env["SM_HPS"]) == {
        "accuracy": 0.8,
        "epochs": 2,
        "note": "hello world",
        "checkpoint-dir": str(step_opt_ml / "checkpoints"),
    }
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NUM_GPUS"].isdigit()
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert seen["cwd"] == str(step_opt_ml / "code") and seen["helper"] == "toy helper"
    assert seen["resourceconfig"]["current_host"] == "algo-1"
    assert seen["resourceconfig"]["current_instance_type"] == "ml.g4dn.xlarge"
    assert seen["hyperparameters"]["sagemaker_program"] == '"train.py"'
    # Checkpoints are synced to CheckpointConfig.S3Uri, as managed spot training expects.
    assert s3_file(workdir, f"s3://{BUCKET}/checkpoints/ckpt.txt").read_text() == "epochs=2"
    assert train["FinalMetricDataList"][0]["MetricName"] == "val_accuracy"
    assert train["FinalMetricDataList"][0]["Value"] == pytest.approx(0.8)


def test_parameter_overrides_reach_the_steps(toy_definition: str, workdir: Path) -> None:
    result, output = run_quiet(
        toy_definition, workdir, parameters={"Tag": "custom", "Epochs": "3", "ApprovalStatus": "Approved"}
    )
    assert result.succeeded, output
    items_uri = result.properties["Pre"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    items = json.loads(s3_file(workdir, items_uri + "/items.json").read_text())
    assert items["tag"] == "tag-custom"  # Std:Join over a parameter, in ContainerArguments
    assert items["env"] == "from-definition"  # the processor's Environment
    assert s3_file(workdir, f"s3://{BUCKET}/checkpoints/ckpt.txt").read_text() == "epochs=3"
    assert LocalModelRegistry(workdir).get(1, GROUP)["approval_status"] == "Approved"
    assert result.parameters["Epochs"] == 3


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"Epochs": "two"}, "parameter 'Epochs' is Integer; 'two' is not a valid Integer"),
        ({"AccuracyThreshold": "high"}, "parameter 'AccuracyThreshold' is Float"),
        ({"FailPre": "maybe"}, "parameter 'FailPre' must be one of 'no', 'yes'"),
        ({"Epoch": "2"}, "unknown parameter(s) Epoch; this pipeline has: AccuracyThreshold, ApprovalStatus"),
    ],
)
def test_bad_parameter_overrides_are_refused_before_running(
    toy_definition: str, workdir: Path, overrides: dict, expected: str
) -> None:
    with pytest.raises(DefinitionError) as error:
        run_quiet(toy_definition, workdir, parameters=overrides)
    assert expected in str(error.value)
    assert not (workdir / "executions").exists()


def test_impossible_threshold_ends_in_the_fail_step(toy_definition: str, workdir: Path) -> None:
    result, output = run_quiet(toy_definition, workdir, parameters={"AccuracyThreshold": "0.95"})

    assert result.status == "Failed"
    assert result.failed_step == "AccuracyTooLow"
    # The Fail message is a Join over a JsonGet of the evaluation report and the parameter.
    assert result.failure_reason == "accuracy 0.8 is below the threshold 0.95"
    assert result.steps["Register-RegisterModel"].status == "Skipped"
    assert "outcome false" in output
    assert LocalModelRegistry(workdir).packages() == []


def test_command_line_exit_code_says_whether_the_pipeline_succeeded(
    toy_definition: str, workdir: Path, tmp_path: Path
) -> None:
    definition_file = tmp_path / "definition.json"
    definition_file.write_text(toy_definition)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "dogbreeds.local_executor",
        str(definition_file),
        "--workdir",
        str(workdir),
    ]

    passed = subprocess.run(
        [*command, "--pipeline-name", "ToyPipeline", "--verbose"],
        env=environment,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    failed = subprocess.run(
        [*command, "--param", "AccuracyThreshold=0.99"],
        env=environment,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    refused = subprocess.run(
        [*command, "--param", "Epochs"], env=environment, capture_output=True, text=True, cwd=tmp_path
    )

    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "pipeline succeeded" in passed.stdout
    assert "  Pre | pre: progress line 0\n" in passed.stdout  # --verbose streams step logs
    assert "  Train | epoch=2 train_loss=0.500000" in passed.stdout
    assert failed.returncode == 1
    assert (
        "pipeline failed at step 'AccuracyTooLow': accuracy 0.8 is below the threshold 0.99" in failed.stdout
    )
    assert "Pre: Cached" in failed.stdout  # the second run reuses the first one's preprocessing
    assert refused.returncode == 2 and "--param expects NAME=VALUE" in refused.stderr


def test_failing_step_names_itself_and_shows_the_end_of_its_log(toy_definition: str, workdir: Path) -> None:
    result, output = run_quiet(toy_definition, workdir, parameters={"FailPre": "yes"})

    assert result.status == "Failed" and result.failed_step == "Pre"
    assert "step 'Pre' failed: command exited with status 1" in output
    assert "--- last lines of the log of step 'Pre' ---" in output
    assert "pre: the toy input is bad" in output
    assert "pre: progress line 59" in output
    assert "pre: progress line 0\n" not in output  # only the end of a long log
    assert "Train" not in result.steps  # nothing runs after a failure
    log = (result.execution_dir / "Pre" / "step.log").read_text()
    assert "pre: progress line 0\n" in log  # the whole log stays in the step's log file


def test_missing_input_fails_the_step_with_the_uri(toy_definition: str, workdir: Path) -> None:
    result, output = run_quiet(
        toy_definition, workdir, parameters={"DatasetUri": f"s3://{BUCKET}/nothing-here"}
    )
    assert result.failed_step == "Pre"
    assert f"no objects at 's3://{BUCKET}/nothing-here'" in result.failure_reason


# -- refusing what local mode cannot run --------------------------------------------------------
def test_unsupported_step_type_is_refused_before_anything_runs(workdir: Path) -> None:
    definition = render_toy_pipeline(extra_steps="lambda")
    with pytest.raises(DefinitionError) as error:
        run_quiet(definition, workdir)
    message = str(error.value)
    assert "step 'Notify' has type 'Lambda'" in message
    assert "supported step types: Processing, Training, Condition, Fail, RegisterModel" in message
    assert not (workdir / "executions").exists()


def test_manifest_inputs_are_refused_before_anything_runs(toy_definition: str, workdir: Path) -> None:
    definition = json.loads(toy_definition)
    train = next(s for s in definition["Steps"] if s["Type"] == "Training")
    train["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] = "ManifestFile"
    with pytest.raises(DefinitionError, match="has S3DataType 'ManifestFile'; local mode supports S3Prefix"):
        run_quiet(json.dumps(definition), workdir)
    assert not (workdir / "executions").exists()


def test_references_to_missing_steps_and_cycles_are_refused(toy_definition: str) -> None:
    document = parse(toy_definition)
    without_pre = copy.deepcopy(document)
    without_pre["Steps"] = [s for s in without_pre["Steps"] if s["Name"] != "Pre"]
    with pytest.raises(DefinitionError, match="step 'Train' reads .*Steps.Pre.*there is no step 'Pre'"):
        parse_definition(without_pre)

    cyclic = copy.deepcopy(document)
    cyclic["Steps"][0]["DependsOn"] = ["Eval"]
    with pytest.raises(DefinitionError, match="cycle: Eval, Pre, Train"):
        parse_definition(cyclic)


def test_bad_conditions_are_refused_or_fail_their_step(toy_definition: str, workdir: Path) -> None:
    document = parse(toy_definition)
    condition = document["Steps"][3]["Arguments"]["Conditions"][0]
    assert document["Steps"][3]["Name"] == "CheckAccuracy" and condition["Type"] == "GreaterThanOrEqualTo"

    unknown_type = copy.deepcopy(document)
    unknown_type["Steps"][3]["Arguments"]["Conditions"][0]["Type"] = "Between"
    with pytest.raises(DefinitionError, match="'CheckAccuracy' uses condition type 'Between'; supported: Eq"):
        run_quiet(json.dumps(unknown_type), workdir)
    assert not (workdir / "executions").exists()

    text_against_number = copy.deepcopy(document)
    text_against_number["Steps"][3]["Arguments"]["Conditions"][0]["RightValue"] = "high"
    result, output = run_quiet(json.dumps(text_against_number), workdir)
    assert result.failed_step == "CheckAccuracy"
    assert "cannot compare 0.8 GreaterThanOrEqualTo 'high'" in result.failure_reason


def test_depends_on_orders_steps_without_data_dependencies(workdir: Path) -> None:
    definition = render_toy_pipeline(extra_steps="depends_on")
    assert parse(definition)["Steps"][0]["Name"] == "After"  # listed first in the definition
    parsed = parse_definition(definition)
    assert parsed.order.index("Pre") < parsed.order.index("After")
    result, output = run_quiet(definition, workdir)
    assert result.succeeded, output
    assert list(result.steps).index("After") == list(result.steps).index("Pre") + 1


# -- caching ------------------------------------------------------------------------------------
def test_cached_step_is_skipped_until_its_input_changes(toy_definition: str, workdir: Path) -> None:
    first, _ = run_quiet(toy_definition, workdir)
    second, output = run_quiet(toy_definition, workdir, parameters={"AccuracyThreshold": "0.6"})
    assert second.succeeded
    # Train is downstream of a cache hit: its inputs are the earlier run's, so it is a hit too.
    assert [second.steps[s].status for s in ("Pre", "Train", "Eval")] == ["Cached", "Cached", "Succeeded"]
    assert f"reused the outputs of execution {first.execution_id}" in output
    assert not (second.execution_dir / "Pre" / "step.log").exists()  # the script did not run again
    # As on SageMaker, a cache hit hands the earlier run's output locations to later steps.
    model_input = second.properties["Eval"]["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    assert model_input == first.properties["Train"]["ModelArtifacts"]["S3ModelArtifacts"]
    assert first.execution_id in model_input
    assert LocalModelRegistry(workdir).latest(GROUP)["version"] == 2

    stage_toy_data(workdir / "s3", names=("a.txt", "b.txt", "c.txt"))
    third, _ = run_quiet(toy_definition, workdir)
    assert third.steps["Pre"].status == "Succeeded" and third.steps["Train"].status == "Succeeded"
    items_uri = third.properties["Pre"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert json.loads(s3_file(workdir, items_uri + "/items.json").read_text())["names"] == [
        "a.txt",
        "b.txt",
        "c.txt",
    ]

    changed_argument, _ = run_quiet(toy_definition, workdir, parameters={"Epochs": "3"})
    assert [changed_argument.steps[s].status for s in ("Pre", "Train")] == ["Cached", "Succeeded"]
    no_cache, _ = run_quiet(toy_definition, workdir, use_cache=False)
    assert no_cache.steps["Pre"].status == "Succeeded"


def cache_entries(workdir: Path) -> list[Path]:
    return sorted((workdir / "cache").glob("*.json"))


def test_damaged_cache_entries_are_misses_named_on_the_console(toy_definition: str, workdir: Path) -> None:
    run_quiet(toy_definition, workdir)
    pre_entry, train_entry = sorted(cache_entries(workdir), key=lambda p: "Training" in p.read_text())
    train_entry.write_text("[1, 2]")  # valid JSON, wrong shape
    again, output = run_quiet(toy_definition, workdir)
    assert again.succeeded, output
    assert [again.steps[s].status for s in ("Pre", "Train")] == ["Cached", "Succeeded"]
    damaged = [line for line in output.splitlines() if " is damaged " in line]
    assert damaged == [f"step 'Train': cache entry {train_entry} is damaged (a JSON list, not an object); "
                       "running the step"]  # fmt: skip

    pre_entry.write_text(pre_entry.read_text()[:40])  # truncated JSON
    third, output = run_quiet(toy_definition, workdir)
    assert third.succeeded, output
    assert third.steps["Pre"].status == "Succeeded"
    damaged = [line for line in output.splitlines() if " is damaged " in line]
    assert len(damaged) == 1 and f"cache entry {pre_entry} is damaged" in damaged[0], output
    # The re-run stored a sound entry again: the next run reuses it.
    fourth, _ = run_quiet(toy_definition, workdir)
    assert [fourth.steps[s].status for s in ("Pre", "Train")] == ["Cached", "Cached"]


def test_a_cached_output_changed_since_it_was_stored_makes_its_step_run_again(
    toy_definition: str, workdir: Path
) -> None:
    first, _ = run_quiet(toy_definition, workdir)
    model = s3_file(workdir, first.properties["Train"]["ModelArtifacts"]["S3ModelArtifacts"])
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a truncated model.tar.gz
    second, output = run_quiet(toy_definition, workdir)
    assert second.succeeded, output  # Evaluate does not fail on the damaged archive
    assert [second.steps[s].status for s in ("Pre", "Train", "Eval")] == ["Cached", "Succeeded", "Succeeded"]
    assert "changed since" in output and "model.tar.gz" in output

    # Same size, other bytes: the content hash catches it.
    items_uri = second.properties["Pre"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    items = s3_file(workdir, items_uri + "/items.json")
    text = items.read_text()
    items.write_text(text.replace("a.txt", "z.txt"))
    assert len(items.read_text()) == len(text)
    third, output = run_quiet(toy_definition, workdir)
    assert third.steps["Pre"].status == "Succeeded", output
    assert "items.json: its content differs" in output
    fresh_uri = third.properties["Pre"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert json.loads(s3_file(workdir, fresh_uri + "/items.json").read_text())["names"] == ["a.txt", "b.txt"]


_STORE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from dogbreeds.local_executor.caching import StepCache
from dogbreeds.local_executor.s3_mapping import LocalS3

folder, s3, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cache = StepCache(folder, LocalS3(s3))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
properties = {"ProcessingOutputConfig": {"Outputs": []}, "Padding": "x" * 100_000}
try:
    cache.store("k", "Processing", "exec-2", properties)
except OSError as error:
    print("store failed:", error)
"""


def test_a_cache_entry_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    from dogbreeds.local_executor.caching import StepCache

    cache = StepCache(tmp_path / "cache", LocalS3(tmp_path / "s3"))
    cache.store("k", "Processing", "exec-1", {"ProcessingOutputConfig": {"Outputs": []}})
    assert cache.lookup("k", None)["execution_id"] == "exec-1"
    # A disk that fills up while the next entry is written (RLIMIT_FSIZE stands in for it).
    result = subprocess.run(
        [sys.executable, "-c", _STORE_UNDER_A_SIZE_LIMIT, str(tmp_path / "cache"), str(tmp_path / "s3"),
         "4096"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "store failed" in result.stdout
    assert cache.lookup("k", None)["execution_id"] == "exec-1"  # the earlier entry is intact
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["k.json"]  # no temp file left


# -- data-parallel training ---------------------------------------------------------------------
def test_torch_distributed_training_runs_under_the_toolkits_torchrun(workdir: Path) -> None:
    """The PyTorch toolkit launches through torchrun, one process per GPU (one on a CPU host);
    local mode runs one instance and says so in the step's log."""
    definition = render_toy_pipeline(instance_count_default=2, distributed=True)
    result, output = run_quiet(definition, workdir)
    assert result.succeeded, output
    output_tar = s3_file(workdir, result.properties["Train"]["ModelArtifacts"]["S3ModelArtifacts"]).with_name(
        "output.tar.gz"
    )
    seen = json.loads(read_tar_member(output_tar, "seen-0.json"))
    assert (seen["rank"], seen["world_size"]) == ("0", "1")
    log = (result.execution_dir / "Train" / "step.log").read_text()
    assert "Starting distributed training through torchrun" in log
    assert "InstanceCount=2; local mode runs one instance" in log


# -- expressions, conditions and paths, on SDK-rendered pieces ------------------------------------
def test_conditions_the_sdk_emits_evaluate_both_ways() -> None:
    from sagemaker.workflow.conditions import (
        ConditionEquals,
        ConditionGreaterThan,
        ConditionGreaterThanOrEqualTo,
        ConditionIn,
        ConditionLessThan,
        ConditionLessThanOrEqualTo,
        ConditionNot,
        ConditionOr,
    )
    from sagemaker.workflow.parameters import ParameterFloat, ParameterString
    from toy_pipelines import render_conditions

    score, mode = (
        ParameterFloat(name="Score", default_value=0.0),
        ParameterString(name="Mode", default_value=""),
    )
    conditions = [
        ConditionGreaterThanOrEqualTo(left=score, right=0.5),
        ConditionGreaterThan(left=score, right=0.4),
        ConditionLessThan(left=score, right=0.9),
        ConditionLessThanOrEqualTo(left=score, right=0.8),
        ConditionNot(expression=ConditionEquals(left=mode, right="off")),
        ConditionOr(
            conditions=[
                ConditionIn(value=mode, in_values=["fast", "full"]),
                ConditionEquals(left=score, right=1),
            ]
        ),
    ]
    rendered = render_conditions([score, mode], conditions)

    def holds(score_value: float, mode_value: str) -> bool:
        values = {"Parameters.Score": score_value, "Parameters.Mode": mode_value}
        return evaluate_all(rendered, lambda v: values[v["Get"]] if isinstance(v, dict) else v)

    assert holds(0.8, "fast")
    assert not holds(0.45, "fast")  # below 0.5
    assert not holds(0.85, "full")  # above 0.8
    assert not holds(0.8, "off")  # Not(Equals)
    assert not holds(0.8, "other")  # Or(In, Equals) both false
    # In, Not and Or alone, both ways.
    assert evaluate_all(
        [rendered[5]],
        lambda v: {"Parameters.Score": 1, "Parameters.Mode": "x"}[v["Get"]] if isinstance(v, dict) else v,
    )


def test_property_paths_select_list_items_by_name_and_index() -> None:
    properties = {"ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "a", "S3Output": {"S3Uri": "s3://b/a"}},
        {"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/e"}},
    ]}}  # fmt: skip
    assert (
        lookup_path(properties, ".ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri", "t")
        == "s3://b/e"
    )
    assert lookup_path(properties, ".ProcessingOutputConfig.Outputs[0].OutputName", "t") == "a"
    with pytest.raises(ExpressionError, match="nothing at .*Outputs\\['missing'\\]"):
        lookup_path(properties, ".ProcessingOutputConfig.Outputs['missing'].S3Output", "t")


def test_container_paths_and_s3_uris_map_to_local_folders(tmp_path: Path) -> None:
    paths = ContainerPaths(tmp_path / "step")
    local = str(tmp_path / "step" / "opt" / "ml")
    assert paths.map(
        ["/opt/ml/processing/x", "--d=/opt/ml/model", "/opt/mlx", "/data/opt/ml/y", "/opt/ml"]
    ) == [
        f"{local}/processing/x",
        f"--d={local}/model",
        "/opt/mlx",
        "/data/opt/ml/y",
        local,
    ]
    with pytest.raises(S3MappingError, match="outside /opt/ml"):
        paths.local("/tmp/elsewhere")

    s3 = LocalS3(tmp_path / "s3")
    assert s3.path_for("s3://bucket/key/part/") == tmp_path / "s3" / "bucket" / "key" / "part"
    for bad in ("https://bucket/key", "s3://", "s3://bucket/../other"):
        with pytest.raises(S3MappingError):
            s3.path_for(bad)
    (tmp_path / "s3" / "bucket" / "data").mkdir(parents=True)
    (tmp_path / "s3" / "bucket" / "data" / "train-1.csv").write_text("1")
    (tmp_path / "s3" / "bucket" / "data" / "test.csv").write_text("2")
    (tmp_path / "s3" / "bucket" / "data" / "train" / "a").mkdir(parents=True)
    (tmp_path / "s3" / "bucket" / "data" / "train" / "a" / "b.jpg").write_text("3")

    def staged(uri: str, name: str) -> list[str]:
        s3.download(uri, tmp_path / name)
        return sorted(p.relative_to(tmp_path / name).as_posix() for p in (tmp_path / name).rglob("*"))

    # SageMaker's S3Prefix rule: every key starting with the URI's key, at the rest of the key.
    assert staged("s3://bucket/data/train", "prefix") == ["-1.csv", "a", "a/b.jpg"]
    assert staged("s3://bucket/data/train/", "folder") == ["a", "a/b.jpg"]
    # A URI that names one object lands under that object's own name.
    assert staged("s3://bucket/data/test.csv", "object") == ["test.csv"]
    (tmp_path / "s3" / "bucket" / "data" / "report.json").write_text("{not json")
    with pytest.raises(S3MappingError, match="'s3://bucket/data/report.json' is not valid JSON"):
        s3.read_json("s3://bucket/data/report.json")


def test_sharded_by_s3_key_gives_each_host_a_disjoint_share_of_the_objects(tmp_path: Path) -> None:
    from dogbreeds.local_executor.processing import processing_instance_count
    from dogbreeds.local_executor.s3_mapping import LocalS3

    local_s3 = LocalS3(tmp_path / "s3")
    for i in range(10):
        path = tmp_path / "s3" / "bucket" / "data" / f"class_{i % 3}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(i))
    shares = []
    for index in range(3):
        destination = tmp_path / f"host-{index}"
        local_s3.download("s3://bucket/data/", destination, shard=(index, 3))
        shares.append({p.relative_to(destination).as_posix() for p in destination.rglob("*.jpg")})
    assert sum(len(s) for s in shares) == 10 and len(set().union(*shares)) == 10
    assert [len(s) for s in shares] == [4, 3, 3]
    assert processing_instance_count({"ProcessingResources": {"ClusterConfig": {"InstanceCount": 3}}}) == 3
