"""Imports run one way: contract <- pipeline_code <- stacks, and dogbreeds beside stacks.

* ``contract`` (settings, names, metric names, event types) imports nothing of the project;
* ``pipeline_code`` (pipeline definitions and the job code) imports only ``contract``;
* ``stacks`` (the CDK app) imports ``contract`` and ``pipeline_code``;
* ``dogbreeds`` (command line, local mode) imports ``contract`` and ``pipeline_code``, never
  ``stacks``: local mode reads what the CDK app made from the synthesised cloud assembly;
* code that runs inside AWS (the job code bundle, the Lambda functions) imports, of the project,
  only the bottom layer's modules that ship with it.

Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

import pytest
from lambda_code import FUNCTION_NAMES, function_code
from repo_paths import REPO_ROOT

from pipeline_code.code_bundle import CONTAINER_CODE_DIR, SHIPPED_CONTRACT_MODULES
from stacks.functions.function_code import SHARED_DIR, SHARED_MODULES

LAYERS = ("contract", "pipeline_code", "stacks", "dogbreeds")
ALLOWED = {
    "contract": {"contract"},
    "pipeline_code": {"contract", "pipeline_code"},
    "stacks": {"contract", "pipeline_code", "stacks"},
    "dogbreeds": {"contract", "pipeline_code", "dogbreeds"},
}
SHIPPED_CONTRACT = {f"contract.{Path(n).stem}" for n in SHIPPED_CONTRACT_MODULES} - {"contract.__init__"}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every absolute import of a project package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.partition(".")[0] in LAYERS]
    return found


def layer_sources(layer: str) -> list[Path]:
    return sorted(p for p in (REPO_ROOT / layer).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_imports_a_layer_above_its_own(layer):
    upward = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {name}"
        for path in layer_sources(layer)
        for line, name in project_imports(path)
        if name.partition(".")[0] not in ALLOWED[layer]
    ]
    assert upward == [], f"{layer} may import only {sorted(ALLOWED[layer])}"


def _not_carried(sources: list[Path], carried: set[str]) -> list[str]:
    outside = []
    for path in sources:
        for line, name in project_imports(path):
            # "from contract import events" names contract and contract.events; the package itself
            # is always carried, and says nothing about which of its modules are.
            if name != "contract" and not any(
                name == m or name.startswith(f"{m}.") for m in carried - {"contract"}
            ):
                outside.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {name}")
    return outside


def test_the_job_code_imports_only_the_contract_modules_it_carries():
    job_code = [p for p in CONTAINER_CODE_DIR.rglob("*.py") if "__pycache__" not in p.parts]
    assert _not_carried(job_code, SHIPPED_CONTRACT) == []


def test_every_lambda_code_folder_is_found():
    assert FUNCTION_NAMES == ["deploy_endpoint", "retrain_guard"]


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_lambda_code_imports_only_the_contract_modules_its_asset_carries(name):
    code = function_code(name)
    sources = sorted(code.source_dir.glob("*.py"))
    assert sources, f"{code.source_dir} holds no modules"
    sources += [SHARED_DIR / name for name in SHARED_MODULES]
    assert _not_carried(sources, set(code.carried_modules)) == []


def test_the_rule_sees_an_upward_import(tmp_path):
    """The parser behind both tests finds imports at any depth, in both spellings."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from stacks.nag import acknowledge\n    import dogbreeds.cli\n")
    assert project_imports(source) == [
        (2, "stacks.nag"),
        (2, "stacks.nag.acknowledge"),
        (3, "dogbreeds.cli"),
    ]


def test_the_contract_package_itself_imports_nothing():
    """Importing one shipped module must not pull pydantic or the CDK into a container."""
    assert project_imports(REPO_ROOT / "contract" / "__init__.py") == []
    tree = ast.parse((REPO_ROOT / "contract" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_every_layer_is_installed_with_the_project():
    """The console script and ``python -m dogbreeds`` run from any folder: each layer must be a package
    the install finds, not only importable from the repository's root."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert [layer for layer in LAYERS if not any(fnmatch.fnmatch(layer, p) for p in include)] == []
