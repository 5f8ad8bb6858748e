"""The template's operator resources agree with the code: the dashboard and the rejects alarm read
metrics the worker and the report really emit; the report schedule sends an event the Lambda takes."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.fixtures_cfn import load_template, one_resource
from worker.common import metrics


def emitted() -> set[tuple[str, frozenset[str]]]:
    """(metric name, dimension names) of every record the worker and the report print."""
    summary = {"rows_in": 1, "rows_out": 1, "rows_rejected": 0, "bytes": 1, "duration_s": 1.0,
               "counts": {"channels": {"google": {"rows": 1, "excluded": 0, "rejected": {},
                                                  "bytes": 1}},
                          "outcomes": {"ok": 1}}}
    records = [*metrics.summary_records("feed", summary, status="succeeded"),
               metrics.night_record(run_id="r", rows_rejected=1, rows_rejected_median7=1.0,
                                    shops=1, shops_failed=0)]
    out = set()
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == metrics.NAMESPACE
            for dims in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    out.add((metric["Name"], frozenset(dims)))
    return out


def test_the_alarm_compares_tonight_with_the_seven_night_median() -> None:
    alarm = load_template()["Resources"]["RejectsJumpAlarm"]
    props = alarm["Properties"]
    queries = {q["Id"]: q for q in props["Metrics"]}
    known = emitted()
    for q in queries.values():
        if "MetricStat" in q:
            m = q["MetricStat"]["Metric"]
            assert m["Namespace"] == metrics.NAMESPACE
            dims = frozenset(d["Name"] for d in m.get("Dimensions", []))
            assert (m["MetricName"], dims) in known, m
            assert q["ReturnData"] is False
    [result] = [q for q in queries.values() if q.get("ReturnData")]
    referenced = set(re.findall(r"[a-z][a-zA-Z0-9_]*", result["Expression"])) - {"IF"}
    assert referenced <= set(queries) and {"tonight", "median7"} <= referenced
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] > 1


def test_the_dashboard_reads_only_metrics_that_exist() -> None:
    _, dashboard = one_resource(load_template(), "AWS::CloudWatch::Dashboard")
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
                      .replace("${AWS::Region}", "ap-northeast-2"))
    names = {name for name, _ in emitted()}
    seen = set()
    for widget in body["widgets"]:
        previous: list[Any] = []
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                found = re.findall(r'MetricName=\\?"(\w+)\\?"', line[0]["expression"])
                assert found and set(found) <= names, line
                seen.update(found)
                continue
            parts = [p for p in line if not isinstance(p, dict)]
            if parts[0] == "...":  # the previous line's namespace, metric and dimension names
                parts = previous[: len(previous) - len(parts) + 1] + parts[1:]
            assert parts[0] == metrics.NAMESPACE and parts[1] in names, line
            seen.add(parts[1])
            previous = parts
    assert {"Succeeded", "Failed", "Seconds", "ItemsPublished", "RowsRejected", "Images",
            "NightRowsRejected"} <= seen


def test_the_report_schedule_sends_the_lambda_a_report_event() -> None:
    template = load_template()
    _, schedule = one_resource(template, "AWS::Scheduler::Schedule")
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["SubmitterFunction", "Arn"]}
    event = json.loads(target["Input"]["Fn::Sub"].replace("${Bucket}", "b")
                       .replace("${JobLogGroup}", "/aws/batch/s"))
    assert event == {"report": "latest", "output_url": "s3://b", "log_group": "/aws/batch/s"}
    _, policy = one_resource(template, "AWS::IAM::Policy")
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:PutObject"
    assert statement["Resource"] == {"Fn::Sub": "${Bucket.Arn}/reports/*"}
