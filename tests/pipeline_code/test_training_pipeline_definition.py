"""The rendered training pipeline: golden snapshot, determinism, API-shape validity, references."""

from __future__ import annotations

import json
import re

import pytest
from cdk_helpers import project_context

from contract.naming import Names
from contract.settings import load_environment
from pipeline_code.definition_checks import (
    code_placement_problems,
    iter_steps,
    unresolved_references,
    validate_step_arguments,
)
from pipeline_code.training_pipeline import (
    ACCURACY_JSON_PATH,
    CHECK_STEP,
    FAIL_STEP,
    REGISTER_MODEL_STEP,
    render_training_pipeline,
)
from stacks.constructs.training_pipeline import placeholder_locations


def _render(env: str = "dev", **overrides) -> str:
    _, settings = load_environment(project_context(), env)
    training = settings.training.model_copy(update=overrides) if overrides else settings.training
    return render_training_pipeline(placeholder_locations(), training, Names("dogbreeds", env))


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(_render())




def test_rendering_is_deterministic():
    assert _render() == _render()


def test_no_timestamps_or_random_names(definition):
    text = json.dumps({k: v for k, v in definition.items() if k != "Version"})  # schema version
    assert definition["Version"] == "2020-12-01"
    assert not re.search(r"20\d\d-\d\d-\d\d", text), "a date in the definition"
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", text), "a UUID in the definition"
    assert not re.search(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}", text), "a generated job name"


def test_every_step_is_a_valid_api_request(definition):
    assert validate_step_arguments(definition) == []


def test_validation_catches_a_wrong_member(definition):
    broken = json.loads(json.dumps(definition))
    train = next(s for s in iter_steps(broken) if s["Type"] == "Training")
    train["Arguments"]["ResourceConfig"]["InstanceCnt"] = 2
    [problem] = validate_step_arguments(broken)
    assert "InstanceCnt" in problem and "Train" in problem


def test_every_reference_resolves(definition):
    assert unresolved_references(definition) == []


def test_reference_check_catches_a_dangling_get(definition):
    broken = json.loads(json.dumps(definition).replace("Parameters.Epochs", "Parameters.Epoch"))
    assert any("Parameters.Epoch" in p for p in unresolved_references(broken))


def test_steps_and_gate(definition):
    names = [s["Name"] for s in iter_steps(definition)]
    assert names == [
        "Preprocess", "MergeBaseline", "Train", "Evaluate", CHECK_STEP, REGISTER_MODEL_STEP,
        FAIL_STEP,
    ]  # fmt: skip
    check = next(s for s in definition["Steps"] if s["Name"] == CHECK_STEP)
    [condition] = check["Arguments"]["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == ACCURACY_JSON_PATH
    assert condition["RightValue"] == {"Get": "Parameters.AccuracyThreshold"}
    fail = check["Arguments"]["ElseSteps"][0]
    assert "AccuracyThreshold" in json.dumps(fail["Arguments"]["ErrorMessage"])


def test_parameters_carry_settings_defaults(definition):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    dev_training = project_context()["environments"]["dev"]["training"]
    assert params["Epochs"]["DefaultValue"] == dev_training["epochs"]
    assert params["AccuracyThreshold"]["DefaultValue"] == dev_training["accuracy_threshold"]
    assert {
        "DatasetS3Uri", "PretrainedWeightsS3Prefix", "Backbone", "BatchSize", "LearningRate",
        "ImageSize", "TrainingInstanceType", "TrainingInstanceCount",
    } <= params.keys()


def test_register_step_shape(definition):
    register = next(s for s in iter_steps(definition) if s["Name"] == REGISTER_MODEL_STEP)
    args = register["Arguments"]
    assert args["ModelPackageGroupName"] == Names("dogbreeds", "dev").model_package_group
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert "image/jpeg" in args["InferenceSpecification"]["SupportedContentTypes"]
    baselines = args["DriftCheckBaselines"]
    assert {"ModelDataQuality", "ModelQuality"} <= baselines.keys()
    assert "ModelQuality" in args["ModelMetrics"]
    prediction_baseline = json.dumps(args["CustomerMetadataProperties"]["PredictionBaselineS3Uri"])
    assert "Outputs['prediction_baseline']" in prediction_baseline


def test_training_step_security_and_spot():
    on_demand = json.loads(_render(use_spot=False))
    spot = json.loads(_render(use_spot=True))
    train = next(s for s in on_demand["Steps"] if s["Name"] == "Train")["Arguments"]
    assert train["EnableNetworkIsolation"] is True
    assert train["EnableInterContainerTrafficEncryption"] is True
    assert train["OutputDataConfig"]["KmsKeyId"] == placeholder_locations().kms_key_id
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == placeholder_locations().kms_key_id
    assert "MaxWaitTimeInSeconds" not in train["StoppingCondition"]
    spot_train = next(s for s in spot["Steps"] if s["Name"] == "Train")["Arguments"]
    assert spot_train["EnableManagedSpotTraining"] is True
    assert spot_train["StoppingCondition"]["MaxWaitTimeInSeconds"] >= (
        spot_train["StoppingCondition"]["MaxRuntimeInSeconds"]
    )
    assert spot_train["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"


def test_caching_and_retries_on_job_steps(definition):
    for step in definition["Steps"]:
        if step["Type"] in ("Processing", "Training"):
            assert step["CacheConfig"]["Enabled"] is True, step["Name"]
            retried = {e for policy in step["RetryPolicies"] for e in policy["ExceptionType"]}
            assert {"Step.THROTTLING", "SageMaker.CAPACITY_ERROR"} <= retried, step["Name"]


def test_settings_shape_the_definition():
    # prod trains nothing itself (it receives promoted models), but its names and settings still
    # shape a definition rendered for it.
    prod = json.loads(_render("prod", instance_type="ml.g5.xlarge"))
    params = {p["Name"]: p for p in prod["Parameters"]}
    assert params["TrainingInstanceType"]["DefaultValue"] == "ml.g5.xlarge"
    text = json.dumps(prod)
    assert "dogbreeds-prod-models" in text and "dogbreeds-dev" not in text


def test_code_runs_from_where_sagemaker_puts_it():
    """CDK stores code assets under their content hash; every step must run the file by that name."""
    _, settings = load_environment(project_context(), "dev")
    locations = placeholder_locations("3f9d0c1e.gz", "77ab01.sh")
    definition = json.loads(render_training_pipeline(locations, settings.training, Names("dogbreeds", "dev")))
    assert code_placement_problems(definition) == []
    steps = {s["Name"]: s["Arguments"] for s in iter_steps(definition)}
    app = steps["Preprocess"]["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["/bin/bash", "/opt/ml/processing/input/code/77ab01.sh"]
    assert app["ContainerArguments"][:2] == ["/opt/ml/processing/input/bundle/3f9d0c1e.gz", "preprocess.py"]
    submit = steps["Train"]["HyperParameters"]["sagemaker_submit_directory"]
    assert submit == '"/opt/ml/input/data/code/3f9d0c1e.gz"'


def test_code_placement_check_catches_a_name_sagemaker_does_not_use(definition):
    """The SDK's own default assumes the bundle object is called sourcedir.tar.gz."""
    broken = json.loads(json.dumps(definition))
    train = next(s for s in iter_steps(broken) if s["Type"] == "Training")
    train["Arguments"]["HyperParameters"]["sagemaker_submit_directory"] = (
        '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    )
    [problem] = code_placement_problems(broken)
    assert "Train" in problem and "sourcedir.tar.gz" in problem


def test_the_model_names_its_entry_point_and_the_deploy_region():
    """An empty SAGEMAKER_PROGRAM makes the inference toolkit ignore code/inference.py."""
    definition = json.loads(_render())
    [register] = [s for s in iter_steps(definition) if s["Type"] == "RegisterModel"]
    environment = register["Arguments"]["InferenceSpecification"]["Containers"][0]["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    region = placeholder_locations().region
    assert environment["SAGEMAKER_REGION"] == region
    train = next(s for s in iter_steps(definition) if s["Type"] == "Training")
    assert train["Arguments"]["HyperParameters"]["sagemaker_region"] == f'"{region}"'
    text = json.dumps(definition).replace(placeholder_locations().kms_key_id, "")
    assert not re.search(r"\b[a-z]{2}-[a-z]+-\d\b", text), "a region is baked into the definition"


def test_metric_definitions_read_the_lines_train_py_prints():
    """SageMaker extracts training metrics from the log with these regexes."""
    from pipeline_code.container.dogbreeds_jobs.training.loop import metric_line
    from pipeline_code.training_pipeline import METRIC_DEFINITIONS

    values = {
        "train_loss": 0.4123, "train_accuracy": 0.8125, "val_loss": 0.501,
        "val_accuracy": 0.79, "images_per_second": 123.4,
    }
    line = metric_line(3, values)
    for definition in METRIC_DEFINITIONS:
        match = re.search(definition["Regex"], line)
        assert match, f"{definition['Name']} not found in {line!r}"
        assert float(match.group(1)) == pytest.approx(values[definition["Name"]], rel=1e-3)


def test_weights_channel_follows_the_backbone_parameter(definition):
    train = next(s for s in definition["Steps"] if s["Name"] == "Train")["Arguments"]
    [weights] = [c for c in train["InputDataConfig"] if c["ChannelName"] == "weights"]
    uri = weights["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri == {"Std:Join": {"On": "/", "Values": [
        {"Get": "Parameters.PretrainedWeightsS3Prefix"}, {"Get": "Parameters.Backbone"}, ""]}}


def test_preprocess_shards_the_images_over_its_hosts_and_a_merge_makes_one_baseline(definition):
    """PreprocessInstanceCount hosts each get a disjoint share of the images; the registered
    data baseline is the merge step's, written where the monitors read the preprocess baseline."""
    steps = {s["Name"]: s["Arguments"] for s in iter_steps(definition)}
    preprocess = steps["Preprocess"]
    cluster = preprocess["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == {"Get": "Parameters.PreprocessInstanceCount"}
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["PreprocessInstanceCount"]["DefaultValue"] == 1
    data = next(i for i in preprocess["ProcessingInputs"] if i["InputName"] == "data")
    assert data["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    merge = steps["MergeBaseline"]
    assert merge["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert "merge_baseline.py" in json.dumps(merge["AppSpecification"])
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in
               merge["ProcessingOutputConfig"]["Outputs"]}  # fmt: skip
    # Merged where the monitors read a run's baseline; the hosts' parts beside it, so the merge
    # never rewrites a Preprocess output (that would void Preprocess's cache entry).
    assert outputs["baseline"]["Std:Join"]["Values"][-2:] == ["Preprocess", "baseline"]
    hosts = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in
             preprocess["ProcessingOutputConfig"]["Outputs"]}  # fmt: skip
    assert hosts["baseline"]["Std:Join"]["Values"][-2:] == ["Preprocess", "partial_baseline"]
    register = json.dumps(steps["Register-RegisterModel"]["DriftCheckBaselines"])
    assert "Steps.MergeBaseline.ProcessingOutputConfig" in register
