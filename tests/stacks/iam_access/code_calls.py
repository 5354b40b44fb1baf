"""The AWS API operations a piece of our code calls through boto3, read from its source.

The access derivation lists what the Lambdas and the monitor jobs do; this scan finds every boto3
call in their code (``client.describe_endpoint(...)``, ``client.get_paginator("list_models")``), so a
call added to the code without an access check fails the test instead of passing unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Which AWS service a client variable talks to, by the name the code gives it.
CLIENT_NAMES = {
    "sagemaker": "sagemaker",
    "autoscaling": "application-autoscaling",
    "cloudwatch": "cloudwatch",
    "s3_client": "s3",
}
# Client attributes that are not API operations.
NOT_OPERATIONS = {"get_paginator", "exceptions", "meta", "can_paginate", "get_waiter"}


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _receiver_name(node.func)
    return None


def boto3_operations(path: Path, bare_client: str | None = None) -> set[str]:
    """``service:Operation`` for every call on a client in ``path``. ``bare_client`` is the service
    of a variable simply called ``client`` in that file, if it has one."""
    names = dict(CLIENT_NAMES)
    if bare_client:
        names["client"] = bare_client
    tree = ast.parse(path.read_text(), str(path))
    enclosing: dict[ast.AST, ast.AST] = {}
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(function):
            enclosing.setdefault(node, function) if node is not function else None
    found: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        service = names.get(_receiver_name(node.func.value) or "")
        if service is None:
            continue
        method = node.func.attr
        if method == "get_paginator":
            [argument] = node.args
            for operation in _string_values(tree, enclosing.get(node, tree), argument):
                found.add(f"{service}:{_camel(operation)}")
        elif method not in NOT_OPERATIONS:
            found.add(f"{service}:{_camel(method)}")
    return found


def _string_values(tree: ast.Module, function: ast.AST, argument: ast.expr) -> list[str]:
    """A string constant, or the constants every call in the file passes for a parameter of
    ``function`` (``_list_all(sagemaker, "list_models", ...)``)."""
    if isinstance(argument, ast.Constant):
        return [argument.value]
    if not (isinstance(argument, ast.Name) and isinstance(function, ast.FunctionDef)):
        raise ValueError(f"cannot tell which operation {ast.unparse(argument)} names")
    position = [a.arg for a in function.args.args].index(argument.id)
    values = []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and _receiver_name(call.func) == function.name:
            value = call.args[position]
            if not isinstance(value, ast.Constant):
                raise ValueError(f"cannot tell which operation {ast.unparse(value)} names")
            values.append(value.value)
    return values
