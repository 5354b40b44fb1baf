"""Every `dogbreeds` command and option explains itself, and its help shows its default."""

from __future__ import annotations

import argparse

import pytest

from dogbreeds.cli import build_parser
from dogbreeds.cli.help import DefaultsHelpFormatter, shows_no_default


def walk(parser: argparse.ArgumentParser, path: str = "dogbreeds"):
    """(command path, parser) for the parser and every sub-parser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"`{path} {name}` has no help line in `{path} --help`"
                yield from walk(sub, f"{path} {name}")


PARSERS = list(walk(build_parser()))


def test_the_walk_reaches_nested_commands():
    paths = {path for path, _ in PARSERS}
    assert {"dogbreeds local run", "dogbreeds local models approve", "dogbreeds dataset upload"} <= paths


@pytest.mark.parametrize("path,parser", PARSERS, ids=[path for path, _ in PARSERS])
def test_every_option_has_help_showing_its_default(path, parser):
    assert issubclass(parser.formatter_class, DefaultsHelpFormatter), f"`{path}` does not show defaults"
    formatter = parser._get_formatter()
    problems = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            problems.append(f"{name}: no help text")
            continue
        if shows_no_default(action.default):
            continue
        shown = formatter._expand_help(action)
        default = action.default
        expected = [str(default)] + ([format(default, "g")] if isinstance(default, float) else [])
        if not any(text in shown for text in expected):
            problems.append(f"{name}: default {default!r} not in help {shown!r}")
    assert not problems, f"`{path}`:\n" + "\n".join(problems)
    parser.format_help()  # every help string expands
