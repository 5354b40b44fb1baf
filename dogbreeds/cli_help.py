"""The help formatter every `dogbreeds` parser uses: each option's help ends with its default.

``Parser`` is an ``ArgumentParser`` whose formatter is ``DefaultsHelpFormatter``; argparse builds
sub-parsers with the parent's class, so setting it on the top parser covers the whole tree.
"""

from __future__ import annotations

import argparse


def shows_no_default(default: object) -> bool:
    """Defaults not worth printing: unset (None), a flag's False, an empty string or list."""
    return default is None or default is False or default is argparse.SUPPRESS or default in ("", [], ())


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``ArgumentDefaultsHelpFormatter`` that skips meaningless defaults and help already showing it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" in text or shows_no_default(action.default):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with ``DefaultsHelpFormatter``, inherited by its sub-parsers."""

    def __init__(self, *args, formatter_class: type = DefaultsHelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
