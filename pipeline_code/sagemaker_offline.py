"""A sagemaker SDK session that renders pipeline definitions offline and deterministically.

The v2 SDK reaches for AWS in several places while building a definition (default bucket lookup,
telemetry, uploads of local code). Rendering at synth must touch no network and give the same bytes
every time, so: the default bucket is a constant, the boto session has a region and dummy
credentials, telemetry is switched off, and every code reference is already an s3:// URI (a local
path would make the SDK upload it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# The SDK logs where it looked for config files at import; noise in every synth.
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)


@contextlib.contextmanager
def _no_instance_metadata() -> Iterator[None]:
    """Importing sagemaker builds a default session (jumpstart constants) that looks for
    credentials and, finding none, asks the EC2 instance metadata service: seconds of timeouts and
    a network call during synth. Rendering needs no credentials, so IMDS is off while importing."""
    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["AWS_EC2_METADATA_DISABLED"]
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous


with _no_instance_metadata():
    import boto3
    import sagemaker.image_uris  # noqa: F401  (the import that builds the default session)
    from sagemaker.telemetry import telemetry_logging
    from sagemaker.workflow.pipeline_context import PipelineSession

def _no_telemetry(*_args, **_kwargs) -> None:
    return None


# Replacing the sender is the documented-by-behaviour way to stop telemetry; the YAML opt-out
# makes rendering about 4x slower.
telemetry_logging._send_telemetry_request = _no_telemetry


class OfflinePipelineSession(PipelineSession):
    """PipelineSession whose default bucket is fixed instead of looked up in the account."""

    def __init__(self, bucket: str, region: str) -> None:
        # The SDK writes the session's region into definitions (the sagemaker_region
        # hyperparameter, SAGEMAKER_REGION of a model), so it is the deploy-time region's
        # placeholder at synth, never a region of our choosing.
        boto_session = boto3.Session(
            aws_access_key_id="offline-rendering",
            aws_secret_access_key="offline-rendering",
            region_name=region,
        )
        super().__init__(boto_session=boto_session, default_bucket=bucket)
        self._offline_bucket = bucket

    def default_bucket(self) -> str:  # register() calls this even when default_bucket is given
        return self._offline_bucket


@contextlib.contextmanager
def offline_rendering() -> Iterator[None]:
    """Wrap building and rendering a definition: no instance-metadata lookups (estimators create
    default boto3 clients), and none of the SDK's notices (no-wait warnings, field pop-outs, the
    telemetry banner), which describe SDK internals and would bury synth output."""
    logger = logging.getLogger("sagemaker")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with _no_instance_metadata(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)
