"""Errors the local executor raises, so callers can tell a bad definition from a failed step."""

from __future__ import annotations


class LocalExecutorError(Exception):
    """Base class: anything the local executor refuses or cannot finish."""


class DefinitionError(LocalExecutorError):
    """The pipeline definition (or a parameter override) cannot be run; nothing has run yet."""


class StepFailedError(LocalExecutorError):
    """A step ran and failed; the message names the step, and `log_tail` holds the end of its log."""

    def __init__(self, step_name: str, message: str, log_tail: str = "") -> None:
        super().__init__(f"step {step_name!r} failed: {message}")
        self.step_name = step_name
        self.reason = message
        self.log_tail = log_tail
