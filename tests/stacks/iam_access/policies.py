"""The policies of a resolved environment: each role's identity policies and each resource's policy.

Identity policies are the role's inline ``Policies`` and every ``AWS::IAM::Policy`` naming the role.
Resource policies: bucket policies, key policies, topic and queue policies, Lambda permissions (as
the function policy Lambda builds from them) and role trust policies (for ``sts:AssumeRole``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dogbreeds.cloud_assembly import CloudAssembly, Resource


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    resource: Resource


@dataclass
class PolicyStore:
    """Policy documents by name; which names apply to a role, and which to a resource ARN."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    identity: dict[str, list[str]] = field(default_factory=dict)  # role ARN -> policy names
    resource: dict[str, str] = field(default_factory=dict)  # resource ARN -> policy name
    buckets: dict[str, str] = field(default_factory=dict)  # bucket name -> policy name
    roles: dict[str, Role] = field(default_factory=dict)  # role ARN -> role
    managed: dict[str, list[str]] = field(default_factory=dict)  # role ARN -> managed policy ARNs

    @classmethod
    def from_assembly(cls, assembly: CloudAssembly) -> PolicyStore:
        store = cls()
        by_name: dict[str, Role] = {}
        for resource in assembly.resources("AWS::IAM::Role"):
            role = Role(assembly.ref(resource), assembly.get_att(resource, "Arn"), resource)
            by_name[role.name] = role
            store.roles[role.arn] = role
            store.identity[role.arn] = []
            for inline in resource.properties.get("Policies", []):
                name = f"{resource.stack}/{resource.logical_id}/{inline['PolicyName']}"
                store._add_identity(role.arn, name, inline["PolicyDocument"])
            if resource.properties.get("ManagedPolicyArns"):
                store.managed[role.arn] = list(resource.properties["ManagedPolicyArns"])
            store._add_resource(
                role.arn,
                f"{resource.stack}/{resource.logical_id}/trust",
                resource.properties["AssumeRolePolicyDocument"],
            )
        for policy in assembly.resources("AWS::IAM::Policy"):
            for role_name in policy.properties.get("Roles", []):
                name = f"{policy.stack}/{policy.logical_id}"
                store._add_identity(by_name[role_name].arn, name, policy.properties["PolicyDocument"])
        for policy in assembly.resources("AWS::S3::BucketPolicy"):
            name = f"{policy.stack}/{policy.logical_id}"
            store.documents[name] = policy.properties["PolicyDocument"]
            store.buckets[policy.properties["Bucket"]] = name
        for key in assembly.resources("AWS::KMS::Key"):
            arn = assembly.get_att(key, "Arn")
            store._add_resource(arn, f"{key.stack}/{key.logical_id}", key.properties["KeyPolicy"])
        for policy in assembly.resources("AWS::SNS::TopicPolicy"):
            for topic_arn in policy.properties["Topics"]:
                store._add_resource(
                    topic_arn, f"{policy.stack}/{policy.logical_id}", policy.properties["PolicyDocument"]
                )
        queue_arns = {
            assembly.ref(q): assembly.get_att(q, "Arn") for q in assembly.resources("AWS::SQS::Queue")
        }
        for policy in assembly.resources("AWS::SQS::QueuePolicy"):
            for queue_url in policy.properties["Queues"]:
                store._add_resource(
                    queue_arns[queue_url],
                    f"{policy.stack}/{policy.logical_id}",
                    policy.properties["PolicyDocument"],
                )
        store._add_lambda_permissions(assembly)
        return store

    def _add_identity(self, role_arn: str, name: str, document: dict[str, Any]) -> None:
        self.documents[name] = document
        self.identity[role_arn].append(name)

    def _add_resource(self, arn: str, name: str, document: dict[str, Any]) -> None:
        if arn in self.resource:
            raise ValueError(f"two resource policies for {arn}: {self.resource[arn]} and {name}")
        self.documents[name] = document
        self.resource[arn] = name

    def _add_lambda_permissions(self, assembly: CloudAssembly) -> None:
        """Lambda turns each AWS::Lambda::Permission into a statement of the function's policy."""
        functions = {}
        for function in assembly.resources("AWS::Lambda::Function"):
            arn = assembly.get_att(function, "Arn")
            functions[assembly.ref(function)] = functions[arn] = arn
        statements: dict[str, list[dict[str, Any]]] = {}
        for permission in assembly.resources("AWS::Lambda::Permission"):
            p = permission.properties
            principal = p["Principal"]
            statement: dict[str, Any] = {
                "Sid": permission.logical_id,
                "Effect": "Allow",
                "Principal": {"Service": principal}
                if principal.endswith(".amazonaws.com")
                else {"AWS": principal},
                "Action": p["Action"],
                "Resource": functions[p["FunctionName"]],
            }
            condition: dict[str, Any] = {}
            if "SourceArn" in p:
                condition.setdefault("ArnLike", {})["AWS:SourceArn"] = p["SourceArn"]
            if "SourceAccount" in p:
                condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = p["SourceAccount"]
            if condition:
                statement["Condition"] = condition
            statements.setdefault(functions[p["FunctionName"]], []).append(statement)
        for arn, function_statements in statements.items():
            self._add_resource(
                arn,
                f"lambda-function-policy/{arn.rsplit(':', 1)[-1]}",
                {"Version": "2012-10-17", "Statement": function_statements},
            )

    # ---- queries ------------------------------------------------------------------------------

    def role(self, arn: str) -> Role:
        if arn not in self.roles:
            raise KeyError(f"no role {arn} in the templates")
        return self.roles[arn]

    def resource_policy(self, resource_arn: str) -> str | None:
        """The name of the policy that governs ``resource_arn``, if the templates define one."""
        if resource_arn.startswith("arn:") and ":s3:::" in resource_arn:
            bucket = resource_arn.split(":::", 1)[1].split("/", 1)[0]
            return self.buckets.get(bucket)
        return self.resource.get(resource_arn)

    def add_document(self, name: str, document: dict[str, Any]) -> None:
        self.documents[name] = document

    def statements(self) -> list[tuple[str, dict[str, Any]]]:
        """Every statement of every policy, with the policy's name."""
        found = []
        for name, document in self.documents.items():
            statements = document.get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                found.append((name, statement))
        return found

    def without(self, drop: Callable[[str, dict[str, Any]], bool]) -> PolicyStore:
        """A copy in which every statement for which ``drop(policy name, statement)`` holds is gone."""
        copied = copy.deepcopy(self)
        for name, document in copied.documents.items():
            statements = document.get("Statement", [])
            statements = statements if isinstance(statements, list) else [statements]
            document["Statement"] = [s for s in statements if not drop(name, s)]
        return copied
