"""The connection budget: one connection per child; a full server is waited for with jittered
back-off instead of burning Batch's attempts; what cannot succeed (credentials, unknown host, a
malformed URI) exits 65 at once; no connection error shows the password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import fixtures_db
from tests.fixtures_http import Route, serve
from tests.fixtures_shops import make_shop
from worker.common import db
from worker.common.errors import ConfigError, TransientError
from worker.common.redact import scrub

PASSWORD = "s3cret@pass%w:rd"  # an '@', a '%' and a ':' a careless URI would leave unencoded
ROOT = Path(__file__).resolve().parents[2]
CATALOG = (b'{"product_id": "p1", "title": "Tea", "link": "https://shop.example/p1", '
           b'"image_link": "https://shop.example/p1.jpg", "price": "1000"}\n')


@pytest.fixture(scope="module")
def small_server() -> Iterator[str]:
    """A server of its own: 50 connections at most, and a password it really checks."""
    folder = fixtures_db.find_pg_binaries(os.environ)
    assert folder is not None, "these tests start their own PostgreSQL: initdb/pg_ctl are needed"
    with fixtures_db.binaries_server(folder, max_connections=50, password=PASSWORD) as url:
        db.migrate(url)
        yield url


@pytest.fixture
def slow_catalogs() -> Iterator[str]:
    """Each catalog in two halves half a second apart, so that every child holds its connection
    a while."""
    with serve(fallback=Route(CATALOG, drip=0.5, chunk=len(CATALOG) // 2 + 1)) as server:
        yield server.base


def test_200_children_at_once_all_get_in_on_a_server_of_50_connections(
    small_server, slow_catalogs, tmp_path
):
    count = 200
    ids = [f"s{i:03d}" for i in range(count)]
    with psycopg.connect(small_server) as conn:
        conn.execute("TRUNCATE shops, products, task_runs, rejects CASCADE")
        for shop_id in ids:
            make_shop(conn, id=shop_id, source_url=f"{slow_catalogs}/{shop_id}.jsonl")
        conn.commit()
    children = []
    for i in range(count):
        env = {
            "PATH": os.environ.get("PATH", ""), "DATABASE_URL": small_server,
            "OUTPUT_URL": str(tmp_path / "out"), "LOG_FORMAT": "json",
            "FETCH_ALLOW_NETWORKS": "127.0.0.0/8", "SHOP_IDS": ",".join(ids),
            "AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ID": f"job:{i}",
        }
        children.append({"env": env, "log": str(tmp_path / f"child-{i:03d}.log")})
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"task": "collect", "children": children}))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.worker.fork_workers", str(spec)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])["exit_codes"]
    logs = [Path(c["log"]).read_text() for c in children]
    failed = {i: logs[i][-600:] for i, code in enumerate(codes) if code != 0}
    assert not failed, f"{len(failed)} children failed, e.g. {next(iter(failed.items()))}"
    events = [json.loads(line) for text in logs for line in text.splitlines()
              if line.startswith("{")]
    waited = [e for e in events if e["event"] == "db.connect_retry"]
    # The server was full (the test means something only then) and those children waited.
    assert waited
    assert all("the server has too many connections" in e["error"]
               for e in waited)
    with psycopg.connect(small_server) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM task_runs WHERE task = 'collect' GROUP BY 1"
        ).fetchall()
        assert rows == [("succeeded", count)]
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (count,)
    assert not any(PASSWORD in text for text in logs)


def _worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "collect"],
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )


def _url(server: str, password: str, *, port: str | None = None, host: str = "127.0.0.1") -> str:
    params = psycopg.conninfo.conninfo_to_dict(server)
    return f"postgresql://postgres:{password}@{host}:{port or params['port']}/postgres"


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("wrong%ZZpassword", "not a valid libpq URI"),  # an invalid percent-escape
        ("wr@ngpass@word", "the host name is unknown"),  # an unencoded '@': libpq sees a host
        ("wrongpassword", "the password was refused"),
    ],
)
def test_a_bad_password_exits_65_at_once_and_is_never_shown(small_server, password, expected):
    env = {"PATH": os.environ.get("PATH", ""), "LOG_FORMAT": "json", "SHOP_ID": "s1",
           "DATABASE_URL": _url(small_server, password),
           # were it retried, the test's timeout would end it long before the window does
           "DATABASE_CONNECT_RETRY_SECONDS": "600"}
    proc = _worker(env)
    assert proc.returncode == 65
    out = proc.stdout + proc.stderr
    assert expected in out
    for fragment in (password, "ZZpassword", "ngpass", "pass@word"):
        assert fragment not in out
    # the submitter's command line says the same, and hides the same
    cli = subprocess.run(
        [sys.executable, "-m", "submitter", "shops", "list"],
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert cli.returncode == 65
    assert expected in cli.stderr
    for fragment in (password, "ZZpassword", "ngpass", "pass@word"):
        assert fragment not in cli.stdout + cli.stderr


def test_an_unknown_host_and_an_impossible_port_are_configuration(small_server):
    with pytest.raises(ConfigError, match="the host name is unknown"):
        db.connect(_url(small_server, "x", host="no-such-host.invalid"), retry_for=600)
    with pytest.raises(ConfigError, match="not a valid port number"):
        db.connect(_url(small_server, "x", port="99999"), retry_for=600)


def test_a_refused_port_is_retried_with_growing_pauses_for_the_window_then_transient(
    small_server,
):
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    with pytest.raises(TransientError, match=r"the connection was refused.*after \d+ attempts"):
        db.connect(_url(small_server, "x", port="1"), retry_for=2.0, jitter=lambda: 1.0,
                   sleep=sleep)
    # full jitter of 0.25 s × 2^attempt (the jitter pinned at its top), cut to the window's end
    assert pauses[:2] == [0.5, 1.0]
    assert len(pauses) >= 3 and pauses[2] <= 1.0


def test_the_child_holds_one_connection(conn, settings_env, monkeypatch):
    from worker import router
    from worker.common.settings import Settings

    make_shop(conn, id="s1")
    conn.commit()
    seen: list[int] = []

    def task(ctx):
        # every connection of this database but the test's own is the child's
        (n,) = ctx.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'catalog-batch'").fetchone()
        seen.append(n)
        ctx.rejects.add("missing title", position=1)
        raise TransientError("the source is down")

    monkeypatch.setattr(router, "_load_task", lambda name: task)
    assert router.run_task("collect", Settings.from_env({**settings_env, "SHOP_ID": "s1"})) == 75
    assert seen == [1]
    # the reject written after the task's rollback, on that same connection
    assert conn.execute("SELECT reason FROM rejects").fetchall() == [("missing title",)]


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://u:p%40ss%3Aw0rd@db.example:5432/catalog", "p@ss:w0rd"),
        ("postgresql://u:pa@ss@db.example/catalog", "ss@db"),  # libpq's host: ss@db.example
        ("host=db.example user=u password='s3cr et' dbname=catalog", "s3cr et"),
        ("postgresql://u@db.example/catalog?password=hunter22&sslmode=require", "hunter22"),
    ],
)
def test_scrub_hides_every_shape_of_password(dsn: str, secret: str) -> None:
    message = f"connection to {dsn} failed: FATAL for {secret}"
    shown = scrub(message, dsn)
    assert secret not in shown and "***" in shown
    assert secret not in db.describe_target(dsn)
