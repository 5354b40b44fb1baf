"""Render a SageMaker pipeline definition at synth and ship it as an AWS::SageMaker::Pipeline.

The sagemaker SDK renders the definition with placeholder strings where deploy-time values belong
(asset URLs, bucket, role, key, the region's image registry); each placeholder is then replaced by
its CDK token, which turns the definition into an Fn::Join. Same code and settings, same template.
Any definition builder that takes a ``Locations`` works: the training and the monitoring pipelines
both come through here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aws_cdk import Aws, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from pipeline_code.code_bundle import (
    RUN_STEP_SCRIPT,
    SOURCE_BUNDLE_NAME,
    build_source_bundle,
    bundle_fingerprint,
)
from pipeline_code.locations import (
    INFERENCE_IMAGE_TAG,
    PROCESSING_IMAGE_TAG,
    TRAINING_IMAGE_TAG,
    Locations,
)
from stacks.dlc_registries import pytorch_image_uri

BUNDLE_CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "bundles"

# Valid-looking stand-ins the SDK accepts; none can occur in a real definition by accident. Code
# assets keep their real object keys (known at synth: the content hash), so every path SageMaker
# derives from a key's name is right; only the bootstrap bucket's name is a deploy-time value.
PLACEHOLDERS = {
    "bucket": "placeholder-project-bucket-0f3a9c",
    "region": "placeholder-region-0f3a9c",
    "role": "arn:aws:iam::000000000000:role/placeholder-execution-role-0f3a9c",
    "asset_bucket": "placeholder-asset-bucket-0f3a9c",
    "training_image": "placeholder-training-image-0f3a9c",
    "processing_image": "placeholder-processing-image-0f3a9c",
    "inference_image": "placeholder-inference-image-0f3a9c",
    "key": "arn:aws:kms:us-east-1:000000000000:key/placeholder-key-0f3a9c",
}

# A definition builder: Locations in, compact definition JSON out (settings and names bound by the caller).
RenderFunction = Callable[[Locations], str]


# Object keys for renders outside an app (tests); in an app they are the assets' own keys.
EXAMPLE_BUNDLE_KEY = "0f3a9c-example-bundle.gz"
EXAMPLE_RUN_STEP_KEY = "0f3a9c-example-run-step.sh"


def placeholder_locations(
    bundle_key: str = EXAMPLE_BUNDLE_KEY, run_step_key: str = EXAMPLE_RUN_STEP_KEY
) -> Locations:
    assets = f"s3://{PLACEHOLDERS['asset_bucket']}"
    return Locations(
        bucket=PLACEHOLDERS["bucket"],
        region=PLACEHOLDERS["region"],
        role_arn=PLACEHOLDERS["role"],
        source_bundle_uri=f"{assets}/{bundle_key}",
        run_step_uri=f"{assets}/{run_step_key}",
        training_image_uri=PLACEHOLDERS["training_image"],
        processing_image_uri=PLACEHOLDERS["processing_image"],
        inference_image_uri=PLACEHOLDERS["inference_image"],
        kms_key_id=PLACEHOLDERS["key"],
    )


def substitute_tokens(definition: str, values: dict[str, str]) -> str:
    """Replace each placeholder by its value. Values are CDK tokens encoded as strings; CDK resolves
    a string with tokens in it into an Fn::Join at synth."""
    for name, value in values.items():
        placeholder = PLACEHOLDERS[name]
        if placeholder not in definition:
            raise ValueError(f"placeholder for {name!r} not found in the rendered definition")
        definition = definition.replace(placeholder, value)
    leftovers = [name for name, p in PLACEHOLDERS.items() if p in definition]
    if leftovers:
        raise ValueError(f"placeholders left in the definition: {leftovers}")
    return definition


class RenderedPipeline(Construct):
    """A SageMaker pipeline from ``render``, its code assets, and read access to them for the role.

    Only the deploy-time values the definition actually uses become tokens, so a pipeline without a
    training step does not pull the training image's registry mapping into its stack.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline_name: str,
        description: str,
        render: RenderFunction,
        bucket: s3.IBucket,
        key: kms.IKey,
        execution_role: iam.IRole,
    ) -> None:
        super().__init__(scope, construct_id)
        # Content-addressed, so every synth of the same code reuses one file instead of leaving a
        # temporary folder behind.
        bundle = BUNDLE_CACHE_DIR / bundle_fingerprint() / SOURCE_BUNDLE_NAME
        if not bundle.is_file():
            build_source_bundle(bundle)
        self.source_bundle = s3_assets.Asset(self, "SourceBundle", path=str(bundle))
        self.run_step = s3_assets.Asset(self, "RunStepScript", path=str(RUN_STEP_SCRIPT))

        for asset in (self.source_bundle, self.run_step):
            if Token.is_unresolved(asset.s3_object_key):
                raise ValueError(
                    f"{asset.node.path}: the stack synthesizer gives code assets deploy-time object "
                    "keys; the pipeline needs keys known at synth (DefaultStackSynthesizer), because "
                    "SageMaker names downloaded code after its key"
                )
        self.definition = render(
            placeholder_locations(self.source_bundle.s3_object_key, self.run_step.s3_object_key)
        )
        # Lazily built: creating an image token adds the registry mapping to the stack.
        token_for: dict[str, Callable[[], str]] = {
            "bucket": lambda: bucket.bucket_name,
            "region": lambda: Aws.REGION,
            "role": lambda: execution_role.role_arn,
            "asset_bucket": lambda: self.source_bundle.s3_bucket_name,
            "training_image": lambda: pytorch_image_uri(self, "pytorch-training", TRAINING_IMAGE_TAG),
            "processing_image": lambda: pytorch_image_uri(self, "pytorch-training", PROCESSING_IMAGE_TAG),
            "inference_image": lambda: pytorch_image_uri(self, "pytorch-inference", INFERENCE_IMAGE_TAG),
            "key": lambda: key.key_arn,
        }
        body = substitute_tokens(
            self.definition,
            {name: make() for name, make in token_for.items() if PLACEHOLDERS[name] in self.definition},
        )
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description=description,
            role_arn=execution_role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": body},
        )
        # Exactly the two code objects, not the whole asset bucket. SageMaker lists an S3Prefix
        # input's key as a prefix before it downloads, so the role may list exactly those keys.
        code_assets = (self.source_bundle, self.run_step)
        iam.Policy(
            self,
            "ReadPipelineCode",
            roles=[execution_role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadCodeObjects",
                    actions=["s3:GetObject"],
                    resources=[asset.bucket.arn_for_objects(asset.s3_object_key) for asset in code_assets],
                ),
                iam.PolicyStatement(
                    sid="ListCodeObjects",
                    actions=["s3:ListBucket"],
                    # The bucket the stack's synthesizer put the assets in.
                    resources=[asset.bucket.bucket_arn for asset in code_assets],
                    conditions={
                        "StringEquals": {"s3:prefix": [asset.s3_object_key for asset in code_assets]}
                    },
                ),
            ],
        )
