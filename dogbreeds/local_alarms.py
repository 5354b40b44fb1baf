"""The synthesised CloudWatch alarms, evaluated locally on the metrics the local monitors publish.

On AWS, CloudWatch evaluates every alarm of the monitoring and deployment stacks once a period;
locally there is no CloudWatch, so this module does what it documents, on the PutMetricData
requests the jobs append to ``<workdir>/monitoring/metrics.jsonl``:

* An alarm reads one metric (namespace, name, exactly its dimensions, unit if it names one) or a
  metric math expression over several, aggregated per ``Period`` with its statistic (Sum,
  Average, Minimum, Maximum, SampleCount, or a percentile ``pNN``).
* Evaluation takes the ``EvaluationPeriods`` + 2 most recent periods (the evaluation range; AWS's
  worked examples retrieve five data points for three evaluation periods). With at least
  ``EvaluationPeriods`` real data points, the most recent ``EvaluationPeriods`` of them decide:
  ``DatapointsToAlarm`` or more breaching is ALARM, fewer is OK. With fewer, the missing ones are
  filled per ``TreatMissingData`` (breaching, notBreaching) as few times as needed; ``missing``
  and ``ignore`` decide on the real ones alone where they can, else INSUFFICIENT_DATA or (ignore)
  the state stays. The tables in CloudWatch's "How alarm state is evaluated when data is missing"
  are a test of this module.
* States persist in ``<workdir>/monitoring/alarm_states.json``, and every change is appended to
  ``alarm_history.jsonl`` in DescribeAlarmHistory's shape, so a change (not a repeated state) is
  what the routing in ``local_alarm_actions`` acts on, as EventBridge only sees changes.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ALARM_TYPE = "AWS::CloudWatch::Alarm"
OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
STATES_FILE = "alarm_states.json"
HISTORY_FILE = "alarm_history.jsonl"
# CloudWatch retrieves more data points than EvaluationPeriods; its examples show two more.
EXTRA_PERIODS = 2
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
MISSING_TREATMENTS = ("breaching", "notBreaching", "ignore", "missing")


class AlarmEvaluationError(ValueError):
    """An alarm uses something this evaluator does not model; it names what."""


@dataclass(frozen=True)
class Datum:
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    timestamp: datetime
    value: float
    unit: str


@dataclass(frozen=True)
class MetricStat:
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    stat: str
    period: int
    unit: str | None = None

    def matches(self, datum: Datum) -> bool:
        # A metric is its namespace, name and exact set of dimensions; a unit narrows it further.
        return (
            datum.namespace == self.namespace
            and datum.name == self.name
            and datum.dimensions == self.dimensions
            and (self.unit is None or datum.unit == self.unit)
        )


@dataclass(frozen=True)
class Query:
    """One entry of an alarm's ``Metrics`` (or the single metric of a plain alarm)."""

    id: str
    metric: MetricStat | None = None
    expression: str | None = None
    return_data: bool = True


@dataclass(frozen=True)
class AlarmDefinition:
    name: str
    description: str
    threshold: float
    comparison: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str
    period: int
    queries: tuple[Query, ...]
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    arn: str = ""

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], arn: str = "") -> AlarmDefinition:
        """From the resolved ``AWS::CloudWatch::Alarm`` properties (PutMetricAlarm's fields)."""
        name = properties.get("AlarmName") or arn.rsplit(":", 1)[-1]
        comparison = properties["ComparisonOperator"]
        if comparison not in COMPARISONS:
            raise AlarmEvaluationError(
                f"alarm {name}: ComparisonOperator {comparison} is not evaluated locally "
                f"(anomaly-detection bands are not); allowed: {', '.join(COMPARISONS)}"
            )
        if "Threshold" not in properties:
            raise AlarmEvaluationError(f"alarm {name}: no Threshold (ThresholdMetricId is not evaluated)")
        treat = properties.get("TreatMissingData", "missing")
        if treat not in MISSING_TREATMENTS:
            raise AlarmEvaluationError(
                f"alarm {name}: TreatMissingData {treat!r} is not one of {MISSING_TREATMENTS}"
            )
        if "Metrics" in properties:
            queries = tuple(_query(name, entry) for entry in properties["Metrics"])
            returned = [q for q in queries if q.return_data]
            if len(returned) != 1:
                raise AlarmEvaluationError(
                    f"alarm {name}: exactly one Metrics entry must have ReturnData true"
                )
            periods = {q.metric.period for q in queries if q.metric} | {
                int(e["Period"]) for e in properties["Metrics"] if "Period" in e
            }
            if len(periods) != 1:
                raise AlarmEvaluationError(
                    f"alarm {name}: every metric of an expression needs the same period"
                )
            period = periods.pop()
        else:
            period = int(properties["Period"])
            stat = properties.get("Statistic") or properties.get("ExtendedStatistic")
            if not stat:
                raise AlarmEvaluationError(f"alarm {name}: neither Statistic nor ExtendedStatistic")
            queries = (
                Query(
                    "m1",
                    MetricStat(
                        properties["Namespace"],
                        properties["MetricName"],
                        _dimensions(properties.get("Dimensions", [])),
                        stat,
                        period,
                        properties.get("Unit"),
                    ),
                ),
            )
        evaluation_periods = int(properties["EvaluationPeriods"])
        return cls(
            name=name,
            description=properties.get("AlarmDescription", ""),
            threshold=float(properties["Threshold"]),
            comparison=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=int(properties.get("DatapointsToAlarm", evaluation_periods)),
            treat_missing_data=treat,
            period=period,
            queries=queries,
            alarm_actions=tuple(properties.get("AlarmActions", [])),
            ok_actions=tuple(properties.get("OKActions", [])),
            arn=arn,
        )

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison][0](value, self.threshold)


def _dimensions(entries: Iterable[Mapping[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset((entry["Name"], str(entry["Value"])) for entry in entries)


def _query(alarm: str, entry: Mapping[str, Any]) -> Query:
    if "Expression" in entry:
        return Query(entry["Id"], expression=entry["Expression"], return_data=entry.get("ReturnData", True))
    stat = entry["MetricStat"]
    metric = stat["Metric"]
    return Query(
        entry["Id"],
        MetricStat(
            metric["Namespace"],
            metric["MetricName"],
            _dimensions(metric.get("Dimensions", [])),
            stat["Stat"],
            int(stat["Period"]),
            stat.get("Unit"),
        ),
        return_data=entry.get("ReturnData", True),
    )


# --- metric data ----------------------------------------------------------------------------------


def read_metrics_sink(path: Path) -> list[Datum]:
    """Every data point of a metrics sink file (one put_metric_data request per line)."""
    if not path.is_file():
        return []
    data = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            for entry in request["MetricData"]:
                data.append(
                    Datum(
                        request["Namespace"],
                        entry["MetricName"],
                        _dimensions(entry.get("Dimensions", [])),
                        _parse_time(entry["Timestamp"]),
                        float(entry["Value"]),
                        entry.get("Unit", "None"),
                    )
                )
        except (ValueError, KeyError, TypeError) as error:
            raise AlarmEvaluationError(f"{path}:{number} is not a put_metric_data request: {error}") from None
    return data


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def aggregate(values: Sequence[float], stat: str) -> float:
    """One period's statistic, as CloudWatch names them."""
    if stat == "Sum":
        return float(sum(values))
    if stat == "Average":
        return float(sum(values) / len(values))
    if stat == "Minimum":
        return float(min(values))
    if stat == "Maximum":
        return float(max(values))
    if stat == "SampleCount":
        return float(len(values))
    if stat.startswith("p"):
        try:
            percentile = float(stat[1:])
        except ValueError:
            percentile = -1.0
        if 0 <= percentile <= 100:
            return float(np.percentile(np.asarray(values, dtype=np.float64), percentile, method="nearest"))
    raise AlarmEvaluationError(
        f"statistic {stat!r} is not evaluated locally; use Sum, Average, Minimum, Maximum, SampleCount or pNN"
    )


def period_starts(at: datetime, period: int, count: int) -> list[datetime]:
    """The starts of the ``count`` whole periods before ``at``, oldest first."""
    epoch = at.timestamp()
    last_end = epoch - epoch % period
    return [datetime.fromtimestamp(last_end - period * (count - i), tz=UTC) for i in range(count)]


def metric_series(stat: MetricStat, data: Sequence[Datum], starts: Sequence[datetime]) -> list[float | None]:
    values: list[list[float]] = [[] for _ in starts]
    first = starts[0].timestamp()
    for datum in data:
        if stat.matches(datum):
            index = int((datum.timestamp.timestamp() - first) // stat.period)
            if 0 <= index < len(starts):
                values[index].append(datum.value)
    return [aggregate(v, stat.stat) if v else None for v in values]


# --- metric math ----------------------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate_expression(expression: str, series: Mapping[str, list[float | None]]) -> list[float | None]:
    """Metric math over per-period series: + - * /, numbers, metric ids, and FILL(m, value).

    Anything else raises AlarmEvaluationError naming it: an alarm is never evaluated on a guess.
    """
    length = len(next(iter(series.values()))) if series else 0

    def constant(value: float) -> list[float | None]:
        return [value] * length

    def walk(node: ast.AST) -> list[float | None]:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return constant(float(node.value))
        if isinstance(node, ast.Name):
            if node.id not in series:
                raise AlarmEvaluationError(f"metric math {expression!r}: unknown id {node.id!r}")
            return series[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return [None if v is None else -v for v in walk(node.operand)]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            function = _BINARY[type(node.op)]
            left, right = walk(node.left), walk(node.right)
            return [
                None
                if a is None or b is None or (b == 0 and isinstance(node.op, ast.Div))
                else function(a, b)
                for a, b in zip(left, right, strict=True)
            ]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "FILL":
            if len(node.args) != 2:
                raise AlarmEvaluationError(f"metric math {expression!r}: FILL takes a metric and a value")
            values, fill = walk(node.args[0]), walk(node.args[1])
            return [f if v is None else v for v, f in zip(values, fill, strict=True)]
        raise AlarmEvaluationError(
            f"metric math {expression!r}: {ast.dump(node)[:60]} is not evaluated locally "
            "(supported: + - * /, numbers, metric ids, FILL)"
        )

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise AlarmEvaluationError(f"metric math {expression!r} does not parse: {error.msg}") from None
    return walk(tree)


def alarm_series(
    alarm: AlarmDefinition, data: Sequence[Datum], starts: Sequence[datetime]
) -> list[float | None]:
    series: dict[str, list[float | None]] = {}
    for query in alarm.queries:
        if query.metric is not None:
            series[query.id] = metric_series(query.metric, data, starts)
    for query in alarm.queries:
        if query.expression is not None:
            series[query.id] = evaluate_expression(query.expression, series)
    [returned] = [q for q in alarm.queries if q.return_data]
    return series[returned.id]


# --- evaluation -----------------------------------------------------------------------------------


def decide(
    points: Sequence[bool | None], evaluation_periods: int, datapoints_to_alarm: int, treat: str, current: str
) -> str:
    """The state from the evaluation range's points, oldest first: True breaching, False not,
    None missing (CloudWatch's documented rules; see the module docstring)."""
    present = [p for p in points if p is not None]
    if len(present) >= evaluation_periods:
        recent = present[-evaluation_periods:]
        return ALARM if sum(recent) >= datapoints_to_alarm else OK
    if not present:
        return {"missing": INSUFFICIENT, "ignore": current, "breaching": ALARM, "notBreaching": OK}[treat]
    fills = evaluation_periods - len(present)
    if treat in ("breaching", "notBreaching"):
        breaching = sum(present) + (fills if treat == "breaching" else 0)
        return ALARM if breaching >= datapoints_to_alarm else OK
    breaching = sum(present)
    if breaching >= datapoints_to_alarm:
        return ALARM
    if treat == "missing" and points[-1] is None and breaching == len(present):
        # CloudWatch's example "X - - - -" goes to ALARM under missing: the oldest point breaches
        # and no point says otherwise; the same point as the newest ("- - - - X") does not.
        return ALARM
    if breaching < len(present):
        return OK
    return INSUFFICIENT if treat == "missing" else current


@dataclass
class Evaluation:
    alarm: AlarmDefinition
    state: str
    previous: str
    reason: str
    points: list[tuple[datetime, float | None]] = field(default_factory=list)
    at: datetime | None = None
    measured: bool = True  # whether any metric behind the values had data in the range

    @property
    def changed(self) -> bool:
        return self.state != self.previous

    @property
    def has_data(self) -> bool:
        """Whether any period of the evaluation range had a value (else the state comes from the
        missing-data treatment alone: locally, AWS's own metrics such as the endpoint's never have)."""
        return self.measured and any(value is not None for _, value in self.points)


def evaluate(
    alarm: AlarmDefinition, data: Sequence[Datum], at: datetime, current: str = INSUFFICIENT
) -> Evaluation:
    starts = period_starts(at, alarm.period, alarm.evaluation_periods + EXTRA_PERIODS)
    values = alarm_series(alarm, data, starts)
    points = [None if v is None else alarm.breaches(v) for v in values]
    state = decide(
        points, alarm.evaluation_periods, alarm.datapoints_to_alarm, alarm.treat_missing_data, current
    )
    pairs = list(zip(starts, values, strict=True))
    # Real data behind the values: FILL in metric math gives numbers for periods nobody published.
    measured = any(
        any(q.metric.matches(d) and starts[0] <= d.timestamp for d in data)
        for q in alarm.queries
        if q.metric is not None
    )
    return Evaluation(alarm, state, current, _reason(alarm, pairs, state), pairs, at, measured)


def _reason(alarm: AlarmDefinition, pairs: Sequence[tuple[datetime, float | None]], state: str) -> str:
    """Worded like CloudWatch's StateReason."""
    present = [(start, value) for start, value in pairs if value is not None][-alarm.evaluation_periods :]
    words = COMPARISONS[alarm.comparison][1]
    if not present:
        return (
            f"No datapoints in the last {len(pairs)} periods; missing data is treated as "
            f"{alarm.treat_missing_data}."
        )
    shown = ", ".join(f"{value:g} ({start:%d/%m/%y %H:%M:%S})" for start, value in reversed(present))
    count = len(present)
    noun = "datapoint" if count == 1 else "datapoints"
    verb = "was" if count == 1 else "were"
    negation = "" if state == ALARM else "not "
    return (
        f"Threshold Crossed: {count} {noun} [{shown}] {verb} {negation}{words} "
        f"the threshold ({alarm.threshold:g})."
    )


def latest_period_end(data: Sequence[Datum], period: int) -> datetime | None:
    """The end of the period holding the newest data point: when CloudWatch would next evaluate."""
    if not data:
        return None
    newest = max(d.timestamp for d in data).timestamp()
    return datetime.fromtimestamp(newest - newest % period + period, tz=UTC)


# --- state -------------------------------------------------------------------------------------


class AlarmStates:
    """Alarm states across local runs, and their history (DescribeAlarmHistory's items)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATES_FILE
        self.states: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def current(self, name: str) -> str:
        return self.states.get(name, {}).get("state", INSUFFICIENT)

    def record(self, evaluation: Evaluation) -> None:
        name = evaluation.alarm.name
        when = (evaluation.at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.states[name] = {"state": evaluation.state, "reason": evaluation.reason, "updated": when}
        if evaluation.changed:
            item = {
                "AlarmName": name,
                "AlarmType": "MetricAlarm",
                "Timestamp": when,
                "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from {evaluation.previous} to {evaluation.state}",
                "HistoryData": json.dumps(
                    {
                        "oldState": {"stateValue": evaluation.previous},
                        "newState": {"stateValue": evaluation.state, "stateReason": evaluation.reason},
                    }
                ),
            }
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / HISTORY_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(item, sort_keys=True) + "\n")

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.states, indent=2, sort_keys=True) + "\n")
        temporary.replace(self.path)


def evaluate_all(
    alarms: Sequence[AlarmDefinition], data: Sequence[Datum], states: AlarmStates, at: datetime | None = None
) -> list[Evaluation]:
    """Evaluate every alarm at ``at`` (default: the end of the newest data point's period of the
    longest-period alarm, as if CloudWatch evaluated just after the last monitoring run's period),
    record the states, and return the evaluations in the alarms' order."""
    if at is None:
        longest = max((a.period for a in alarms), default=60)
        at = latest_period_end(data, longest) or datetime.now(UTC)
    evaluations = []
    for alarm in alarms:
        evaluation = evaluate(alarm, data, at, states.current(alarm.name))
        states.record(evaluation)
        evaluations.append(evaluation)
    states.save()
    return evaluations


def format_states(evaluations: Sequence[Evaluation]) -> str:
    width = max((len(e.alarm.name) for e in evaluations), default=10)
    lines = []
    for e in evaluations:
        change = f"was {e.previous}" if e.changed else ""
        lines.append(f"  {e.alarm.name:<{width}}  {e.state:<17} {change:<21} {e.reason}")
    return "\n".join(lines)
