"""Where a pipeline definition points: bucket, role, code bundle and container images.

The same definition builder serves the cloud and local mode. CDK passes placeholder strings that it
later replaces with tokens (asset URLs, the role ARN, the region's image registry); the local executor
passes a local bucket name and code staged under its local S3 folder.
"""

from __future__ import annotations

from dataclasses import dataclass

# The image tags live with the inventory of what each image holds (pipeline_code/container_images.py);
# re-exported here for the pipeline builders.
from pipeline_code.container_images import (
    INFERENCE_IMAGE_TAG,
    PROCESSING_IMAGE_TAG,
    PYTHON_VERSION,
    PYTORCH_INFERENCE_VERSION,
    PYTORCH_TRAINING_VERSION,
    TRAINING_IMAGE_TAG,
)

__all__ = [
    "INFERENCE_IMAGE_TAG",
    "PROCESSING_IMAGE_TAG",
    "PYTHON_VERSION",
    "PYTORCH_INFERENCE_VERSION",
    "PYTORCH_TRAINING_VERSION",
    "TRAINING_IMAGE_TAG",
    "Locations",
]


@dataclass(frozen=True)
class Locations:
    bucket: str  # the project bucket's name
    role_arn: str  # the SageMaker execution role
    source_bundle_uri: str  # s3:// URI of sourcedir.tar.gz (pipeline_code/container)
    run_step_uri: str  # s3:// URI of run_step.sh, the processing steps' entry point
    training_image_uri: str
    processing_image_uri: str
    inference_image_uri: str
    kms_key_id: str | None = None  # encrypts volumes and outputs when set

    def s3(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *parts])
