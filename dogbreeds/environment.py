"""Resolve an AWS environment's names and settings from cdk.json, for commands that call AWS."""

from __future__ import annotations

import json
from pathlib import Path

from contract.naming import Names
from contract.settings import EnvironmentSettings, SettingsError, load_environment

PROJECT_CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


class CommandError(Exception):
    """A problem the operator can fix; printed as one 'error: ...' line, exit status 2."""


def resolve_environment(env_name: str, cdk_json: Path | None = None) -> tuple[Names, EnvironmentSettings]:
    """Names and settings of ``env_name`` from ``cdk_json`` (default: ./cdk.json, else the project's)."""
    path = cdk_json or (Path.cwd() / "cdk.json" if (Path.cwd() / "cdk.json").is_file() else PROJECT_CDK_JSON)
    try:
        context = json.loads(path.read_text())["context"]
    except (OSError, ValueError, KeyError) as error:
        raise CommandError(f"cannot read the 'context' of {path}: {error}") from None
    try:
        project, settings = load_environment(context, env_name)
    except SettingsError as error:
        raise CommandError(str(error)) from None
    return Names(project, env_name), settings
