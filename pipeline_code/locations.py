"""Where a pipeline definition points: bucket, role, code bundle and container images.

The same definition builder serves the cloud and local mode. CDK passes placeholder strings that it
later replaces with tokens (asset URLs, the role ARN, the region's image registry); the local executor
passes a local bucket name and code staged under its local S3 folder.
"""

from __future__ import annotations

from dataclasses import dataclass

# The image tags live with the inventory of what each image holds (contract/container_images.py);
# re-exported here for the pipeline builders.
from contract.container_images import (
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


# Where a processing step's code bundle input lands in the container.
PROCESSING_BUNDLE_DIR = "/opt/ml/processing/input/bundle"
# Where a training job's "code" channel lands (network isolation ships the bundle as a channel).
TRAINING_CODE_CHANNEL_DIR = "/opt/ml/input/data/code"

# What the serving container is told: the inference toolkit imports SAGEMAKER_PROGRAM from
# SAGEMAKER_SUBMIT_DIRECTORY. model.tar.gz carries code/inference.py (training writes it), so the
# model needs no repack; left empty, the toolkit falls back to handlers that only load TorchScript.
SERVING_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}


def object_name(uri: str) -> str:
    """The file name SageMaker gives an input whose S3 URI names one object: its key's last part.

    A CDK file asset is stored under its content hash (``<hash>.gz``, ``<hash>.sh``), not under
    the name of the file it was made from, so paths inside containers must be derived from this.
    """
    return uri.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Locations:
    bucket: str  # the project bucket's name
    region: str  # the region the definition runs in (SageMaker's toolkits read it)
    role_arn: str  # the SageMaker execution role
    source_bundle_uri: str  # s3:// URI of the code bundle object (pipeline_code/container, tar.gz)
    run_step_uri: str  # s3:// URI of run_step.sh, the processing steps' entry point
    training_image_uri: str
    processing_image_uri: str
    inference_image_uri: str
    kms_key_id: str | None = None  # encrypts volumes and outputs when set

    def s3(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *parts])

    @property
    def processing_bundle_path(self) -> str:
        """Where a processing step finds the bundle: the input folder plus the object's name."""
        return f"{PROCESSING_BUNDLE_DIR}/{object_name(self.source_bundle_uri)}"

    @property
    def training_bundle_path(self) -> str:
        """Where a training job finds the bundle when it arrives as the "code" channel."""
        return f"{TRAINING_CODE_CHANNEL_DIR}/{object_name(self.source_bundle_uri)}"

    def run_step_arguments(self, script: str, *arguments: object) -> list:
        """ContainerArguments of a processing step: run_step.sh unpacks the bundle, runs ``script``."""
        return [self.processing_bundle_path, script, *arguments]
