"""The one error the training job's helpers raise for a problem the user must fix."""

from __future__ import annotations


class TrainingError(Exception):
    """Bad input or set-up (no manifests, a missing weights file, no CUDA device ...).

    Raised instead of ``SystemExit`` so the helpers stay importable and testable; ``main`` prints
    ``train: <message>`` and exits non-zero.
    """
