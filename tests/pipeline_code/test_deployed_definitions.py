"""The pipeline definitions as `cdk deploy` ships them: read from the synthesised dev assembly with
CloudFormation's intrinsics resolved, exactly what local mode runs.

The golden snapshots are these deployed definitions (asset content hashes masked, so a code change
alone does not churn them); update deliberately with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dogbreeds.cloud_assembly import CloudAssembly, synthesize
from pipeline_code.definition_checks import (
    code_placement_problems,
    iter_steps,
    unresolved_references,
    validate_step_arguments,
)

GOLDEN = {
    "training": Path(__file__).with_name("golden") / "training_pipeline.dev.json",
    "monitoring": Path(__file__).with_name("golden") / "monitoring_pipeline.dev.json",
}
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


@pytest.fixture(scope="module")
def assembly_dir():
    return synthesize("dev", stream=None)


@pytest.fixture(scope="module")
def deployed(assembly_dir) -> dict[str, dict]:
    assembly = CloudAssembly.load(assembly_dir)
    return {"training": assembly.training_pipeline()[1], "monitoring": assembly.monitoring_pipeline()[1]}


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_deployed_definition_matches_the_reviewed_golden_snapshot(deployed, pipeline):
    pretty = ASSET_HASH.sub("<asset-hash>", json.dumps(deployed[pipeline], indent=2, sort_keys=True)) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN[pipeline].write_text(pretty)
    assert pretty == GOLDEN[pipeline].read_text(), (
        "the deployed pipeline changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_every_deployed_step_is_a_valid_request_that_finds_its_code(deployed, pipeline):
    definition = deployed[pipeline]
    assert validate_step_arguments(definition) == []
    assert unresolved_references(definition) == []
    assert code_placement_problems(definition) == []


def test_code_inputs_name_objects_that_cdk_deploy_publishes(assembly_dir, deployed):
    assembly = CloudAssembly.load(assembly_dir)
    published = {f"s3://{bucket}/{key}" for _, bucket, key in assembly.file_assets()}
    literal_uris = {
        uri
        for definition in deployed.values()
        for uri in re.findall(r'"(s3://cdk-[^"]+)"', json.dumps(definition))
    }
    assert literal_uris, "no code asset URIs in the definitions"
    assert literal_uris <= published


def test_account_region_and_bucket_come_from_where_it_is_deployed(assembly_dir):
    """Resolved for two different accounts and regions, nothing of the other stays behind."""
    texts = {}
    for account, region in (("111111111111", "eu-west-1"), ("222222222222", "ap-southeast-2")):
        assembly = CloudAssembly.load(assembly_dir, account=account, region=region)
        training = assembly.training_pipeline()[1]
        [register] = [s for s in iter_steps(training) if s["Type"] == "RegisterModel"]
        environment = register["Arguments"]["InferenceSpecification"]["Containers"][0]["Environment"]
        assert environment["SAGEMAKER_REGION"] == region
        assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
        texts[(account, region)] = json.dumps([training, assembly.monitoring_pipeline()[1]])
    (first, first_text), (second, second_text) = texts.items()
    for value in (*first, "us-east-1", "000000000000"):
        assert value not in second_text, f"{value} is baked into the definitions"
    assert f"dogbreeds-dev-data-{second[0]}-{second[1]}" in second_text
