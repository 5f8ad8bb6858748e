"""The Lambda handler: both event shapes against moto's Batch, Secrets Manager, and light imports."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import boto3
import psycopg
import psycopg.conninfo
import pytest
import structlog

from submitter import lambda_handler
from tests.submitter.conftest import BatchEnv, add_shops
from worker.common.errors import ConfigError
from worker.common.settings import database_url_from_secret

SCHEDULED = {
    "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
    "source": "aws.events", "account": "123456789012", "time": "2026-11-28T17:00:00Z",
    "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/nightly"],
    "detail": {},
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The handler configures logging for its process (a Lambda container); give pytest its own back.
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


class Context:
    aws_request_id = "req-1"


@pytest.fixture
def lambda_env(batch_env: BatchEnv, database_url: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchEnv]:
    monkeypatch.setenv("JOB_QUEUE", batch_env.queue)
    monkeypatch.setenv("JOB_DEFINITION", batch_env.definition)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("DATABASE_SECRET_ARN", raising=False)
    lambda_handler.reset()
    yield batch_env
    lambda_handler.reset()


def test_the_scheduled_event_submits_its_night_once(
    lambda_env: BatchEnv, conn: psycopg.Connection
) -> None:
    add_shops(conn, 3)
    first = lambda_handler.handler(SCHEDULED, Context())
    assert first["run_id"] == "2026-11-28" and first["source"] == "schedule"
    assert first["created"] is True and sorted(first["submitted"]) == ["collect/0", "feed/0",
                                                                        "images/0"]
    assert first["request_id"] == "req-1"
    json.dumps(first)  # the summary is JSON
    # EventBridge delivers at least once: the same event again submits nothing.
    second = lambda_handler.handler(SCHEDULED, Context())
    assert second["created"] is False and second["submitted"] == {}
    assert second["already_submitted"] == first["submitted"]
    assert len(lambda_env.all_jobs()) == 3


def test_after_submitting_the_handler_prunes_what_is_past_keep_days(
    lambda_env: BatchEnv, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_shops(conn, 1)
    conn.execute("INSERT INTO runs (id, run_date, shop_count, created_at) "
                 "VALUES ('ancient', '2026-01-01', 0, now() - interval '90 days')")
    conn.execute("INSERT INTO task_runs (run_id, shop_id, task, status, started_at) VALUES "
                 "('ancient', 'shop00000', 'collect', 'succeeded', now() - interval '90 days')")
    conn.commit()
    monkeypatch.setenv("KEEP_DAYS", "60")
    summary = lambda_handler.handler(SCHEDULED, Context())
    assert summary["pruned"] == {"rejects": 0, "task_runs": 1, "run_shops": 0, "runs": 1}
    assert conn.execute("SELECT id FROM runs").fetchall() == [("2026-11-28",)]


def test_a_manual_event_with_shop_ids_and_a_rerun(
    lambda_env: BatchEnv, conn: psycopg.Connection
) -> None:
    add_shops(conn, 4)
    out = lambda_handler.handler({"run_date": "2026-12-01", "shop_ids": ["shop00002"]}, None)
    assert (out["run_id"], out["shop_count"], out["source"]) == ("2026-12-01", 1, "manual")
    jobs = {j["jobName"]: j for j in lambda_env.all_jobs()}
    assert "size" not in (jobs["catalog-collect-2026-12-01"].get("arrayProperties") or {})
    again = lambda_handler.handler({"run_date": "2026-12-01", "shop_ids": ["shop00001"]}, None)
    assert again["created"] is False and "shop_ids were not applied" in again["note"]
    rerun = lambda_handler.handler(
        {"run_date": "2026-12-01", "shop_ids": ["shop00001", "shop00003"], "rerun": True,
         "images_before_feed": True}, None)
    assert rerun["run_id"] == "2026-12-01-rerun1" and rerun["shop_count"] == 2
    jobs = {j["jobName"]: j for j in lambda_env.all_jobs()}
    feed = jobs["catalog-feed-2026-12-01-rerun1"]
    images = jobs["catalog-images-2026-12-01-rerun1"]
    assert feed["dependsOn"] == [{"jobId": images["jobId"], "type": "N_TO_N"}]


def test_the_database_url_comes_from_the_secret(
    lambda_env: BatchEnv, database_url: str, conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_shops(conn, 2)
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="catalog/db",
        SecretString=json.dumps({"engine": "postgres", "username": params.get("user", "postgres"),
                                 "password": "p@ss:/word", "host": params["host"],
                                 "port": int(params.get("port", 5432)), "dbname": params["dbname"]}),
    )
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DATABASE_SECRET_ARN", secret["ARN"])
    lambda_handler.reset()
    out = lambda_handler.handler(SCHEDULED, None)
    assert out["shop_count"] == 2 and len(out["submitted"]) == 3


def test_a_missing_secret_is_a_configuration_error(
    lambda_env: BatchEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DATABASE_SECRET_ARN",
                       "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf")
    lambda_handler.reset()
    with pytest.raises(ConfigError, match=r"reading the database secret .*nope.* failed: ResourceNotFound"):
        lambda_handler.handler(SCHEDULED, None)


def test_without_a_queue_the_handler_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOB_QUEUE", raising=False)
    monkeypatch.setenv("JOB_DEFINITION", "d")
    lambda_handler.reset()
    try:
        with pytest.raises(ConfigError, match="JOB_QUEUE not set"):
            lambda_handler.handler(SCHEDULED, None)
    finally:
        lambda_handler.reset()


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"source": "aws.events", "time": "yesterday"}, "not an ISO 8601 timestamp"),
        ({"shop_ids": ["a"]}, "run_date is missing"),
        ({"run_date": "29/11/2026"}, "is not YYYY-MM-DD"),
        ({"run_date": "2026-11-29", "shop_ids": "a,b"}, "shop_ids must be a list"),
        ({"run_date": "2026-11-29", "rerun": "yes"}, "rerun must be true or false"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_events_are_named(event: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lambda_handler.parse_event(event)  # type: ignore[arg-type]


def test_the_scheduled_time_is_read_in_utc() -> None:
    request = lambda_handler.parse_event({**SCHEDULED, "time": "2026-11-29T01:30:00+09:00"})
    assert request.run_date == dt.date(2026, 11, 28)


def test_secret_shapes() -> None:
    assert database_url_from_secret(" postgresql://u@h/db ") == "postgresql://u@h/db"
    url = database_url_from_secret(json.dumps({"username": "u", "password": "a/b@c", "host": "h"}))
    assert psycopg.conninfo.conninfo_to_dict(url) == {
        "user": "u", "password": "a/b@c", "host": "h", "port": "5432", "dbname": "postgres"}
    with pytest.raises(ConfigError, match="lacks password, host"):
        database_url_from_secret(json.dumps({"username": "u"}))
    with pytest.raises(ConfigError, match="neither a postgresql:// URI nor JSON"):
        database_url_from_secret("hunter2")


def test_importing_the_handler_loads_neither_pillow_nor_ijson() -> None:
    code = (
        "import sys, submitter.lambda_handler, submitter.batch, submitter.plan, submitter.submit\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('PIL', 'ijson'))\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    # The check can fail: the same probe sees Pillow when something does import it.
    proc = subprocess.run([sys.executable, "-c", "import PIL.Image\n" + code], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60)
    assert "PIL" in proc.stdout
