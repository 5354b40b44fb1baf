"""Where the repository is, for tests at any depth under tests/ (and their helpers)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
