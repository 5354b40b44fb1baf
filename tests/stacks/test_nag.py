"""cdk-nag AwsSolutions checks run on every stack of every environment: no unacknowledged finding."""

from __future__ import annotations

import re

import pytest
from aws_cdk import aws_s3 as s3
from cdk_helpers import build_app

from stacks.nag import acknowledge


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_no_unacknowledged_findings(env_name, tmp_path):
    app, _ = build_app(env_name, outdir=str(tmp_path))
    app.synth()  # raises ValidationFailed listing the findings if any is unacknowledged


def test_an_insecure_resource_fails_synth(tmp_path):
    """Proves the checks are really wired in: a bucket without TLS enforcement or logs fails."""
    app, stacks = build_app("dev", outdir=str(tmp_path))
    s3.Bucket(stacks.storage, "CarelessBucket")
    with pytest.raises(Exception) as caught:
        app.synth()
    report = str(caught.value) + "".join(
        p.read_text() for p in tmp_path.rglob("*.json") if "validation" in p.name
    )
    assert "AwsSolutions-S10" in report  # no TLS-only policy
    assert re.search(r"AwsSolutions-S1\b", report)  # no access logs


def test_acknowledgement_needs_a_real_reason():
    app, stacks = build_app("dev")
    with pytest.raises(ValueError, match="needs a specific reason"):
        acknowledge(stacks.storage, "AwsSolutions-S1", "ok")
