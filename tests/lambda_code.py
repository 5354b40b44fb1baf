"""The Lambda functions' code as it ships: imported from the staged asset folder, the way the Lambda
runtime imports it (the asset's root first on the import path, the handler's modules by bare name).

Tests reach these through the fixtures in conftest.py; ``function_module`` is for helpers that run
outside a fixture (the IAM access derivation)."""

from __future__ import annotations

import importlib
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from stacks.functions.function_code import CODE_FOLDER, FUNCTIONS_DIR, FunctionCode

# Every Lambda function: the folders stacks/functions/<name>/ that hold a code folder.
FUNCTION_NAMES = sorted(p.parent.name for p in FUNCTIONS_DIR.glob(f"*/{CODE_FOLDER}") if p.is_dir())


def function_code(name: str) -> FunctionCode:
    """``CODE`` of ``stacks/functions/<name>/function.py``: the folder and the contract it carries."""
    return importlib.import_module(f"stacks.functions.{name}.function").CODE


@cache
def staged_folder(name: str) -> Path:
    return function_code(name).stage()


def function_module(function: str, module: str) -> ModuleType:
    """``module`` of ``function``'s staged asset (imported once per session, like a warm Lambda)."""
    folder = staged_folder(function)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        patch.setattr(sys, "dont_write_bytecode", True)  # the folder is the asset: leave it as staged
        imported = importlib.import_module(module)
    if Path(imported.__file__).parent != folder:
        raise ImportError(f"{module} was imported from {imported.__file__}, not from {folder}")
    return imported
