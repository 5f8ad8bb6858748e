"""The task summary as CloudWatch embedded-metric-format records, read back as CloudWatch would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.fixtures_shops import make_shop
from worker import router
from worker.common import metrics
from worker.common.settings import Settings

# The units the EMF specification accepts (CloudWatch's StandardUnit).
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}


def parse_emf(line: str) -> list[tuple[str, dict[str, str], str, float]]:
    """One log line as CloudWatch's EMF extraction reads it: (namespace, dimensions, metric, value)
    for every metric of every directive; raises AssertionError where the line breaks the spec."""
    record = json.loads(line)
    assert isinstance(record, dict)
    aws = record["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_600_000_000_000
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    out = []
    for directive in directives:
        namespace = directive["Namespace"]
        assert isinstance(namespace, str) and 0 < len(namespace) <= 255
        assert isinstance(directive["Dimensions"], list)
        assert len(directive["Metrics"]) <= 100
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            values = {}
            for name in dimension_set:
                assert isinstance(record[name], str) and record[name], name
                values[name] = record[name]
            for metric in directive["Metrics"]:
                assert set(metric) <= {"Name", "Unit", "StorageResolution"}
                assert metric.get("Unit", "None") in UNITS
                value = record[metric["Name"]]
                assert isinstance(value, int | float) and not isinstance(value, bool)
                out.append((namespace, values, metric["Name"], float(value)))
    return out


def emf_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith('{"_aws"')]


def test_a_feed_summary_becomes_task_and_channel_metrics_without_the_shop_dimension(
    conn, settings_env, monkeypatch, capsys
):
    make_shop(conn, id="s1")
    conn.execute("INSERT INTO runs (id, run_date, shop_count) VALUES ('r-1', '2026-12-01', 1)")
    conn.commit()

    def feed(ctx):  # type: ignore[no-untyped-def]
        return router.TaskResult(
            rows_in=10, rows_out=14, rows_rejected=3, bytes=5000,
            counts={"channels": {
                "google": {"rows": 8, "rejected": 1, "excluded": 1, "bytes": 3000,
                           "unchanged": False},
                "meta": {"rows": 6, "rejected": 2, "excluded": 2, "bytes": 2000,
                         "unchanged": True},
            }},
        )

    monkeypatch.setattr(router, "_load_task", lambda task: feed)
    settings = Settings.from_env({**settings_env, "SHOP_ID": "s1", "RUN_ID": "r-1"})
    capsys.readouterr()
    assert router.run_task("feed", settings) == 0
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 3  # the task, then one per channel
    parsed = [parse_emf(line) for line in lines]
    task = {name: value for _, dims, name, value in parsed[0]}
    assert {dims["task"] for _, dims, _, _ in parsed[0]} == {"feed"}
    assert (task["RowsIn"], task["RowsOut"], task["RowsRejected"], task["Bytes"]) == (10, 14, 3, 5000)
    assert task["Succeeded"] == 1 and task["Failed"] == 0 and task["Seconds"] >= 0
    by_channel = {dims["channel"]: {n: v for _, _, n, v in p} for p in parsed[1:]
                  for _, dims, _, _ in p[:1]}
    assert by_channel == {
        "google": {"ItemsPublished": 8, "ItemsExcluded": 1, "ItemsRejected": 1, "FeedBytes": 3000},
        "meta": {"ItemsPublished": 6, "ItemsExcluded": 2, "ItemsRejected": 2, "FeedBytes": 2000},
    }
    for line in lines:
        record = json.loads(line)
        dimensions = {d for directive in record["_aws"]["CloudWatchMetrics"]
                      for ds in directive["Dimensions"] for d in ds}
        assert "shop_id" not in dimensions  # cardinality: see worker/common/metrics.py
        assert record["shop_id"] == "s1" and record["run_id"] == "r-1"  # a property, for Insights


def test_images_outcomes_and_a_failed_task(conn, settings_env, monkeypatch, capsys):
    make_shop(conn, id="s1")
    conn.commit()

    def images(ctx):  # type: ignore[no-untyped-def]
        return router.TaskResult(rows_in=5, rows_out=4, counts={"outcomes": {"ok": 3, "corrupt": 1,
                                                                              "unchanged": 1}})

    monkeypatch.setattr(router, "_load_task", lambda task: images)
    settings = Settings.from_env({**settings_env, "SHOP_ID": "s1"})
    capsys.readouterr()
    assert router.run_task("images", settings) == 0
    parsed = [parse_emf(line) for line in emf_lines(capsys.readouterr().out)]
    images_by_outcome = {dims["outcome"]: value for p in parsed for _, dims, name, value in p
                         if name == "Images"}
    assert images_by_outcome == {"ok": 3, "corrupt": 1, "unchanged": 1}

    def broken(ctx):  # type: ignore[no-untyped-def]
        raise router.FatalError("the export is an HTML page")

    monkeypatch.setattr(router, "_load_task", lambda task: broken)
    assert router.run_task("collect", settings) == 65
    parsed = [parse_emf(line) for line in emf_lines(capsys.readouterr().out)]
    assert len(parsed) == 1
    values = {name: value for _, dims, name, value in parsed[0]}
    assert values["Failed"] == 1 and values["Succeeded"] == 0


def test_console_logs_get_no_metric_lines(conn, settings_env, monkeypatch, capsys):
    make_shop(conn, id="s1")
    conn.commit()
    monkeypatch.setattr(router, "_load_task", lambda task: lambda ctx: router.TaskResult())
    env = {**settings_env, "SHOP_ID": "s1", "LOG_FORMAT": "console"}
    capsys.readouterr()
    assert router.run_task("feed", Settings.from_env(env)) == 0
    assert emf_lines(capsys.readouterr().out) == []


def test_a_real_worker_process_prints_parseable_emf(conn, settings_env, tmp_path):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        json.dumps({"id": "p1", "title": "Tea", "description": "Green tea", "brand": "Tea Co",
                    "link": "https://shop.example/p1",
                    "price": "12000", "image_link": "https://shop.example/p1.jpg"}) + "\n"
        + json.dumps({"id": "p2", "link": "https://shop.example/p2", "price": "1"}) + "\n",
        encoding="utf-8",
    )
    make_shop(conn, id="s1", source_url=catalog.as_uri(), channels=["google", "meta"],
              options={"max_reject_share": 0.6})
    conn.commit()
    env = {**settings_env, "SHOP_ID": "s1", "PYTHONPATH": os.getcwd()}
    found: dict[str, list[Any]] = {}
    for task in ("collect", "feed"):
        proc = subprocess.run([sys.executable, "-m", "worker", task], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found[task] = [parse_emf(line) for line in emf_lines(proc.stdout)]
    collect = {name: value for _, _, name, value in found["collect"][0]}
    assert collect["RowsIn"] == 2 and collect["RowsOut"] == 1 and collect["RowsRejected"] == 1
    channels = {dims.get("channel") for p in found["feed"] for _, dims, _, _ in p}
    assert channels == {None, "google", "meta"}
    assert all(ns == metrics.NAMESPACE for p in found["feed"] for ns, _, _, _ in p)


def test_the_night_record_carries_tonight_and_the_median():
    line = json.dumps(metrics.night_record(run_id="r", rows_rejected=40,
                                           rows_rejected_median7=4.5, shops=10, shops_failed=1))
    values = {name: value for _, dims, name, value in parse_emf(line)}
    assert values == {"NightRowsRejected": 40, "NightShops": 10, "NightShopsFailed": 1,
                      "NightRowsRejectedMedian7": 4.5}
