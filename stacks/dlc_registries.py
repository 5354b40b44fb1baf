"""Which AWS account hosts the PyTorch deep learning container images in each region.

The sagemaker SDK ships this table; reading it at synth (offline, deterministic) lets the execution
role pull exactly those repositories instead of any ECR repository in any account.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnMapping, Fn, Stack
from constructs import Construct

from contract.container_images import pytorch_registry_accounts

DLC_REPOSITORIES = ("pytorch-training", "pytorch-inference")
_MAPPING_ID = "PyTorchImageRegistries"


def pytorch_registry_account(scope: Construct) -> str:
    """This region's DLC registry account as a token, from a CfnMapping shared per stack."""
    stack = Stack.of(scope)
    mapping = stack.node.try_find_child(_MAPPING_ID)
    if mapping is None:
        mapping = CfnMapping(
            stack,
            _MAPPING_ID,
            mapping={region: {"account": account} for region, account in pytorch_registry_accounts().items()},
        )
    return mapping.find_in_map(Aws.REGION, "account")


def pytorch_image_uri(scope: Construct, repository: str, tag: str) -> str:
    """``<registry account>.dkr.ecr.<region>.<url suffix>/<repository>:<tag>`` as a CDK token.

    The registry account depends on the region, which an environment-agnostic template only learns
    at deploy time, so it is looked up in a CfnMapping of the SDK's table (one per stack)."""
    if repository not in DLC_REPOSITORIES:
        raise ValueError(f"unknown PyTorch repository {repository!r}; known: {DLC_REPOSITORIES}")
    account = pytorch_registry_account(scope)
    return Fn.join("", [account, ".dkr.ecr.", Aws.REGION, ".", Aws.URL_SUFFIX, f"/{repository}:{tag}"])
