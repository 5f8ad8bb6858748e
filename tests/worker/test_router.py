"""The task router: shop resolution, exit codes, the task row, the log context and the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from structlog.testing import capture_logs

from tests.fixtures_shops import make_shop
from worker import router
from worker.common.errors import FatalError, TransientError
from worker.common.settings import Settings


def run_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**env, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True, timeout=120,
    )


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_no_database_url_exits_65_naming_it():
    proc = run_worker({"PATH": os.environ["PATH"]}, "collect")
    assert proc.returncode == 65
    assert "DATABASE_URL is not set" in proc.stderr


def test_unknown_task_is_a_usage_error_listing_the_tasks(settings_env):
    proc = run_worker(settings_env, "publish")
    assert proc.returncode == 65
    assert "collect, feed, images" in proc.stderr


def test_shop_ids_and_the_array_index_pick_the_shop(conn, settings_env):
    for shop_id in ("5", "6", "7"):
        make_shop(conn, id=shop_id, source_url="file:///nonexistent/catalog.jsonl")
    conn.commit()
    env = {**settings_env, "SHOP_IDS": "5,6,7", "AWS_BATCH_JOB_ARRAY_INDEX": "2",
           "AWS_BATCH_JOB_ID": "job-1:2", "AWS_BATCH_JOB_ATTEMPT": "2"}
    proc = run_worker(env, "collect")
    rows = conn.execute("SELECT shop_id, array_index, job_id, attempt, status FROM task_runs").fetchall()
    assert [r[:4] for r in rows] == [("7", 2, "job-1:2", 2)]
    assert rows[0][4] in ("succeeded", "failed")
    lines = events(proc.stdout)
    summary = [e for e in lines if e["event"] == "task.summary"]
    assert len(summary) == 1
    for e in lines:
        if e["event"] in ("task.start", "task.summary"):
            assert (e["shop_id"], e["task"], e["array_index"], e["job_id"], e["attempt"]) == (
                "7", "collect", 2, "job-1:2", 2)


def test_an_index_past_shop_ids_exits_65_naming_index_and_length(settings_env):
    env = {**settings_env, "SHOP_IDS": "5,6,7", "AWS_BATCH_JOB_ARRAY_INDEX": "3"}
    proc = run_worker(env, "collect")
    assert proc.returncode == 65
    failed = [e for e in events(proc.stdout) if e["event"] == "task.failed"]
    assert "AWS_BATCH_JOB_ARRAY_INDEX=3" in failed[0]["error"]
    assert "3 entries" in failed[0]["error"]


def test_a_run_that_does_not_exist_exits_65(settings_env):
    proc = run_worker({**settings_env, "RUN_ID": "2026-11-29-nope"}, "feed")
    assert proc.returncode == 65
    assert "RUN_ID=2026-11-29-nope does not exist" in proc.stdout


def test_run_id_index_and_offset_read_the_frozen_list(conn, settings_env):
    for shop_id in ("a", "b", "c"):
        make_shop(conn, id=shop_id)
    conn.execute("INSERT INTO runs (id, run_date, shop_count) VALUES ('r1', '2026-11-29', 3)")
    conn.execute("INSERT INTO run_shops (run_id, idx, shop_id, child) "
                 "VALUES ('r1', 0, 'a', 0), ('r1', 1, 'b', 1), ('r1', 2, 'c', 2)")
    conn.commit()
    settings = Settings.from_env({**settings_env, "RUN_ID": "r1", "AWS_BATCH_JOB_ARRAY_INDEX": "0",
                                  "SHOP_INDEX_OFFSET": "2"})
    assert router.resolve_shop_id(settings, conn) == ("c", "run r1 index 2")
    past = Settings.from_env({**settings_env, "RUN_ID": "r1", "AWS_BATCH_JOB_ARRAY_INDEX": "1",
                              "SHOP_INDEX_OFFSET": "2"})
    with pytest.raises(FatalError,
                       match=r"run r1.*position 3, outside its frozen list of 3 children \(3 shops\)"):
        router.resolve_shop_id(past, conn)


def test_unknown_and_inactive_shops_exit_65(conn, settings_env):
    make_shop(conn, id="sleepy", active=False)
    conn.commit()
    for shop_id, message in (("ghost", "is not registered"), ("sleepy", "is inactive")):
        proc = run_worker({**settings_env, "SHOP_ID": shop_id}, "images")
        assert proc.returncode == 65
        assert message in proc.stdout and shop_id in proc.stdout


def test_a_schema_behind_the_code_is_refused_with_the_fix(conn, settings_env):
    make_shop(conn, id="s1")
    conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
    conn.commit()
    proc = run_worker({**settings_env, "SHOP_ID": "s1"}, "feed")
    assert proc.returncode == 65
    assert "catalog-submit migrate" in proc.stdout


def test_an_unreachable_database_is_transient(settings_env):
    env = {**settings_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "SHOP_ID": "x",
           "DATABASE_CONNECT_RETRY_SECONDS": "1"}
    proc = run_worker(env, "collect")
    assert proc.returncode == 75
    retries = [e for e in events(proc.stdout) if e["event"] == "db.connect_retry"]
    assert retries and "the connection was refused" in retries[0]["error"]


@pytest.mark.parametrize(
    ("raised", "code", "event"),
    [
        (FatalError("bad export at line 3"), 65, "task.failed"),
        (TransientError("throttled"), 75, "task.failed"),
        (psycopg.OperationalError("server closed the connection unexpectedly"), 75, "task.failed"),
        (TimeoutError("read timed out"), 75, "task.failed"),
        (ValueError("a bug"), 1, "task.crashed"),
    ],
)
def test_failures_map_to_exit_codes_in_one_place(conn, settings_env, monkeypatch, raised, code, event):
    make_shop(conn, id="s1")
    conn.commit()

    def failing(ctx):
        ctx.rejects.add("missing title", position=3, product_id="p3", field="title")
        raise raised

    monkeypatch.setattr(router, "_load_task", lambda task: failing)
    settings = Settings.from_env({**settings_env, "SHOP_ID": "s1"})
    with capture_logs() as logs:
        assert router.run_task("collect", settings) == code
    failure = [e for e in logs if e["event"] == event]
    assert len(failure) == 1 and failure[0]["exit_code"] == code
    if code == 1:
        assert failure[0].get("exc_info") is True  # the traceback travels in this one event
    status, exit_code, error, rejected = conn.execute(
        "SELECT status, exit_code, error, rows_rejected FROM task_runs").fetchone()
    assert (status, exit_code, rejected) == ("failed", code, 1)
    assert str(raised) in error
    # the reject survives the failed task
    assert conn.execute("SELECT reason, position, product_id FROM rejects").fetchall() == [
        ("missing title", "3", "p3")]


def test_success_records_counts_and_one_summary_event(conn, settings_env, monkeypatch):
    make_shop(conn, id="s1")
    conn.commit()

    def ok(ctx):
        assert ctx.shop.id == "s1" and ctx.task == "feed"
        return router.TaskResult(rows_in=10, rows_out=9, rows_rejected=1, bytes=2_000_000,
                                 counts={"inserted": 9})

    monkeypatch.setattr(router, "_load_task", lambda task: ok)
    settings = Settings.from_env({**settings_env, "SHOP_ID": "s1"})
    with capture_logs() as logs:
        assert router.run_task("feed", settings) == 0
    summaries = [e for e in logs if e["event"] == "task.summary"]
    assert len(summaries) == 1
    s = summaries[0]
    assert (s["rows_in"], s["rows_out"], s["rows_rejected"], s["bytes"]) == (10, 9, 1, 2_000_000)
    assert s["rows_per_s"] > 0 and s["mb_per_s"] > 0 and s["counts"]["inserted"] == 9
    row = conn.execute("SELECT status, rows_out, counts->>'inserted' FROM task_runs").fetchone()
    assert row == ("succeeded", 9, "9")


def test_a_task_not_built_yet_says_so(conn, settings_env, monkeypatch):
    make_shop(conn, id="s1")
    conn.commit()
    monkeypatch.setattr(router, "_load_task", lambda task: None)
    with capture_logs() as logs:
        assert router.run_task("images", Settings.from_env({**settings_env, "SHOP_ID": "s1"})) == 0
    assert "not built yet" in next(e for e in logs if e["event"] == "task.summary")["note"]
