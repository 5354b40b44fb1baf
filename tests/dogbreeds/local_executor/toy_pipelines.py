"""Tiny pipelines rendered with the real sagemaker SDK, over toy step scripts, for executor tests.

Rendering follows the offline recipe of pipeline_code/sagemaker_offline.py (s3:// code URIs,
ScriptProcessor, PyTorch estimator with image_uri, constant default bucket, dummy credentials,
telemetry off), so the executor is tested on the JSON the SDK really emits, not on hand-written
look-alikes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import textwrap
from pathlib import Path
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

BUCKET = "toy-bucket"
ROLE = "arn:aws:iam::111111111111:role/toy"
# A real image of the inventory: local steps run with the import guard of the image they name.
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312"
GROUP = "toy-models"

PRE_SCRIPT = """
import argparse, json, os, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--input-dir", default="/opt/ml/processing/input/data")
parser.add_argument("--out-dir", default="/opt/ml/processing/out")
parser.add_argument("--tag", default="")
parser.add_argument("--fail", default="no")
args = parser.parse_args()
print("pre: reading", args.input_dir)
for i in range(60):
    print(f"pre: progress line {i}")
if args.fail == "yes":
    print("pre: about to fail on purpose", file=sys.stderr)
    raise SystemExit("pre: the toy input is bad")
names = sorted(p.name for p in pathlib.Path(args.input_dir).iterdir())
out = pathlib.Path(args.out_dir)
items = {"names": names, "tag": args.tag, "env": os.environ.get("TOY_ENV")}
(out / "items.json").write_text(json.dumps(items))
"""

TRAIN_SCRIPT = """
import argparse, json, os, pathlib, sys
import toy_helper
parser = argparse.ArgumentParser()
parser.add_argument("--accuracy", type=float)
parser.add_argument("--epochs", type=int)
parser.add_argument("--note", default="")
parser.add_argument("--checkpoint-dir", default="/opt/ml/checkpoints")
args = parser.parse_args()
items = json.loads((pathlib.Path(os.environ["SM_CHANNEL_TRAIN"]) / "items.json").read_text())
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "code").mkdir(exist_ok=True)
(model / "code" / "inference.py").write_text("# toy handler\\n")
(model / "model.json").write_text(json.dumps({"accuracy": args.accuracy, "items": items}))
pathlib.Path(args.checkpoint_dir, "ckpt.txt").write_text(f"epochs={args.epochs}")
config = pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"])
seen = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "helper": toy_helper.NAME,
    "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")},
    "resourceconfig": json.loads((config / "resourceconfig.json").read_text()),
    "hyperparameters": json.loads((config / "hyperparameters.json").read_text()),
    "rank": os.environ.get("RANK"),
    "world_size": os.environ.get("WORLD_SIZE"),
}
out = pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"])
(out / f"seen-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(seen))
for epoch in range(1, args.epochs + 1):
    print(f"epoch={epoch} train_loss={1.0 / epoch:.6f} val_accuracy={args.accuracy:.6f}")
"""

EVAL_SCRIPT = """
import argparse, json, pathlib, tarfile
parser = argparse.ArgumentParser()
parser.add_argument("--model-dir", default="/opt/ml/processing/model")
parser.add_argument("--evaluation-dir", default="/opt/ml/processing/evaluation")
args = parser.parse_args()
with tarfile.open(pathlib.Path(args.model_dir) / "model.tar.gz") as archive:
    model = json.load(archive.extractfile("model.json"))
accuracy = {"value": model["accuracy"], "standard_deviation": "NaN"}
report = {"multiclass_classification_metrics": {"accuracy": accuracy}}
(pathlib.Path(args.evaluation_dir) / "evaluation.json").write_text(json.dumps(report))
"""


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def stage_toy_code(s3_root: Path) -> None:
    """Put the toy scripts where the rendered definitions' code URIs point, in the local S3."""
    code = s3_root / BUCKET / "code"
    write_text(code / "pre.py", PRE_SCRIPT)
    write_text(code / "eval.py", EVAL_SCRIPT)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("train.py", TRAIN_SCRIPT), ("toy_helper.py", "NAME = 'toy helper'\n")):
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (code / "sourcedir.tar.gz").write_bytes(buffer.getvalue())


def stage_toy_data(s3_root: Path, names: tuple[str, ...] = ("a.txt", "b.txt")) -> str:
    data = s3_root / BUCKET / "data"
    for name in names:
        write_text(data / name, f"content of {name}\n")
    return f"s3://{BUCKET}/data"


def _session() -> Any:
    import boto3
    from sagemaker.telemetry import telemetry_logging
    from sagemaker.workflow.pipeline_context import PipelineSession

    # Telemetry would call out to AWS on every render: replace the sender.
    telemetry_logging._send_telemetry_request = lambda *args, **kwargs: None
    boto_session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    session = PipelineSession(boto_session=boto_session, default_bucket=BUCKET)
    session.default_bucket = lambda: BUCKET
    return session


def render_toy_pipeline(
    *,
    instance_count_default: int = 1,
    distributed: bool = False,
    extra_steps: str | None = None,
) -> str:
    """Pre (cached) -> Train (cached) -> Eval (property file) -> Check accuracy -> Register, else Fail.

    `extra_steps` adds "lambda" (a step type local mode refuses) or "depends_on" (a step that
    runs only after Pre by DependsOn, with no data dependency).
    """
    from sagemaker.drift_check_baselines import DriftCheckBaselines
    from sagemaker.inputs import TrainingInput
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
    from sagemaker.pytorch import PyTorch, PyTorchModel
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

    session = _session()
    data = ParameterString(name="DatasetUri", default_value=f"s3://{BUCKET}/data")
    tag = ParameterString(name="Tag", default_value="plain")
    accuracy = ParameterFloat(name="ToyAccuracy", default_value=0.8)
    threshold = ParameterFloat(name="AccuracyThreshold", default_value=0.5)
    epochs = ParameterInteger(name="Epochs", default_value=2)
    count = ParameterInteger(name="InstanceCount", default_value=instance_count_default)
    fail_pre = ParameterString(name="FailPre", default_value="no", enum_values=["no", "yes"])
    approval = ParameterString(name="ApprovalStatus", default_value="PendingManualApproval")

    processor = ScriptProcessor(
        image_uri=IMAGE,
        command=["python3"],
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        sagemaker_session=session,
        env={"TOY_ENV": "from-definition"},
    )
    pre = ProcessingStep(
        name="Pre",
        step_args=processor.run(
            code=f"s3://{BUCKET}/code/pre.py",
            inputs=[ProcessingInput(source=data, destination="/opt/ml/processing/input/data")],
            outputs=[ProcessingOutput(output_name="out", source="/opt/ml/processing/out")],
            arguments=[
                "--input-dir=/opt/ml/processing/input/data",
                "--out-dir",
                "/opt/ml/processing/out",
                "--tag",
                Join(on="-", values=["tag", tag]),
                "--fail",
                fail_pre,
            ],
        ),
        cache_config=CacheConfig(enable_caching=True, expire_after="P30D"),
    )
    estimator = PyTorch(
        image_uri=IMAGE,
        entry_point="train.py",
        source_dir=f"s3://{BUCKET}/code/sourcedir.tar.gz",
        role=ROLE,
        instance_count=count,
        instance_type="ml.g4dn.xlarge",
        sagemaker_session=session,
        hyperparameters={
            "accuracy": accuracy,
            "epochs": epochs,
            "note": "hello world",
            "checkpoint-dir": "/opt/ml/checkpoints",
        },
        output_path=f"s3://{BUCKET}/models",
        checkpoint_s3_uri=f"s3://{BUCKET}/checkpoints",
        disable_profiler=True,
        debugger_hook_config=False,
        metric_definitions=[{"Name": "val_accuracy", "Regex": r"val_accuracy=([0-9.]+)"}],
        **({"distribution": {"torch_distributed": {"enabled": True}}} if distributed else {}),
    )
    train = TrainingStep(
        name="Train",
        step_args=estimator.fit(
            {"train": TrainingInput(pre.properties.ProcessingOutputConfig.Outputs["out"].S3Output.S3Uri)}
        ),
        cache_config=CacheConfig(enable_caching=True, expire_after="PT1H"),
    )
    evaluation = PropertyFile(name="Evaluation", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Eval",
        step_args=processor.run(
            code=f"s3://{BUCKET}/code/eval.py",
            inputs=[
                ProcessingInput(
                    source=train.properties.ModelArtifacts.S3ModelArtifacts,
                    destination="/opt/ml/processing/model",
                )
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
            arguments=[
                "--model-dir",
                "/opt/ml/processing/model",
                "--evaluation-dir",
                "/opt/ml/processing/evaluation",
            ],
        ),
        property_files=[evaluation],
    )
    measured = JsonGet(
        step_name=evaluate.name,
        property_file=evaluation,
        json_path="multiclass_classification_metrics.accuracy.value",
    )
    evaluation_uri = Join(
        on="/",
        values=[
            evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
            "evaluation.json",
        ],
    )
    model = PyTorchModel(
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        image_uri=IMAGE,
        role=ROLE,
        sagemaker_session=session,
        framework_version="2.6",
    )
    register = ModelStep(
        name="Register",
        step_args=model.register(
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instances=["ml.m5.large"],
            transform_instances=["ml.m5.large"],
            model_package_group_name=GROUP,
            approval_status=approval,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=evaluation_uri, content_type="application/json")
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=MetricsSource(
                    s3_uri=f"s3://{BUCKET}/baselines/statistics.json", content_type="application/json"
                )
            ),
        ),
    )
    fail = FailStep(
        name="AccuracyTooLow",
        error_message=Join(on=" ", values=["accuracy", measured, "is below the threshold", threshold]),
    )
    check = ConditionStep(
        name="CheckAccuracy",
        conditions=[ConditionGreaterThanOrEqualTo(left=measured, right=threshold)],
        if_steps=[register],
        else_steps=[fail],
    )
    steps: list[Any] = [pre, train, evaluate, check]
    if extra_steps == "lambda":
        from sagemaker.lambda_helper import Lambda
        from sagemaker.workflow.lambda_step import LambdaStep

        steps.append(
            LambdaStep(
                name="Notify",
                lambda_func=Lambda(
                    function_arn="arn:aws:lambda:us-east-1:111111111111:function:toy", session=session
                ),
            )
        )
    if extra_steps == "depends_on":
        after = ProcessingStep(
            name="After",
            step_args=processor.run(
                code=f"s3://{BUCKET}/code/pre.py",
                inputs=[ProcessingInput(source=data, destination="/opt/ml/processing/input/data")],
                outputs=[ProcessingOutput(output_name="out", source="/opt/ml/processing/out")],
                arguments=[
                    "--input-dir",
                    "/opt/ml/processing/input/data",
                    "--out-dir",
                    "/opt/ml/processing/out",
                ],
            ),
            depends_on=[pre],
        )
        steps.insert(0, after)  # listed first; DependsOn must still put it after Pre
    pipeline = Pipeline(
        name="ToyPipeline",
        parameters=[data, tag, accuracy, threshold, epochs, count, fail_pre, approval],
        steps=steps,
        sagemaker_session=session,
    )
    return pipeline.definition()


def render_conditions(parameters: list[Any], conditions: list[Any]) -> list[dict[str, Any]]:
    """The JSON the SDK emits for `conditions`, taken from a rendered one-step pipeline."""
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.pipeline import Pipeline

    step = ConditionStep(name="Check", conditions=conditions, if_steps=[FailStep(name="Stop")])
    pipeline = Pipeline(name="Conditions", parameters=parameters, steps=[step], sagemaker_session=_session())
    return json.loads(pipeline.definition())["Steps"][0]["Arguments"]["Conditions"]


def parse(definition: str) -> dict[str, Any]:
    return json.loads(definition)
