"""Local alarm evaluation against CloudWatch's documented behaviour, on the synthesised alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dogbreeds.local_alarms import (
    ALARM,
    INSUFFICIENT,
    OK,
    AlarmDefinition,
    AlarmEvaluationError,
    AlarmStates,
    Datum,
    aggregate,
    decide,
    evaluate,
    evaluate_all,
    read_metrics_sink,
)

RETAIN = "RETAINED"  # a current state no rule produces, so "keeps the current state" is visible
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")

# CloudWatch User Guide, "How alarm state is evaluated when data is missing": data points oldest
# first (0 not breaching, X breaching, - missing), then the state for missing, ignore, breaching
# and notBreaching. First table: 3 of 3; second: 2 of 3. Five points retrieved in both.
THREE_OF_THREE = [
    ("0 - X - X", OK, OK, OK, OK),
    ("0 - - - -", OK, OK, OK, OK),
    ("- - - - -", INSUFFICIENT, RETAIN, ALARM, OK),
    ("0 X X - X", ALARM, ALARM, ALARM, ALARM),
    ("- - - - X", INSUFFICIENT, RETAIN, ALARM, OK),
    ("X - - - -", ALARM, RETAIN, ALARM, OK),
]
TWO_OF_THREE = [
    ("0 - X - X", ALARM, ALARM, ALARM, ALARM),
    ("0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    ("0 - X - -", OK, OK, ALARM, OK),
    ("- - - - 0", OK, OK, ALARM, OK),
    ("- - - - X", INSUFFICIENT, RETAIN, ALARM, OK),
]


def _points(text: str) -> list[bool | None]:
    return [{"0": False, "X": True, "-": None}[token] for token in text.split()]


TABLE_ROWS = [(3, row) for row in THREE_OF_THREE] + [(2, row) for row in TWO_OF_THREE]


@pytest.mark.parametrize(("datapoints_to_alarm", "row"), TABLE_ROWS)
def test_missing_data_rules_match_the_cloudwatch_user_guide_tables(datapoints_to_alarm, row):
    points, *expected = row
    got = [decide(_points(points), 3, datapoints_to_alarm, treat, RETAIN) for treat in TREATMENTS]
    assert got == expected, f"{points} ({datapoints_to_alarm} of 3)"


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DIMS = [{"Name": "Endpoint", "Value": "e"}, {"Name": "Monitor", "Value": "data_quality"}]


def _alarm(**overrides) -> AlarmDefinition:
    properties = {
        "AlarmName": "drift",
        "Namespace": "dogbreeds/test",
        "MetricName": "DriftedFeatures",
        "Dimensions": DIMS,
        "Statistic": "Maximum",
        "Period": 3600,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }
    properties.update(overrides)
    return AlarmDefinition.from_properties(properties)


def _datum(value: float, at: datetime, name: str = "DriftedFeatures", dims=DIMS) -> Datum:
    return Datum("dogbreeds/test", name, frozenset((d["Name"], d["Value"]) for d in dims), at, value, "Count")


def test_a_period_is_aggregated_with_the_alarms_statistic_and_only_its_exact_dimensions():
    hour = NOW - timedelta(hours=1)
    data = [
        _datum(0, hour + timedelta(minutes=5)),
        _datum(2, hour + timedelta(minutes=30)),  # same period: Maximum is 2
        _datum(9, hour, dims=[*DIMS, {"Name": "Feature", "Value": "x"}]),  # another metric
        _datum(9, hour, name="Other"),
    ]
    result = evaluate(_alarm(), data, NOW)
    assert result.state == ALARM
    assert result.points[-1][1] == 2.0
    expected = "1 datapoint [2 (20/11/26 11:00:00)] was greater than or equal to the threshold (1)"
    assert expected in result.reason
    assert evaluate(_alarm(Statistic="Minimum"), data, NOW).state == OK
    assert evaluate(_alarm(Statistic="Sum"), data, NOW).points[-1][1] == 2.0
    assert evaluate(_alarm(Statistic="SampleCount"), data, NOW).points[-1][1] == 2.0
    # A data point of the period now running is not in a whole period yet.
    assert evaluate(_alarm(), [_datum(5, NOW + timedelta(minutes=1))], NOW).state == OK


def test_percentiles_units_and_unknown_statistics():
    assert aggregate([float(v) for v in range(1, 101)], "p99") == 99.0
    assert aggregate([1.0, 2.0, 3.0], "Average") == 2.0
    with pytest.raises(AlarmEvaluationError, match="statistic 'tm99' is not evaluated locally"):
        aggregate([1.0], "tm99")
    data = [_datum(3, NOW - timedelta(minutes=30))]
    assert evaluate(_alarm(Unit="Count"), data, NOW).state == ALARM
    assert evaluate(_alarm(Unit="Seconds"), data, NOW).state == OK  # another unit is another metric


def test_metric_math_with_fill_and_a_clear_error_for_what_is_not_modelled():
    stat = {"Namespace": "dogbreeds/test", "MetricName": "DriftedFeatures", "Dimensions": DIMS}
    metrics = [
        {"Id": "m1", "MetricStat": {"Metric": stat, "Period": 3600, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "e1", "Expression": "FILL(m1, 0) * 2 - 1", "ReturnData": True},
    ]
    properties = {"AlarmName": "math", "Metrics": metrics, "EvaluationPeriods": 2, "Threshold": 0,
                  "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "missing"}  # fmt: skip
    alarm = AlarmDefinition.from_properties(properties)
    result = evaluate(alarm, [_datum(1, NOW - timedelta(hours=1))], NOW)
    # FILL makes every period real: [-1, -1, -1, 1] -> the two newest are -1 and 1: one breaches.
    assert [value for _, value in result.points] == [-1.0, -1.0, -1.0, 1.0]
    assert result.state == OK and result.has_data
    # FILL gives values for periods nobody published: numbers, but no data behind them.
    empty = evaluate(alarm, [], NOW)
    assert [value for _, value in empty.points] == [-1.0] * 4 and not empty.has_data
    metrics[1]["Expression"] = "RATE(m1)"
    with pytest.raises(AlarmEvaluationError, match="not evaluated locally"):
        evaluate(AlarmDefinition.from_properties(properties), [], NOW)
    with pytest.raises(AlarmEvaluationError, match="anomaly-detection"):
        _alarm(ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold")


def test_states_persist_and_only_changes_enter_the_history(tmp_path):
    sink = tmp_path / "metrics.jsonl"
    datum = {"MetricName": "DriftedFeatures", "Dimensions": DIMS, "Timestamp": "2026-11-20T11:00:00Z",
             "Value": 2.0, "Unit": "Count"}  # fmt: skip
    request = {"Namespace": "dogbreeds/test", "MetricData": [datum]}
    sink.write_text(json.dumps(request) + "\n")
    alarm = _alarm()
    first = evaluate_all([alarm], read_metrics_sink(sink), AlarmStates(tmp_path))
    assert first[0].at == NOW  # the end of the newest data point's period
    assert (first[0].previous, first[0].state) == (INSUFFICIENT, ALARM) and first[0].changed
    again = evaluate_all([alarm], read_metrics_sink(sink), AlarmStates(tmp_path))
    assert again[0].state == ALARM and not again[0].changed
    history = [json.loads(line) for line in (tmp_path / "alarm_history.jsonl").read_text().splitlines()]
    assert [item["HistorySummary"] for item in history] == ["Alarm updated from INSUFFICIENT_DATA to ALARM"]
    sink.write_text("not json\n")
    with pytest.raises(AlarmEvaluationError, match="metrics.jsonl:1 is not a put_metric_data request"):
        read_metrics_sink(sink)
