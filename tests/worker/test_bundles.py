"""A bundle's child, with the real worker: its shops one after another, each with its own row; a
permanent failure recorded and passed over, a transient one retried by the child's next attempt
(the shops already done skipped cheaply); the feed child runs only the shops whose collect
succeeded in this run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import psycopg

from submitter.plan import plan_run
from tests.fixtures_http import Route, serve
from tests.fixtures_shops import make_shop
from worker.common.db import shop_lock_key

ROOT = Path(__file__).resolve().parents[2]
CATALOG = b"".join(
    json.dumps({"product_id": f"p{i}", "title": f"Tea {i}", "description": f"Green tea {i}",
                "price": "1000",
                "link": f"https://shop.example/p{i}",
                "image_link": f"https://shop.example/p{i}.jpg"}).encode() + b"\n"
    for i in range(5)
)
HTML = b"<!DOCTYPE html><html><body>Service unavailable</body></html>"


def _worker(env: dict[str, str], task: str, attempt: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", task],
        env={**env, "AWS_BATCH_JOB_ATTEMPT": str(attempt), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=180,
    )


def _rows(conn: psycopg.Connection, task: str) -> list[tuple]:
    rows = conn.execute(
        "SELECT shop_id, attempt, status, exit_code FROM task_runs "
        "WHERE task = %s AND run_id IS NOT NULL ORDER BY id", (task,)).fetchall()
    conn.commit()
    return rows


def _events(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_a_bundle_records_each_shop_and_retries_only_the_transient_one(
    conn: psycopg.Connection, settings_env: dict[str, str], database_url: str
) -> None:
    routes = {"/good.jsonl": Route(body=CATALOG), "/bad.jsonl": Route(body=HTML),
              "/flaky.jsonl": Route(body=CATALOG)}
    with serve(routes) as server:
        for shop_id in ("good", "bad", "flaky"):
            make_shop(conn, id=shop_id, source_url=server.url(f"/{shop_id}.jsonl"))
            for task in ("collect", "feed", "images"):  # a short history: small enough to bundle
                conn.execute(
                    "INSERT INTO task_runs (shop_id, task, status, exit_code, duration_s, "
                    "finished_at) VALUES (%s, %s, 'succeeded', 0, 1.5, clock_timestamp())",
                    (shop_id, task))
        conn.commit()
        plan = plan_run(conn, dt.date(2026, 11, 29), kind="local", bundle_target_s=300)
        assert (plan.shop_count, plan.children) == (3, 1)
        env = {**settings_env, "RUN_ID": plan.run_id, "AWS_BATCH_JOB_ARRAY_INDEX": "0",
               "SHOP_LOCK_TIMEOUT": "0"}
        with psycopg.connect(database_url, autocommit=True) as other:
            # another attempt holds flaky's collect: its shop fails transiently (75)
            other.execute("SELECT pg_advisory_lock(%s)", (shop_lock_key("flaky", "collect"),))
            first = _worker(env, "collect", 1)
        assert first.returncode == 75, first.stdout[-3000:]
        assert sorted(_rows(conn, "collect")) == [
            ("bad", 1, "failed", 65), ("flaky", 1, "failed", 75), ("good", 1, "succeeded", 0)]
        bundle = next(e for e in _events(first) if e["event"] == "bundle.summary")
        assert bundle["failed_transiently"] == ["flaky"] and bundle["failed_for_good"] == ["bad"]
        # Batch retries the child: only flaky runs again
        second = _worker(env, "collect", 2)
        assert second.returncode == 0, second.stdout[-3000:]
        assert sorted(_rows(conn, "collect")) == [
            ("bad", 1, "failed", 65), ("flaky", 1, "failed", 75), ("flaky", 2, "succeeded", 0),
            ("good", 1, "succeeded", 0)]
        skipped = {e["shop_id"]: e["reason"] for e in _events(second)
                   if e["event"] == "task.skipped"}
        assert skipped == {"bad": "collect already failed for good in this run (exit 65)",
                           "good": "collect already succeeded in this run"}
    # the feed child: the shops whose collect succeeded in this run, not the bad one
    feed = _worker(env, "feed", 1)
    assert feed.returncode == 0, feed.stdout[-3000:]
    assert sorted(_rows(conn, "feed")) == [("flaky", 1, "succeeded", 0),
                                           ("good", 1, "succeeded", 0)]
    assert {e["shop_id"] for e in _events(feed) if e["event"] == "task.skipped"} == {"bad"}
    out = Path(settings_env["OUTPUT_URL"]) / "feeds"
    assert sorted(p.name for p in out.iterdir()) == ["flaky", "good"]
    summaries = [e for e in _events(feed) if e["event"] == "task.summary"]
    assert sorted(e["shop_id"] for e in summaries) == ["flaky", "good"]
