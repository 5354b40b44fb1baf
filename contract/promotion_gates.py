"""Which alarms a promotion's alarm gate reads: the one list the promotion role's policy grants
and the promotion command (in AWS and in local mode) checks."""

from __future__ import annotations

from contract.naming import MonitoringAlarmNames, Names
from contract.settings import EnvironmentSettings


def gate_alarm_names(names: Names, settings: EnvironmentSettings) -> tuple[str, ...]:
    """The alarms whose history the alarm gate reads: the endpoint's rollback alarms and, where
    the environment monitors, every monitoring alarm."""
    alarms = list(names.rollback_alarms)
    if settings.monitoring.enabled:
        alarms += MonitoringAlarmNames(names).all
    return tuple(alarms)
