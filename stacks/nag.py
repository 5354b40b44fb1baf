"""cdk-nag wiring: AwsSolutions checks on every stack, and reasoned acknowledgements.

cdk-nag 3 runs as a CDK validation plugin: findings make synth fail with a report. Each finding we
accept is acknowledged on the construct it concerns, with a reason a reviewer can check.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_nag_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a specific reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
