"""Fixtures of the monitoring job tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from monitoring_cases import MonitorCase, capture_traffic


@pytest.fixture(scope="session")
def clean_capture(monitor_case: MonitorCase, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """300 clean requests captured in the test window: (capture root, traffic record)."""
    root = tmp_path_factory.mktemp("capture-clean")
    return root, capture_traffic(monitor_case, root)
