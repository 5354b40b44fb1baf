"""Every AWS request the dev environment makes is allowed by its synthesised policies, and the
tightened scopes deny what they should.

The requests are derived from the synthesised dev assembly, resolved as if deployed to a test account
and region (tests/stacks/iam_access/accesses.py says how), and evaluated with @cloud-copilot/iam-simulate,
a policy evaluator with every condition operator, against the principal's identity policies and the
resource's policy (bucket, key, topic, queue, function, trust). A denial names the principal,
action, resource, context and the statements that decided.
All evaluations of this module run in one node process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from iam_access.accesses import Accesses, Request
from iam_access.code_calls import boto3_operations
from iam_access.evaluator import Outcome, evaluate, node_available
from iam_access.pipelines import PipelineRun
from iam_access.policies import PolicyStore
from lambda_code import function_code
from repo_paths import REPO_ROOT

from contract.naming import BUCKET_PREFIXES
from dogbreeds.cloud_assembly import CloudAssembly, synthesize

# Where the templates are resolved as deployed.
ACCOUNT = "111122223333"
REGION = "eu-west-1"

# Where the jobs write: step outputs and models, monitoring reports (what the main test derives).
WRITTEN_BY_JOBS = ("pipeline-runs", "monitoring")

SCALING_WRITES = ("RegisterScalableTarget", "DeregisterScalableTarget", "PutScalingPolicy")
SCALABLE = (
    ("sagemaker", "sagemaker:variant:DesiredInstanceCount"),
    ("sagemaker", "sagemaker:inference-component:DesiredCopyCount"),
    ("ecs", "ecs:service:DesiredCount"),
)

# A developer without node may skip these; CI may not, or a missing permission would pass unseen.
pytestmark = pytest.mark.skipif(
    not node_available() and not os.environ.get("CI"),
    reason="needs node and the npm devDependencies (make setup runs npm ci)",
)


@dataclass
class Environment:
    assembly: CloudAssembly
    store: PolicyStore
    accesses: Accesses

    @property
    def execution_role(self) -> str:
        [role] = {p.properties["RoleArn"] for p in self.assembly.resources("AWS::SageMaker::Pipeline")}
        return role

    @property
    def data_bucket(self) -> str:
        [bucket] = [
            self.assembly.ref(b)
            for b in self.assembly.resources("AWS::S3::Bucket")
            if "LoggingConfiguration" in b.properties
        ]
        return bucket

    @property
    def alerts_topic(self) -> str:
        [topic] = [self.assembly.ref(t) for t in self.assembly.resources("AWS::SNS::Topic")]
        return topic

    def asset_listings(self) -> list[Request]:
        """The execution role listing the CDK asset bucket for a step's code input."""
        return [
            r
            for r in self.accesses.all()
            if r.action == "s3:ListBucket" and not r.resource.endswith(f":::{self.data_bucket}")
        ]

    def role_function(self, variable: str) -> str:
        [role] = [
            f.properties["Role"]
            for f in self.assembly.resources("AWS::Lambda::Function")
            if variable in f.properties.get("Environment", {}).get("Variables", {})
        ]
        return role


def _asset_probes(env: Environment) -> dict[str, tuple[Request, bool]]:
    """The execution role lists the asset bucket only for the pipeline code's own keys."""
    a = env.accesses
    execution = a.role(env.execution_role, "SageMaker")
    [listing, *_] = env.asset_listings()
    return {
        "list the whole asset bucket": (
            a.make(execution, "s3:ListBucket", listing.resource, "probe", {"s3:prefix": ""}),
            False,
        ),
        "list another asset's key": (
            a.make(execution, "s3:ListBucket", listing.resource, "probe", {"s3:prefix": "0" * 64 + ".zip"}),
            False,
        ),
    }


def _prefix_probes(env: Environment) -> dict[str, tuple[Request, bool]]:
    """The execution role reads every project prefix but writes only where jobs write."""
    a = env.accesses
    execution = a.role(env.execution_role, "SageMaker")
    probes = {}
    for prefix in BUCKET_PREFIXES:
        writable = prefix in WRITTEN_BY_JOBS
        for action, allowed in (
            ("s3:GetObject", True),
            ("s3:PutObject", writable),
            ("s3:DeleteObject", writable),
        ):
            resource = f"arn:aws:s3:::{env.data_bucket}/{prefix}/example.bin"
            probes[f"{action} {prefix}/"] = (a.make(execution, action, resource, "probe"), allowed)
    return probes


def _autoscaling_probes(env: Environment) -> dict[str, tuple[Request, bool]]:
    """The deploy Lambda scales SageMaker variants' instance counts and nothing else."""
    a = env.accesses
    deploy = a.role(env.role_function("DEPLOY_ENDPOINT_NAME"), "deploy")
    target = a.arn("application-autoscaling", "scalable-target/0123456789abcdef0123456789abcdef")
    probes = {}
    for action in SCALING_WRITES:
        for namespace, dimension in SCALABLE:
            context = {
                "application-autoscaling:service-namespace": namespace,
                "application-autoscaling:scalable-dimension": dimension,
            }
            allowed = dimension == "sagemaker:variant:DesiredInstanceCount"
            request = a.make(deploy, f"application-autoscaling:{action}", target, "probe", context)
            probes[f"{action} {dimension}"] = (request, allowed)
    return probes


def _metric_probes(env: Environment) -> dict[str, tuple[Request, bool]]:
    """The deploy Lambda puts metrics into its own namespace only: not the monitors' one (drift
    alarms and retraining act on it), not AWS's."""
    a = env.accesses
    [namespace] = [
        f.properties["Environment"]["Variables"]["DEPLOY_METRIC_NAMESPACE"]
        for f in a.assembly.resources("AWS::Lambda::Function")
        if "DEPLOY_METRIC_NAMESPACE" in f.properties.get("Environment", {}).get("Variables", {})
    ]
    deploy = a.role(env.role_function("DEPLOY_ENDPOINT_NAME"), "deploy")
    probes = {}
    for candidate, allowed in (
        (namespace, True),
        ("dogbreeds/dev", False),
        (f"{namespace}/other", False),
        ("AWS/SageMaker", False),
    ):
        context = {"cloudwatch:namespace": candidate}
        request = a.make(deploy, "cloudwatch:PutMetricData", "*", "probe", context)
        probes[f"PutMetricData {candidate}"] = (request, allowed)
    return probes


def _topic_probes(env: Environment) -> dict[str, tuple[Request, bool]]:
    """EventBridge and CloudWatch publish to the alerts topic only for this environment's rules and
    alarms in this account."""
    a = env.accesses
    account, other_account = a.assembly.account, "444455556666"
    probes = {}
    for service, source, allowed in (
        ("events.amazonaws.com", a.arn("events", "rule/dogbreeds-dev-training-failed"), True),
        ("events.amazonaws.com", a.arn("events", "rule/someone-elses-rule"), False),
        ("cloudwatch.amazonaws.com", a.arn("cloudwatch", "alarm:dogbreeds-dev-monitoring-failed"), True),
        ("cloudwatch.amazonaws.com", a.arn("cloudwatch", "alarm:someone-elses-alarm"), False),
    ):
        publisher = a.service(service)
        for source_account in (account, other_account):
            arn = source.replace(account, source_account)
            context = {"aws:SourceArn": arn, "aws:SourceAccount": source_account}
            request = a.make(publisher, "sns:Publish", env.alerts_topic, "probe", context)
            probes[f"{service} publishes for {arn}"] = (request, allowed and source_account == account)
        request = a.make(publisher, "sns:Publish", env.alerts_topic, "probe")
        probes[f"{service} publishes without a source"] = (request, False)
    return probes


def _probes(env: Environment) -> dict[str, tuple[Request, bool]]:
    """Requests outside what the system does, with whether policy should allow them."""
    return {
        **_asset_probes(env),
        **_prefix_probes(env),
        **_autoscaling_probes(env),
        **_metric_probes(env),
        **_topic_probes(env),
    }


def _without_asset_listing(name: str, statement: dict[str, Any]) -> bool:
    actions = statement.get("Action", [])
    return "ReadPipelineCode" in name and "s3:ListBucket" in (
        [actions] if isinstance(actions, str) else actions
    )


def _conditioned_actions(store: PolicyStore) -> set[str]:
    patterns = set()
    for _, statement in store.statements():
        keys = {key for operator in statement.get("Condition", {}).values() for key in operator}
        if any(not key.lower().startswith("aws:") for key in keys):
            actions = statement.get("Action", [])
            patterns.update([actions] if isinstance(actions, str) else actions)
    return patterns


@dataclass
class Checked:
    env: Environment
    outcomes: list[Outcome]
    probes: dict[str, tuple[Outcome, bool]]  # outcome, and whether it should be allowed
    without_listing: list[Outcome]
    action_keys: dict[str, dict[str, list[str]]]


@pytest.fixture(scope="module")
def checked() -> Checked:
    assembly = CloudAssembly.load(synthesize("dev", stream=None), account=ACCOUNT, region=REGION)
    store = PolicyStore.from_assembly(assembly)
    env = Environment(assembly, store, Accesses.derive(assembly, store))
    probes = _probes(env)
    reduced = store.without(_without_asset_listing)
    (outcomes, probe_outcomes, without_listing), action_keys = evaluate(
        [
            (env.accesses.all(), store),
            ([request for request, _ in probes.values()], store),
            (env.asset_listings(), reduced),
        ],
        actions=_conditioned_actions(store),
    )
    judged = {
        name: (outcome, allowed)
        for (name, (_, allowed)), outcome in zip(probes.items(), probe_outcomes, strict=True)
    }
    return Checked(env, outcomes, judged, without_listing, action_keys)


def test_every_access_the_system_makes_is_allowed(checked):
    assert len(checked.outcomes) > 100
    denied = [o.report() for o in checked.outcomes if not o.allowed]
    assert not denied, f"{len(denied)} of {len(checked.outcomes)} requests are denied:\n" + "\n".join(denied)


def test_the_evaluator_uses_every_context_key_given(checked):
    """A key the evaluator drops as not applicable to the action would make a condition on it
    untestable; every request's context must be the action's own keys or global ones."""
    ignored = {
        o.request.describe(): o.ignored_context_keys for o in checked.outcomes if o.ignored_context_keys
    }
    assert not ignored


def test_each_role_and_pipeline_step_is_covered(checked):
    env = checked.env
    principals = {r.identity_of for r in env.accesses.all() if r.identity_of}
    assert principals == set(env.store.roles) - set(env.store.managed)
    sources = {r.source.split(":", 1)[0] for r in env.accesses.all()}
    for pipeline in env.assembly.resources("AWS::SageMaker::Pipeline"):
        run = PipelineRun(
            pipeline.properties["PipelineName"],
            pipeline.properties["PipelineDefinition"]["PipelineDefinitionBody"],
        )
        for step in run.steps.values():
            if step.type != "Fail":
                assert f"pipeline {run.name} step {step.name}" in sources
    # Only CDK's own auto-delete handler, whose role uses an AWS managed policy, is left out.
    assert env.accesses.not_checked
    assert all("AutoDeleteObjects" in line for line in env.accesses.not_checked), env.accesses.not_checked


CONTAINER = REPO_ROOT / "pipeline_code" / "container"
MONITOR_IO = CONTAINER / "dogbreeds_jobs" / "monitoring" / "monitor_io.py"


def test_every_boto3_call_of_our_code_is_checked(checked):
    code = {
        *[(p, None) for p in sorted(function_code("deploy_endpoint").source_dir.glob("*.py"))],
        (function_code("retrain_guard").source_dir / "retrain_guard.py", "sagemaker"),
        (MONITOR_IO, "s3"),
        # The entry scripts and every job module (the jobs live in packages under dogbreeds_jobs/).
        *[(p, None) for p in sorted(CONTAINER.rglob("*.py")) if p != MONITOR_IO and "vendor" not in p.parts],
    }
    called: set[str] = set()
    for path, bare_client in code:
        called |= boto3_operations(Path(path), bare_client)
    assert called, "the scan found no boto3 calls at all"
    missing = called - checked.env.accesses.code_operations
    assert not missing, f"boto3 calls whose access the test does not derive: {sorted(missing)}"


def test_condition_keys_are_ones_their_actions_support(checked):
    """A condition on a key an action never carries denies (Allow) or never applies (Deny)."""
    problems = []
    for name, statement in checked.env.store.statements():
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        for operator, keys in statement.get("Condition", {}).items():
            for key in keys:
                if key.lower().startswith("aws:"):
                    continue
                for pattern in actions:
                    supported = checked.action_keys.get(pattern, {})
                    assert supported, f"{name}: IAM knows no action {pattern}"
                    for action, action_keys in supported.items():
                        if not any(_key_matches(key, k) for k in action_keys):
                            problems.append(
                                f"{name} {statement.get('Sid')}: {action} has no {key} ({operator})"
                            )
    assert not problems, "\n".join(problems)


def _key_matches(key: str, supported: str) -> bool:
    if "${" in supported:
        return key.lower().startswith(supported.split("${", 1)[0].lower())
    return key.lower() == supported.lower()


def test_a_missing_asset_listing_is_reported(checked):
    """Without a ListBucket on the asset keys, SageMaker could not list a step's code input."""
    assert len(checked.without_listing) == 2  # the source bundle and the run-step script
    for outcome in checked.without_listing:
        assert outcome.result == "ImplicitlyDenied", outcome.report()
        report = outcome.report()
        assert "s3:ListBucket on arn:aws:s3:::cdk-hnb659fds-assets-111122223333-eu-west-1" in report
        assert "s3:prefix=" in report and "no statement of the identity policies allows it" in report


def test_code_inputs_are_listed_in_the_bootstrap_asset_bucket(checked):
    listed = {(r.resource, dict(r.context)["s3:prefix"]) for r in checked.env.asset_listings()}
    assert {bucket for bucket, _ in listed} == {"arn:aws:s3:::cdk-hnb659fds-assets-111122223333-eu-west-1"}
    assert sorted(key.rsplit(".", 1)[-1] for _, key in listed) == ["gz", "sh"]


@pytest.mark.parametrize(
    "probe",
    [
        *[f"{a} {p}/" for p in BUCKET_PREFIXES for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")],
        "list the whole asset bucket",
        "list another asset's key",
    ],
)
def test_execution_role_scope(checked, probe):
    _expect(checked, probe)


@pytest.mark.parametrize(
    "probe", [f"{action} {dimension}" for action in SCALING_WRITES for _, dimension in SCALABLE]
)
def test_deploy_lambda_scales_only_sagemaker_variants(checked, probe):
    _expect(checked, probe)


@pytest.mark.parametrize(
    "namespace",
    ["dogbreeds/dev/deployment", "dogbreeds/dev", "dogbreeds/dev/deployment/other", "AWS/SageMaker"],
)
def test_deploy_lambda_puts_metrics_only_into_its_namespace(checked, namespace):
    _expect(checked, f"PutMetricData {namespace}")


def test_alerts_topic_takes_only_this_environments_rules_and_alarms(checked):
    probes = [name for name in checked.probes if " publishes " in name]
    assert len(probes) == 10
    for name in probes:
        _expect(checked, name)


def _expect(checked: Checked, name: str) -> None:
    outcome, allowed = checked.probes[name]
    assert outcome.allowed == allowed, (
        f"{name}: expected {'allowed' if allowed else 'denied'}\n{outcome.report()}"
    )
