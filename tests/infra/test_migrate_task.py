"""`catalog-worker migrate`: the schema migrations as a task of the worker image, for the one-off
Batch job inside the VPC. It needs DATABASE_URL and nothing else (no shop, no run, no OUTPUT_URL)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests import fixtures_db
from worker.common import db
from worker.common.errors import FatalError


def run_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**env, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True, timeout=120,
        check=False,
    )


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """A database with no schema at all, as a new RDS instance has: not cloned from the template."""
    name = f"catalog_empty_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield fixtures_db.with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrate_brings_an_empty_database_to_the_codes_schema_with_only_database_url(
    empty_database_url: str,
) -> None:
    # The environment of the one-off job: the job definition's secret, and nothing about shops.
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": empty_database_url, "LOG_FORMAT": "json"}
    with psycopg.connect(empty_database_url) as conn, pytest.raises(FatalError, match="migrate"):
        db.check_schema(conn)
    first = run_worker(env, "migrate")
    assert first.returncode == 0, first.stderr + first.stdout
    (done,) = [e for e in events(first.stdout) if e["event"] == "migrate.done"]
    assert done["applied"] == [f"{m.version:04d}_{m.name}" for m in db.migrations()]
    assert done["schema_version"] == db.latest_version()
    assert done["task"] == "migrate"
    with psycopg.connect(empty_database_url) as conn:
        db.check_schema(conn)  # the night's tasks would now start
    # Idempotent, as every task: a second attempt (Batch may retry) applies nothing.
    again = run_worker(env, "migrate")
    assert again.returncode == 0, again.stderr
    (done,) = [e for e in events(again.stdout) if e["event"] == "migrate.done"]
    assert done["applied"] == []


def test_migrate_without_database_url_exits_65_naming_it() -> None:
    proc = run_worker({"PATH": os.environ["PATH"], "LOG_FORMAT": "json"}, "migrate")
    assert proc.returncode == 65
    assert "DATABASE_URL is not set" in proc.stderr


def test_an_unreachable_database_is_transient_so_batch_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "LOG_FORMAT": "json",
           "DATABASE_URL": f"postgresql://catalog@127.0.0.1:{port}/catalog?connect_timeout=2"}
    proc = run_worker(env, "migrate")
    assert proc.returncode == 75, proc.stderr + proc.stdout
    (failed,) = [e for e in events(proc.stdout) if e["event"] == "task.failed"]
    assert failed["exit_code"] == 75 and failed["task"] == "migrate"


def test_the_usage_names_migrate() -> None:
    proc = run_worker({"PATH": os.environ["PATH"]}, "publish")
    assert proc.returncode == 65
    assert "collect, feed, images, migrate" in proc.stderr
