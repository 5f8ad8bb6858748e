"""No secret leaks (issue 13, finding 7) and the small mends (finding 8), through the real worker:
a real HTTP server on 127.0.0.1, a real PostgreSQL, the worker as a subprocess; every captured log
line, stderr and database row is searched for the password."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fixtures_http import Server, send, serve
from tests.fixtures_shops import make_shop

PASSWORD = "Pa55-Secret-w0rd"
TOKEN = "T0ken-Secret-xyz"


def run_worker(env: dict[str, str], *args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "worker", *args]
    return subprocess.run(
        command, env={**env, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True, timeout=120
    )


def every_row(conn: psycopg.Connection) -> str:
    """Every row of the tables a task writes, as text."""
    parts: list[str] = []
    for table in ("task_runs", "rejects", "products"):
        parts.extend(str(row) for row in conn.execute(f"SELECT * FROM {table}").fetchall())
    return "\n".join(parts)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert TOKEN not in text


@pytest.fixture
def unavailable() -> Iterator[Server]:
    """A server that answers 503 (Retry-After: 0) to everything: the fetch retries, then gives up."""
    with serve(fallback=lambda h: send(h, 503, headers={"Retry-After": "0"})) as server:
        yield server


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_source_url_password_and_token_never_reach_logs_rows_or_stderr(
    conn: psycopg.Connection, settings_env: dict[str, str], unavailable: Server, log_format: str,
) -> None:
    address = f"{unavailable.host}:{unavailable.port}"
    url = f"http://shop:{PASSWORD}@{address}/catalog.json?access_token={TOKEN}"
    make_shop(conn, id="s1", source_url=url, format="json")
    conn.commit()
    env = {**settings_env, "SHOP_ID": "s1", "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
           "LOG_FORMAT": log_format}
    proc = run_worker(env, "collect")
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert len(unavailable.hits) > 1  # the retries happened, and were logged
    assert "fetch.retry" in proc.stdout
    assert f"http://***@{address}/catalog.json?***" in proc.stdout
    (error,) = conn.execute("SELECT error FROM task_runs").fetchone()
    assert f"{address}/catalog.json" in error
    assert_no_secret(proc.stdout, proc.stderr, every_row(conn))


CRASH = textwrap.dedent(
    """
    import sys
    from worker import router

    def crash(ctx):
        source_url = ctx.shop.source_url  # a local a traceback with locals would print
        shop = ctx.shop
        raise RuntimeError(f"bug while reading {source_url} for {shop!r}")

    router._load_task = lambda task: crash
    sys.exit(router.main(["collect"]))
    """
)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_crash_logs_its_traceback_without_locals_secrets_or_the_whole_shop_row(
    conn: psycopg.Connection, settings_env: dict[str, str], log_format: str
) -> None:
    url = f"https://shop:{PASSWORD}@shop.example/catalog.json?access_token={TOKEN}"
    make_shop(conn, id="s1", source_url=url, format="json",
              mapping={"product_id": "sku_code_field", "title": "name_field"})
    conn.commit()
    proc = run_worker({**settings_env, "SHOP_ID": "s1", "LOG_FORMAT": log_format}, code=CRASH)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "task.crashed" in proc.stdout and "RuntimeError" in proc.stdout
    assert "def crash" in proc.stdout or "in crash" in proc.stdout or '"crash"' in proc.stdout
    assert "https://***@shop.example/catalog.json?***" in proc.stdout
    # The shop appears as its short repr, never as the whole row (mapping, options).
    assert "sku_code_field" not in proc.stdout and "name_field" not in proc.stdout
    assert_no_secret(proc.stdout, proc.stderr, every_row(conn))
    (error,) = conn.execute("SELECT error FROM task_runs").fetchone()
    assert error.startswith("bug while reading https://***@shop.example/catalog.json?***")


def test_output_url_on_an_existing_file_exits_65_at_start(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "out.txt"
    blocker.write_text("not a folder")
    for output in (str(blocker), str(blocker / "nested"), f"file://{blocker}"):
        proc = run_worker({**settings_env, "SHOP_ID": "s1", "OUTPUT_URL": output}, "feed")
        assert proc.returncode == 65
        assert f"{blocker} is an existing file" in proc.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("SHOP_ID", "s1/../../etc"), ("SHOP_ID", "-s1"), ("SHOP_IDS", "s1,s 2"), ("SHOP_ID", "s" * 65)],
)
def test_a_malformed_shop_id_in_the_environment_exits_65_naming_it(
    settings_env: dict[str, str], name: str, value: str
) -> None:
    proc = run_worker({**settings_env, name: value}, "collect")
    assert proc.returncode == 65
    assert name in proc.stderr and "is not a shop id" in proc.stderr
