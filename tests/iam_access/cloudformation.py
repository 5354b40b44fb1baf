"""Synthesised CloudFormation templates with every intrinsic resolved, as one deployed environment.

The templates are environment-agnostic, so they are resolved for a test account and region. Each
resource gets the physical name CloudFormation would give it: its name property when the template
sets one, otherwise a generated ``<stack>-<logical id>`` name (a KMS key gets a fixed UUID derived
from its logical id). ``Fn::ImportValue`` follows the exporting stack's output. An intrinsic or a
resource type this module does not know raises, so nothing unresolved reaches the evaluator.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111122223333"
REGION = "eu-west-1"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"


class UnresolvableError(ValueError):
    """The template uses something this resolver cannot turn into a concrete value."""


@dataclass
class Environment:
    """Where the templates are pretended to be deployed."""

    account: str = ACCOUNT
    region: str = REGION
    partition: str = PARTITION

    def pseudo(self, name: str, stack: str) -> str:
        values = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": stack,
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/"
            f"{stack}/00000000-0000-0000-0000-000000000000",
            "AWS::NoValue": None,
        }
        if name not in values:
            raise UnresolvableError(f"unknown pseudo parameter {name}")
        return values[name]

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


@dataclass(frozen=True)
class Resource:
    stack: str
    logical_id: str
    type: str
    properties: dict[str, Any]


# Per resource type: the property that names it, and how Ref and Fn::GetAtt read from the name.
_NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Events::Rule": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::SageMaker::Pipeline": "PipelineName",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::KMS::Alias": "AliasName",
}


def _ref_and_attributes(env: Environment, r: Resource, name: str) -> tuple[str, dict[str, str]]:
    """What ``Ref`` gives for this resource, and its ``Fn::GetAtt`` attributes."""
    t = r.type
    if t == "AWS::IAM::Role":
        arn = env.arn("iam", f"role/{name}", region=False)
        return name, {"Arn": arn, "RoleId": f"AROA{r.logical_id.upper()[:17]}"}
    if t == "AWS::S3::Bucket":
        arn = f"arn:{env.partition}:s3:::{name}"
        return name, {
            "Arn": arn,
            "DomainName": f"{name}.s3.{URL_SUFFIX}",
            "RegionalDomainName": f"{name}.s3.{env.region}.{URL_SUFFIX}",
        }
    if t == "AWS::KMS::Key":
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{r.stack}/{r.logical_id}"))
        return key_id, {"Arn": env.arn("kms", f"key/{key_id}"), "KeyId": key_id}
    if t == "AWS::SNS::Topic":
        arn = env.arn("sns", name)
        return arn, {"TopicArn": arn, "TopicName": name}
    if t == "AWS::SQS::Queue":
        url = f"https://sqs.{env.region}.{URL_SUFFIX}/{env.account}/{name}"
        return url, {"Arn": env.arn("sqs", name), "QueueName": name, "QueueUrl": url}
    if t == "AWS::Lambda::Function":
        return name, {"Arn": env.arn("lambda", f"function:{name}")}
    if t == "AWS::Logs::LogGroup":
        return name, {"Arn": env.arn("logs", f"log-group:{name}:*")}
    if t == "AWS::Events::Rule":
        return name, {"Arn": env.arn("events", f"rule/{name}")}
    if t == "AWS::CloudWatch::Alarm":
        return name, {"Arn": env.arn("cloudwatch", f"alarm:{name}")}
    if t == "AWS::SageMaker::Pipeline":
        return name, {}
    if t == "AWS::SageMaker::ModelPackageGroup":
        arn = env.arn("sagemaker", f"model-package-group/{name}")
        return arn, {"ModelPackageGroupArn": arn}
    if t == "AWS::Scheduler::Schedule":
        return name, {"Arn": env.arn("scheduler", f"schedule/default/{name}")}
    if t in _NAME_PROPERTY or t.startswith("Custom::"):
        return name, {}
    raise UnresolvableError(f"{r.stack}/{r.logical_id}: no physical id model for {t}")


@dataclass
class ResolvedApp:
    """Every stack's template, resolved. ``resources`` holds the resolved resources of all stacks."""

    env: Environment
    templates: dict[str, dict[str, Any]]
    resources: list[Resource] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(cls, templates: Mapping[str, dict[str, Any]], env: Environment | None = None) -> ResolvedApp:
        app = cls(env or Environment(), {name: json.loads(json.dumps(t)) for name, t in templates.items()})
        app._index_exports()
        for stack, template in app.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                properties = app.value(resource.get("Properties", {}), stack)
                app.resources.append(Resource(stack, logical_id, resource["Type"], properties))
        return app

    # ---- lookups ------------------------------------------------------------------------------

    def of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources if r.type == resource_type]

    def physical(self, stack: str, logical_id: str) -> tuple[str, dict[str, str]]:
        template = self.templates[stack]
        if logical_id not in template.get("Resources", {}):
            raise UnresolvableError(f"{stack}: no resource {logical_id}")
        raw = template["Resources"][logical_id]
        resource = Resource(stack, logical_id, raw["Type"], raw.get("Properties", {}))
        name_property = _NAME_PROPERTY.get(resource.type)
        if name_property and name_property in resource.properties:
            name = self.value(resource.properties[name_property], stack)
        else:
            # CloudFormation's generated names: stack, logical id and a random suffix.
            name = f"{stack}-{logical_id}-EXAMPLE"[:63]
            if resource.type == "AWS::S3::Bucket":
                name = name.lower()
        return _ref_and_attributes(self.env, resource, name)

    # ---- intrinsic resolution -----------------------------------------------------------------

    def _index_exports(self) -> None:
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                export = output.get("Export")
                if export:
                    name = self.value(export["Name"], stack)
                    self.exports[name] = (stack, output["Value"])

    def value(self, node: Any, stack: str) -> Any:
        """``node`` with every intrinsic function of ``stack``'s template replaced by its value."""
        if isinstance(node, list):
            return [self.value(item, stack) for item in node if not _is_no_value(item)]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            handler = self._intrinsics().get(key)
            if handler is not None:
                return handler(argument, stack)
            if key.startswith("Fn::"):
                raise UnresolvableError(f"{stack}: intrinsic {key} is not supported: {node}")
        return {k: self.value(v, stack) for k, v in node.items() if not _is_no_value(v)}

    def _intrinsics(self) -> dict[str, Callable[[Any, str], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Join": self._join,
            "Fn::Sub": self._sub,
            "Fn::ImportValue": self._import_value,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
        }

    def _ref(self, name: str, stack: str) -> Any:
        if name.startswith("AWS::"):
            return self.env.pseudo(name, stack)
        parameters = self.templates[stack].get("Parameters", {})
        if name in parameters:
            if "Default" not in parameters[name]:
                raise UnresolvableError(f"{stack}: parameter {name} has no default")
            return parameters[name]["Default"]
        return self.physical(stack, name)[0]

    def _get_att(self, argument: Any, stack: str) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        attributes = self.physical(stack, logical_id)[1]
        if attribute not in attributes:
            raise UnresolvableError(f"{stack}: attribute {logical_id}.{attribute} is not modelled")
        return attributes[attribute]

    def _join(self, argument: list, stack: str) -> str:
        separator, parts = argument
        return separator.join(str(self.value(part, stack)) for part in self.value(parts, stack))

    def _sub(self, argument: Any, stack: str) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {k: self.value(v, stack) for k, v in variables.items()}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self._get_att(name, stack))
            return str(self._ref(name, stack))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _import_value(self, argument: Any, stack: str) -> Any:
        name = self.value(argument, stack)
        if name not in self.exports:
            raise UnresolvableError(f"{stack}: no stack exports {name}")
        exporting_stack, value = self.exports[name]
        return self.value(value, exporting_stack)

    def _find_in_map(self, argument: list, stack: str) -> Any:
        map_name, first, second = (self.value(part, stack) for part in argument)
        try:
            return self.templates[stack]["Mappings"][map_name][first][second]
        except KeyError:
            raise UnresolvableError(f"{stack}: mapping {map_name}[{first}][{second}] is missing") from None

    def _select(self, argument: list, stack: str) -> Any:
        index, items = argument
        return self.value(items, stack)[int(self.value(index, stack))]

    def _split(self, argument: list, stack: str) -> list[str]:
        separator, text = argument
        return self.value(text, stack).split(separator)


def _is_no_value(node: Any) -> bool:
    return node == {"Ref": "AWS::NoValue"}
