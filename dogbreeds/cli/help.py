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


class RawEpilogHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """``DefaultsHelpFormatter`` that prints the description and epilog as written (tables)."""


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with ``DefaultsHelpFormatter``, inherited by its sub-parsers.

    ``epilog`` may be a function, called only when the help is printed (it may read files).
    """

    def __init__(self, *args, formatter_class: type = DefaultsHelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def format_help(self) -> str:
        epilog = self.epilog
        if not callable(epilog):
            return super().format_help()
        self.epilog = epilog()
        try:
            return super().format_help()
        finally:
            self.epilog = epilog
