"""CloudWatch metrics without an agent or an API call: each task's summary as embedded-metric-format
(EMF) records, one JSON line each on stdout, which CloudWatch Logs turns into metrics on ingestion.

The format: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
(an ``_aws`` block naming the namespace, the dimension sets and the metrics; every dimension and
metric value a top-level member of the same object).

Dimensions are ``task``, and ``task`` + ``channel`` (+ ``outcome`` for images, a closed list of
twelve), never the shop: each distinct combination of dimension values is one custom metric, billed
per month, so a shop dimension would multiply the bill by the number of shops (10,000 shops × a dozen
metrics × channels is hundreds of thousands of metrics) and give dashboards nobody can read. The shop
and the run ride along as plain members: Logs Insights can still filter and group by them, at no
metric cost.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

NAMESPACE = "CatalogBatch"

# (metric name, unit, the summary's member): the task record's metrics.
_TASK_METRICS = (
    ("RowsIn", "Count", "rows_in"),
    ("RowsOut", "Count", "rows_out"),
    ("RowsRejected", "Count", "rows_rejected"),
    ("Bytes", "Bytes", "bytes"),
    ("Seconds", "Seconds", "duration_s"),
)
# A channel's counts in the feed task's ``counts["channels"][name]`` → metric names.
_CHANNEL_METRICS = (
    ("ItemsPublished", "Count", "rows"),
    ("ItemsExcluded", "Count", "excluded"),
    ("ItemsRejected", "Count", "rejected"),
    ("FeedBytes", "Bytes", "bytes"),
)


def _number(value: Any) -> float | int:
    """A metric value: numbers as they are, anything else (None, a dict of reasons) counted."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping):
        return sum(_number(v) for v in value.values())
    return 0


def _record(
    dimensions: Mapping[str, str], metrics: list[tuple[str, str, float | int]],
    properties: Mapping[str, Any], timestamp_ms: int,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
            }],
        },
    }
    record.update({k: v for k, v in properties.items() if v is not None})
    record.update(dimensions)
    record.update({name: value for name, _, value in metrics})
    return record


def summary_records(
    task: str,
    summary: Mapping[str, Any],
    *,
    status: str,
    properties: Mapping[str, Any] | None = None,
    timestamp_ms: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The EMF records of one task summary (the router's ``task.summary`` numbers and counts).

    One record for the task (its rows, bytes, seconds, and ``Succeeded``/``Failed`` as 0 or 1, so
    that a Sum counts tasks by outcome); one per channel for the feed; one per image outcome.
    """
    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    props = {"event": "task.metrics", "status": status, **(properties or {})}
    metrics: list[tuple[str, str, float | int]] = [
        (name, unit, _number(summary.get(member))) for name, unit, member in _TASK_METRICS
    ]
    metrics.append(("Succeeded", "Count", int(status == "succeeded")))
    metrics.append(("Failed", "Count", int(status != "succeeded")))
    yield _record({"task": task}, metrics, props, stamp)
    counts = summary.get("counts") or {}
    channels = counts.get("channels") if isinstance(counts, Mapping) else None
    if isinstance(channels, Mapping):
        for channel, numbers in sorted(channels.items()):
            if not isinstance(numbers, Mapping):
                continue
            yield _record(
                {"task": task, "channel": str(channel)},
                [(name, unit, _number(numbers.get(member)))
                 for name, unit, member in _CHANNEL_METRICS],
                props, stamp,
            )
    outcomes = counts.get("outcomes") if isinstance(counts, Mapping) else None
    if isinstance(outcomes, Mapping):
        for outcome, n in sorted(outcomes.items()):
            yield _record(
                {"task": task, "outcome": str(outcome)}, [("Images", "Count", _number(n))],
                props, stamp,
            )


def night_record(
    *, run_id: str, rows_rejected: int, rows_rejected_median7: float | None, shops: int,
    shops_failed: int, timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """The night's totals, written by the night report: what the rejects alarm compares.

    CloudWatch's metric math has no median over time and no time shift, so the median of the seven
    previous nights' rejects is computed from the task rows by the report and sent beside tonight's.
    """
    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    metrics: list[tuple[str, str, float | int]] = [
        ("NightRowsRejected", "Count", rows_rejected),
        ("NightShops", "Count", shops),
        ("NightShopsFailed", "Count", shops_failed),
    ]
    if rows_rejected_median7 is not None:
        metrics.append(("NightRowsRejectedMedian7", "Count", rows_rejected_median7))
    return _record({"scope": "night"}, metrics, {"event": "night.metrics", "run_id": run_id},
                   stamp)


def emit(records: Iterator[dict[str, Any]] | list[dict[str, Any]],
         stream: TextIO | None = None) -> None:
    """Each record as its own JSON line (CloudWatch reads one log event per line)."""
    out = stream or sys.stdout
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
    out.flush()
