"""Which capture and ground-truth objects a monitoring run reads: whole UTC hours before its start.

A run started at 10:07 with a 1-hour window analyses [09:00, 10:00): only hours that are complete,
so two runs never analyse the same record and a late run reads what an on-time one would have.
Objects live under ``yyyy/mm/dd/hh`` prefixes (SageMaker's capture layout; ground truth must use
the same one), so the window turns into a short list of prefixes to list, never a scan of the bucket.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import monitor_io

MAX_WINDOW_HOURS = 24 * 31
# A run id becomes one folder name: SageMaker's execution ids and the local executor's fit.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC, both on the hour."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> list[datetime]:
        count = int((self.end - self.start) / timedelta(hours=1))
        return [self.start + timedelta(hours=i) for i in range(count)]

    def hour_folders(self) -> list[str]:
        return [f"{hour:%Y/%m/%d/%H}" for hour in self.hours]

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def describe(self) -> dict[str, str]:
        return {"start": _iso(self.start), "end": _iso(self.end)}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str = "time") -> datetime:
    """ISO 8601 (``Z`` or an offset; naive means UTC), as pipelines render Execution.StartDateTime."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{what} {text!r} is not an ISO 8601 time like 2026-11-27T10:07:00Z") from error
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def monitoring_window(end: str, hours: int, *, end_override: str = "") -> Window:
    """The window of ``hours`` whole hours ending at the hour ``end`` falls in.

    ``end_override`` (the WindowEnd pipeline parameter) replaces ``end`` when not empty: local runs
    and backfills analyse an hour of their choosing.
    """
    if not 1 <= hours <= MAX_WINDOW_HOURS:
        raise ValueError(f"window hours must be between 1 and {MAX_WINDOW_HOURS}, got {hours}")
    text = end_override.strip() or end
    moment = parse_time(text, "window end")
    window_end = moment.replace(minute=0, second=0, microsecond=0)
    return Window(window_end - timedelta(hours=hours), window_end)


def iter_hour_objects(root: str, window: Window, *, suffix: str = ".jsonl") -> Iterator[str]:
    """Objects under ``root/yyyy/mm/dd/hh/`` for every hour of the window, in time order."""
    for folder in window.hour_folders():
        yield from monitor_io.list_objects(monitor_io.join(root, folder), suffix=suffix)


def iter_capture_objects(endpoint_root: str, window: Window) -> Iterator[str]:
    """Capture files of every variant: ``<endpoint_root>/<variant>/yyyy/mm/dd/hh/*.jsonl``.

    The hour before the window is listed too: SageMaker names a capture file after its first
    record, so a file begun at 09:59 holds records of 10:00 onwards. Readers keep only records
    whose inferenceTime lies in the window."""
    listed = Window(window.start - timedelta(hours=1), window.end)
    for variant in monitor_io.list_children(endpoint_root):
        yield from iter_hour_objects(monitor_io.join(endpoint_root, variant), listed)


def dated_prefix(root: str, window: Window) -> str:
    """``<root>/yyyy/mm/dd/hh`` of the window's end."""
    return monitor_io.join(root, f"{window.end:%Y/%m/%d/%H}")


def default_run_id(now: datetime | None = None) -> str:
    """A run id for a job started by hand: sortable by start time, and unique enough that two
    runs in the same second do not share a folder."""
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValueError(
            f"run id {run_id!r} must be 1-128 letters, digits, '.', '_' or '-' (it names a folder)"
        )
    return run_id


def report_prefix(root: str, window: Window, run_id: str) -> str:
    """Where one run's reports go: ``<root>/yyyy/mm/dd/hh/<run id>`` (the window's end). The run id
    keeps a rerun or backfill of the same hour from overwriting the reports of an earlier run."""
    return monitor_io.join(dated_prefix(root, window), check_run_id(run_id))
