"""Evaluate requests against the policies with @cloud-copilot/iam-simulate, in one node process.

Licence note: @cloud-copilot/iam-simulate is AGPL-3.0-or-later. It is installed as an npm
devDependency and only this test helper runs it (simulate.js); the CDK app, the Lambdas and the
containers neither include nor call it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repo_paths import REPO_ROOT

from iam_access.accesses import Request
from iam_access.policies import PolicyStore

SCRIPT = Path(__file__).with_name("simulate.js")


@dataclass(frozen=True)
class Outcome:
    request: Request
    result: str  # Allowed, ImplicitlyDenied, ExplicitlyDenied or Error
    reasons: tuple[str, ...]
    ignored_context_keys: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    def report(self) -> str:
        lines = [f"{self.result}: {self.request.describe()}"]
        lines += [f"    {reason}" for reason in self.reasons]
        return "\n".join(lines)


def node_available() -> bool:
    return (
        shutil.which("node") is not None
        and (REPO_ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir()
    )


def run_node(payload: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"iam-simulate failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout)


def evaluate(
    cases: Sequence[tuple[Sequence[Request], PolicyStore]], actions: Iterable[str] = ()
) -> tuple[list[list[Outcome]], dict[str, dict[str, list[str]]]]:
    """Each case's requests evaluated against that case's policies, all in one node process; and
    the condition keys IAM knows for each action pattern in ``actions``."""
    policies: dict[str, Any] = {}
    payload_requests = []
    for number, (requests, store) in enumerate(cases):
        prefix = f"case{number}:"
        policies.update({prefix + name: document for name, document in store.documents.items()})
        for index, r in enumerate(requests):
            payload_requests.append(
                {
                    "id": [number, index],
                    "principal": r.principal,
                    "action": r.action,
                    "resource": r.resource,
                    "resourceAccount": r.resource_account,
                    "context": {k: list(v) if isinstance(v, tuple) else v for k, v in r.context},
                    "identityPolicies": [prefix + n for n in store.identity.get(r.identity_of, [])]
                    if r.identity_of
                    else [],
                    "resourcePolicy": prefix + r.resource_policy if r.resource_policy else None,
                }
            )
    output = run_node({"policies": policies, "requests": payload_requests, "actions": sorted(set(actions))})
    outcomes: list[list[Outcome]] = [[] for _ in cases]
    for result in output["results"]:
        number, index = result["id"]
        request = cases[number][0][index]
        outcomes[number].append(
            Outcome(
                request,
                result["result"],
                tuple(_reasons(result, request)),
                tuple(sorted(set(result.get("ignoredContextKeys", [])))),
            )
        )
    return outcomes, output["actions"]


def _statement(entry: dict[str, Any], request: Request) -> str:
    sid = entry.get("statementId") or f"statement {entry.get('statementIndex')}"
    if entry.get("policyType") == "resource":
        return f"resource policy {request.resource_policy} {sid}"
    policy = (entry.get("policyIdentifier") or "").split(":", 1)[-1]
    return f"{entry.get('policyType')} policy {policy} {sid}"


def _reasons(result: dict[str, Any], request: Request) -> list[str]:
    if result["result"] == "Error":
        return [f"evaluator rejected the request: {json.dumps(result.get('errors'))[:2000]}"]
    if result["result"] == "Allowed":
        return [f"allowed by {_statement(g, request)}" for g in result.get("grants", [])]
    reasons = []
    for denial in result.get("denials", []):
        if denial.get("denialType") == "Explicit":
            reasons.append(f"explicitly denied by {_statement(denial, request)}")
        else:
            where = denial["policyType"] + (
                f" policy {request.resource_policy}" if denial["policyType"] == "resource" else " policies"
            )
            reasons.append(f"no statement of the {where} allows it")
    for miss in result.get("nearMisses", []):
        name = (miss.get("policy") or "").split(":", 1)[-1] or request.resource_policy
        sid = miss.get("sid") or "(no Sid)"
        why = []
        if not miss.get("resourceMatch"):
            why.append("resource does not match")
        if miss.get("principalMatch") not in (None, "Match", "AccountLevelMatch"):
            why.append(f"principal {miss['principalMatch']}")
        for condition in miss.get("conditions", []):
            got = "missing from the request" if condition["missing"] else repr(condition["requestValue"])
            why.append(f"{condition['operator']} {condition['key']} {condition['values']}: {got}")
        reasons.append(f"near miss: {miss['policyType']} {name} {sid}: {'; '.join(why) or 'did not apply'}")
    return reasons
