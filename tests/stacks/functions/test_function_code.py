"""Each Lambda's asset is a staged folder: its code folder's modules plus the contract modules it lists,
content-addressed, and importable on its own (the Lambda runtime has the standard library and boto3,
not this repository)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lambda_code import FUNCTION_NAMES, function_code

from stacks.functions.function_code import SHARED_MODULES, FunctionCode


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_the_staged_asset_imports_on_its_own(name):
    """Every module imports in a fresh interpreter that sees the asset folder and site-packages only
    (-I: no PYTHONPATH, no working directory), and the contract it uses is the asset's copy."""
    code = function_code(name)
    folder = code.stage()
    modules = sorted(path.stem for path in code.source_dir.glob("*.py"))
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        f"mods = [importlib.import_module(m) for m in {modules!r}]\n"
        "print(json.dumps({m.__name__: m.__file__ for m in mods} | "
        "{k: v.__file__ for k, v in sys.modules.items() if k.partition('.')[0] == 'contract'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder.parent,
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    assert set(modules) <= set(files)
    assert all(path.startswith(f"{folder}/") for path in files.values()), files


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_the_asset_holds_the_code_the_shared_logger_and_only_the_listed_contract_modules(name):
    code = function_code(name)
    folder = code.stage()
    shipped = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    expected = sorted(
        [p.name for p in code.source_dir.glob("*.py")]
        + [f"contract/{n}" for n in ("__init__.py", *code.contract_modules)]
        + list(SHARED_MODULES)
    )
    assert shipped == expected
    assert "contract/settings.py" not in shipped  # needs pydantic, which the runtime lacks


def test_staging_is_content_addressed(tmp_path):
    code = function_code("retrain_guard")
    first = code.stage(tmp_path)
    assert code.stage(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary folder left behind
    assert first.name == f"retrain_guard-{code.fingerprint()}"


def test_a_listed_contract_module_that_does_not_exist_fails_the_synth():
    with pytest.raises(FileNotFoundError, match="no_such_module.py"):
        FunctionCode("retrain_guard", contract_modules=("no_such_module.py",)).files()
