"""``catalog-submit plan | submit | status | retry | local`` as an operator runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg
import pytest

from submitter.cli import main
from submitter.status import run_status
from tests.submitter.conftest import BatchEnv, add_shops, record_task
from worker.common.db import shop_lock_key

FAKE = Path(__file__).with_name("fake_worker.py")



def test_plan_prints_the_run_its_jobs_and_its_shops(
    cli_env: str, conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    add_shops(conn, 25)
    assert main(["plan", "--date", "2026-11-29"]) == 0
    out = capsys.readouterr().out
    assert "run 2026-11-29 (new nightly run for 2026-11-29): 25 shops, 3 jobs" in out
    assert "catalog-feed-2026-11-29" in out and "array of 25" in out
    assert "after collect/0 (N_TO_N)" in out
    assert "[0] shop00000" in out and "[19] shop00019" in out and "[20]" not in out
    assert "… 5 more children (--all-shops lists them)" in out
    assert main(["plan", "--date", "2026-11-29", "--all-shops"]) == 0
    again = capsys.readouterr().out
    assert "(existing nightly run" in again and "[24] shop00024" in again


def test_plan_refuses_a_bad_date_and_unknown_shops(
    cli_env: str, conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    add_shops(conn, 2)
    assert main(["plan", "--date", "29.11.2026"]) == 65
    assert "--date '29.11.2026' is not YYYY-MM-DD" in capsys.readouterr().err
    assert main(["plan", "--date", "2026-11-29", "--shop-ids", "shop00001,nope"]) == 65
    assert "not registered: nope" in capsys.readouterr().err


def test_submit_twice_then_status_from_batch(
    cli_env: str, conn: psycopg.Connection, batch_env: BatchEnv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_shops(conn, 3)
    args = ["submit", "--date", "2026-11-29", "--job-queue", batch_env.queue,
            "--job-definition", batch_env.definition]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["created"] is True and len(first["submitted"]) == 3
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["submitted"] == {} and second["already_submitted"] == first["submitted"]
    # No task rows yet: in progress (3), whatever Batch says.
    assert main(["status", "2026-11-29", "--batch"]) == 3
    out = capsys.readouterr().out
    assert "collect          0       0        0        3" in out
    assert f"batch collect/0  SUCCEEDED  {first['submitted']['collect/0']}" in out


def test_submit_without_a_queue_names_the_variable(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit"]) == 65
    assert "JOB_QUEUE and JOB_DEFINITION not set" in capsys.readouterr().err


def test_status_exit_codes_follow_the_task_rows(
    cli_env: str, conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    add_shops(conn, 2)
    main(["plan", "--date", "2026-11-29"])
    run = "2026-11-29"
    for shop in ("shop00000", "shop00001"):
        for task in ("collect", "feed", "images"):
            record_task(conn, run, shop, task, "succeeded", exit_code=0)
    capsys.readouterr()
    assert main(["status", run]) == 0
    record_task(conn, run, "shop00001", "feed", "running")
    with psycopg.connect(cli_env, autocommit=True) as live:
        # a live attempt holds its shop's task lock for as long as its row is running
        live.execute("SELECT pg_advisory_lock(%s)", (shop_lock_key("shop00001", "feed"),))
        assert main(["status", run]) == 3
    # the process gone (its lock free), the row is marked lost, and counts as failed
    assert main(["status", run]) == 2
    assert conn.execute("SELECT status, error FROM task_runs ORDER BY id DESC LIMIT 1"
                        ).fetchone()[0] == "lost"
    conn.commit()
    record_task(conn, run, "shop00001", "feed", "failed", exit_code=65)
    assert main(["status", run]) == 2
    out = capsys.readouterr().out
    assert "feed             1       1        0        0" in out
    assert "shop00001" in out and "shop00000" not in out.split("error")[-1]
    assert main(["status", run, "--all"]) == 2
    assert "shop00000" in capsys.readouterr().out


def test_status_counts_children_batch_failed_without_a_task_row(
    cli_env: str, conn: psycopg.Connection, batch_env: BatchEnv, monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_shops(conn, 2)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails every job it is given
    assert main(["submit", "--date", "2026-11-29", "--job-queue", batch_env.queue,
                 "--job-definition", batch_env.definition]) == 0
    record_task(conn, "2026-11-29", "shop00000", "collect", "failed", exit_code=65)
    state = run_status(conn, "2026-11-29", batch_env.api())
    assert state.counts["collect"]["failed"] == 2  # one reported, one only Batch knows
    assert state.counts["feed"]["failed"] == 2 and state.counts["feed"]["waiting"] == 0
    assert state.batch_failed["images"] == {0, 1}
    assert state.exit_code == 2
    assert state.counts["collect"]["waiting"] == 0


def test_local_runs_the_night_and_names_the_failed_shop(
    cli_env: str, conn: psycopg.Connection, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_shops(conn, 3)
    code = main(["local", "--date", "2026-11-29", "--parallel", "2",
                 "--log-dir", str(tmp_path / "logs"),
                 "--env", f"FAKE_RECORD={tmp_path / 'record.jsonl'}",
                 "--env", "FAKE_SCRIPT=" + json.dumps({"collect": {"1": [65]}}),
                 "--worker-command", f"{sys.executable} {FAKE}"])
    out = capsys.readouterr().out
    assert code == 2
    assert "run 2026-11-29-local1 (new local run" in out
    assert "collect  shop shop00001: exit 65 after 1 attempt(s)" in out
    assert "collect of position 1 failed" in out
    events = [json.loads(x) for x in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert {e["env"]["DATABASE_URL"] for e in events} == {cli_env}
    assert {e["env"]["RUN_ID"] for e in events} == {"2026-11-29-local1"}


def test_retry_failed_runs_only_the_failed_shops_as_a_new_run(
    cli_env: str, conn: psycopg.Connection, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_shops(conn, 4)
    main(["plan", "--date", "2026-11-29"])
    for i in range(4):
        record_task(conn, "2026-11-29", f"shop{i:05d}", "collect",
                    "failed" if i in (1, 3) else "succeeded", exit_code=65 if i in (1, 3) else 0)
    capsys.readouterr()
    code = main(["retry", "2026-11-29", "--failed", "--local", "--log-dir", str(tmp_path / "l"),
                 "--env", f"FAKE_RECORD={tmp_path / 'record.jsonl'}",
                 "--worker-command", f"{sys.executable} {FAKE}"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "run 2026-11-29-retry1 (new retry run for 2026-11-29): 2 shops" in out
    assert "[0] shop00001" in out and "[1] shop00003" in out
    events = [json.loads(x) for x in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert {(e["task"], e["position"]) for e in events if e["event"] == "start"} == {
        (t, i) for t in ("collect", "feed", "images") for i in (0, 1)
    }
    assert main(["retry", "2026-11-29"]) == 65
    assert "retry needs --failed" in capsys.readouterr().err


def test_docker_without_an_engine_says_so(
    cli_env: str, conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_shops(conn, 2)
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker here
    assert main(["local", "--docker", "catalog-batch:dev", "--log-dir", str(tmp_path)]) == 65
    assert "--docker needs a Docker engine and no `docker` is on PATH" in capsys.readouterr().err


def test_retry_on_batch_includes_children_that_failed_without_a_task_row(
    cli_env: str, conn: psycopg.Connection, batch_env: BatchEnv, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_shops(conn, 3)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # every child fails in Batch
    batch_args = ["--job-queue", batch_env.queue, "--job-definition", batch_env.definition]
    assert main(["submit", "--date", "2026-11-29", *batch_args]) == 0
    # Only shop 1 got as far as writing its row; Batch alone knows shops 0 and 2 failed.
    record_task(conn, "2026-11-29", "shop00001", "collect", "failed", exit_code=75)
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER")
    capsys.readouterr()
    assert main(["retry", "2026-11-29", "--failed", *batch_args]) == 0
    out = capsys.readouterr().out
    assert "run 2026-11-29-retry1 (new retry run for 2026-11-29): 3 shops" in out
    summary = json.loads(out[out.index("{"):])
    assert summary["run_id"] == "2026-11-29-retry1" and len(summary["submitted"]) == 3
