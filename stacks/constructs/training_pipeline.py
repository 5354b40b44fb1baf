"""The training pipeline as an AWS::SageMaker::Pipeline: the training definition builder bound to
this environment's settings and names, shipped through RenderedPipeline."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract.naming import Names
from contract.settings import TrainingSettings
from pipeline_code.render_cache import cached_render
from stacks.constructs.rendered_pipeline import (  # noqa: F401 (re-exported for callers and tests)
    PLACEHOLDERS,
    RenderedPipeline,
    placeholder_locations,
    substitute_tokens,
)


class TrainingPipeline(RenderedPipeline):
    """Preprocess, train, evaluate, gate on accuracy, register for approval."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: TrainingSettings,
        bucket: s3.IBucket,
        key: kms.IKey,
        execution_role: iam.IRole,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            pipeline_name=names.training_pipeline,
            description="Preprocess, train, evaluate, gate on accuracy, register for approval",
            render=lambda locations: cached_render(
                "pipeline_code.training_pipeline:render_training_pipeline", locations, settings, names
            ),
            bucket=bucket,
            key=key,
            execution_role=execution_role,
        )
