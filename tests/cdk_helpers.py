"""Helpers for the CDK tests: the project's cdk.json context and in-process apps.

(Imported as ``cdk_helpers``: a dependency installs a top-level ``tests`` package, so
``tests.X`` imports would find the wrong one.)
"""

from __future__ import annotations

import copy
import json
from typing import Any

from repo_paths import REPO_ROOT


def project_context() -> dict[str, Any]:
    """The context block of the repository's cdk.json (a fresh copy each call)."""
    return copy.deepcopy(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


def build_app(env_name: str = "dev", context: dict[str, Any] | None = None, outdir: str | None = None):
    """An in-process CDK app with one environment's stacks, as app.py would build it."""
    import aws_cdk as cdk

    from stacks.environment_app import build_environment

    app = cdk.App(context={**(context or project_context()), "env": env_name}, outdir=outdir)
    stacks = build_environment(app)
    return app, stacks
