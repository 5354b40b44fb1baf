"""Where a pipeline definition points: bucket, role, code bundle and container images.

The same definition builder serves the cloud and local mode. CDK passes placeholder strings that it
later replaces with tokens (asset URLs, the role ARN, the region's image registry); the local executor
passes a local bucket name and code staged under its local S3 folder.
"""

from __future__ import annotations

from dataclasses import dataclass

# Container images the steps run in. Training <= 2.8 and inference <= 2.6 are what the pinned
# sagemaker SDK knows; the container code keeps to APIs those versions have.
PYTORCH_TRAINING_VERSION = "2.8.0"
PYTORCH_INFERENCE_VERSION = "2.6.0"
PYTHON_VERSION = "py312"
TRAINING_IMAGE_TAG = f"{PYTORCH_TRAINING_VERSION}-gpu-{PYTHON_VERSION}"
PROCESSING_IMAGE_TAG = f"{PYTORCH_TRAINING_VERSION}-cpu-{PYTHON_VERSION}"
INFERENCE_IMAGE_TAG = f"{PYTORCH_INFERENCE_VERSION}-cpu-{PYTHON_VERSION}"


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
