"""Locations for local mode: code staged under the local S3 folder, no role, key or registry.

The local executor maps ``s3://BUCKET/KEY`` to ``<workdir>/s3/BUCKET/KEY``; this stages the code
bundle there (content-addressed, like a CDK asset) so the one pipeline definition runs unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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

LOCAL_BUCKET = "dogbreeds-local"
LOCAL_ENV = "local"
# Shaped like the real values so the SDK accepts them; nothing local uses them.
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/dogbreeds-local-execution"
LOCAL_REGISTRY = "local.dkr.ecr.local.amazonaws.com"


def local_s3_root(workdir: Path) -> Path:
    return workdir / "s3"


def local_path_for(workdir: Path, uri: str) -> Path:
    """``s3://bucket/key`` -> ``<workdir>/s3/bucket/key``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return local_s3_root(workdir) / uri.removeprefix("s3://")


def prepare_local_locations(workdir: Path, bucket: str = LOCAL_BUCKET) -> Locations:
    """Stage the current container code under the local S3 root and return the Locations."""
    code_prefix = f"code/{bundle_fingerprint()}"
    bundle_uri = f"s3://{bucket}/{code_prefix}/{SOURCE_BUNDLE_NAME}"
    run_step_uri = f"s3://{bucket}/{code_prefix}/{RUN_STEP_SCRIPT.name}"
    bundle_path = local_path_for(workdir, bundle_uri)
    if not bundle_path.exists():
        build_source_bundle(bundle_path)
    run_step_path = local_path_for(workdir, run_step_uri)
    if not run_step_path.exists():
        run_step_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RUN_STEP_SCRIPT, run_step_path)
    return Locations(
        bucket=bucket,
        region="us-east-1",
        role_arn=LOCAL_ROLE_ARN,
        source_bundle_uri=bundle_uri,
        run_step_uri=run_step_uri,
        training_image_uri=f"{LOCAL_REGISTRY}/pytorch-training:{TRAINING_IMAGE_TAG}",
        processing_image_uri=f"{LOCAL_REGISTRY}/pytorch-training:{PROCESSING_IMAGE_TAG}",
        inference_image_uri=f"{LOCAL_REGISTRY}/pytorch-inference:{INFERENCE_IMAGE_TAG}",
        kms_key_id=None,
    )
