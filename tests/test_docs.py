"""The documentation cannot drift from the code it describes."""

from __future__ import annotations

from cdk_helpers import REPO_ROOT

from stacks.settings_reference import GROUPS, render


def test_readme_settings_reference_matches_the_settings_model():
    readme = (REPO_ROOT / "README.md").read_text()
    assert render() in readme, (
        "README.md's settings reference is stale: run "
        "`.venv/bin/python -m stacks.settings_reference --write README.md`"
    )


def test_every_setting_is_described():
    undocumented = [
        f"{model.__name__}.{name}"
        for _, model in GROUPS
        for name, field in model.model_fields.items()
        if not field.description and name not in ("training", "endpoint", "monitoring")
    ]
    assert undocumented == []
