"""Ordinary AWS mistakes as one line naming the cause and the fix, for every `dogbreeds` command.

`dogbreeds.cli.main` runs each command through :func:`run_guarded`, so a command (old or new) that
lets a botocore/boto3 exception escape still ends with one ``error: ...`` line and a non-zero exit,
never a traceback. :func:`configure_retries` makes every client the commands build retry throttled
and transient calls (botocore's ``standard`` mode) before giving up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

RETRY_MODE = "standard"
MAX_ATTEMPTS = 4  # the first call and 3 retries with jittered exponential backoff
INTERRUPTED = 130

ACCESS_DENIED = {
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
    "Forbidden", "UnauthorizedAccess",
}
THROTTLED = {
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "SlowDown", "RequestThrottled", "RequestThrottledException",
    "ProvisionedThroughputExceededException",
}
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
BAD_CREDENTIALS = {
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
    "InvalidAccessKeyId", "InvalidToken",
}
# Request parameters that name the resource a call was about, most specific first.
RESOURCE_PARAMS = (
    "EndpointName", "ModelPackageArn", "ModelPackageName", "ModelPackageGroupName", "PipelineName",
    "PipelineExecutionArn", "FunctionName", "RoleArn",
)


def configure_retries(environ: dict[str, str] | None = None) -> None:
    """Make clients built afterwards retry throttling and transient errors, unless the operator
    already chose a retry mode or attempt count (the variables win over ~/.aws/config)."""
    environ = os.environ if environ is None else environ
    environ.setdefault("AWS_RETRY_MODE", RETRY_MODE)
    environ.setdefault("AWS_MAX_ATTEMPTS", str(MAX_ATTEMPTS))


def run_guarded(command: str, func: Callable[[], Any]) -> int:
    """``func()``'s exit status; an AWS mistake or Ctrl-C becomes one stderr line and a status."""
    try:
        return int(func() or 0)
    except KeyboardInterrupt:
        print(f"dogbreeds {command}: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # noqa: BLE001 - anything not an AWS mistake is re-raised below
        described = describe(error)
        if described is None:
            raise
        message, status = described
        print(f"dogbreeds {command}: error: {message}", file=sys.stderr)
        return status


def describe(error: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit status) for a botocore/boto3 exception; None for anything else."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(error, bx.NoRegionError):
        return (
            'no AWS region: set AWS_DEFAULT_REGION, or pin "region" in cdk.json\'s '
            "block for the environment (context.environments.<env>.region)",
            2,
        )
    if isinstance(error, bx.ProfileNotFound):
        profile = error.kwargs.get("profile", "")
        return (
            f"the AWS profile {profile!r} does not exist (AWS_PROFILE); run "
            f"`aws configure --profile {profile}` (or `aws configure sso`) or unset AWS_PROFILE",
            2,
        )
    if isinstance(error, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return (
            "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
            "or run `aws sso login` first",
            2,
        )
    sso_errors = tuple(
        getattr(bx, name)
        for name in ("SSOTokenLoadError", "UnauthorizedSSOTokenError", "TokenRetrievalError")
        if hasattr(bx, name)
    )
    if sso_errors and isinstance(error, sso_errors):
        return f"the AWS SSO session is missing or expired ({error}); run `aws sso login`", 2
    if isinstance(error, (bx.EndpointConnectionError, bx.ConnectionClosedError)):
        return (
            f"cannot reach AWS at {error.kwargs.get('endpoint_url', '?')} (after retries): check the "
            "network, proxy or VPN, and AWS_ENDPOINT_URL if set",
            1,
        )
    if isinstance(error, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return (
            f"AWS did not answer in time at {error.kwargs.get('endpoint_url', '?')} (after retries): "
            "check the network, proxy or VPN, then run the command again",
            1,
        )
    if isinstance(error, bx.ClientError):
        return _client_error(error)
    return None


def _client_error(error: Any) -> tuple[str, int]:
    info = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    aws_message = (str(info.get("Message") or code).splitlines() or [""])[0]
    service, params = _call_of(error)
    action = f"{service}:{error.operation_name}" if service else error.operation_name
    resource = _resource(params, info)
    on = f" on {resource}" if resource else ""
    if code == "NoSuchBucket":
        bucket = info.get("BucketName") or params.get("Bucket", "?")
        return (
            f"the S3 bucket {bucket!r} does not exist: deploy the environment's stack first, or pass "
            "the name of an existing bucket (--bucket / s3:// URI)",
            1,
        )
    if code in ACCESS_DENIED:
        return (
            f"access denied calling {action}{on}: {aws_message}; use a profile or role allowed to do it",
            1,
        )
    if code in THROTTLED:
        attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        return (
            f"AWS throttled {action}{on} on all {attempts} attempts: {aws_message}; wait a minute and run "
            "the command again (AWS_MAX_ATTEMPTS raises the retries)",
            1,
        )
    if code in EXPIRED:
        return f"the AWS credentials have expired ({code}): run `aws sso login` or refresh them", 2
    if code in BAD_CREDENTIALS:
        return (
            f"AWS rejected the credentials ({code}: {aws_message}); check AWS_PROFILE or the access keys",
            2,
        )
    return f"AWS refused {action}{on} ({code}): {aws_message}", 1


def _call_of(error: BaseException) -> tuple[str, dict[str, Any]]:
    """(IAM service prefix, request parameters) of the API call that raised ``error``, read from the
    botocore client frame in its traceback; ("", {}) when that is not there."""
    traceback = error.__traceback__
    found: tuple[str, dict[str, Any]] = ("", {})
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name == "_make_api_call":
            client, params = frame.f_locals.get("self"), frame.f_locals.get("api_params")
            try:
                service = client.meta.service_model.signing_name
            except AttributeError:
                service = ""
            found = (service, params if isinstance(params, dict) else {})
        traceback = traceback.tb_next
    return found


def _resource(params: dict[str, Any], info: dict[str, Any]) -> str:
    if params.get("Bucket"):
        key = params.get("Key") or params.get("Prefix")
        return f"s3://{params['Bucket']}/{key}" if key else f"s3://{params['Bucket']}"
    for name in RESOURCE_PARAMS:
        if params.get(name):
            return str(params[name])
    return str(info.get("BucketName", ""))
