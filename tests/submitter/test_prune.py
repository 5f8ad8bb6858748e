"""Retention: ``catalog-submit prune --keep-days N`` deletes task rows, rejects and runs older than
N days, in batches, keeping everything younger and whatever a young row still names."""

from __future__ import annotations

import psycopg
import pytest

from submitter.cli import main
from submitter.retention import prune
from tests.submitter.conftest import add_shops


def _night(conn: psycopg.Connection, run_id: str, age_days: int, *, rerun_of: str | None = None,
           rows: int = 3) -> None:
    conn.execute(
        "INSERT INTO runs (id, run_date, kind, shop_count, created_at, rerun_of) VALUES "
        "(%s, current_date - %s, %s, 2, now() - make_interval(days => %s), %s)",
        (run_id, age_days, "nightly" if rerun_of is None else "rerun", age_days, rerun_of))
    conn.execute("INSERT INTO run_shops (run_id, idx, child, shop_id) VALUES "
                 "(%s, 0, 0, 'shop00000'), (%s, 1, 0, 'shop00001')", (run_id, run_id))
    for _ in range(rows):
        (task_run,) = conn.execute(
            "INSERT INTO task_runs (run_id, shop_id, task, status, started_at) VALUES "
            "(%s, 'shop00000', 'collect', 'succeeded', now() - make_interval(days => %s)) "
            "RETURNING id", (run_id, age_days)).fetchone()
        conn.execute(
            "INSERT INTO rejects (task_run_id, run_id, shop_id, task, reason, created_at) VALUES "
            "(%s, %s, 'shop00000', 'collect', 'missing title', now() - make_interval(days => %s))",
            (task_run, run_id, age_days))
        conn.execute(
            "INSERT INTO feed_publications (shop_id, channel, run_id, task_run_id, key, rows, "
            "rejected, bytes, sha256, unchanged, data_as_of) VALUES ('shop00000', 'google', %s, "
            "%s, 'k', 1, 0, 1, 'x', false, now())", (run_id, task_run))
    conn.commit()


def _count(conn: psycopg.Connection, table: str) -> int:
    (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    conn.commit()
    return int(n)


def test_prune_deletes_only_what_is_older_than_the_window(conn: psycopg.Connection) -> None:
    add_shops(conn, 2)
    _night(conn, "old-1", 45)
    _night(conn, "old-2", 40)
    _night(conn, "young", 3, rerun_of="old-2")
    counts = prune(conn, keep_days=30, batch=2)  # tiny batches: several short transactions
    assert counts == {"rejects": 6, "task_runs": 6, "run_shops": 4, "runs": 2}
    assert [r[0] for r in conn.execute("SELECT id FROM runs")] == ["young"]
    assert _count(conn, "task_runs") == 3 and _count(conn, "rejects") == 3
    # the young rerun no longer points at a deleted night; publications keep their history
    assert conn.execute("SELECT rerun_of FROM runs").fetchone() == (None,)
    assert _count(conn, "feed_publications") == 9
    assert prune(conn, keep_days=30) == {"rejects": 0, "task_runs": 0, "run_shops": 0, "runs": 0}



def test_the_command_line_prunes_and_says_what(
    cli_env: str, conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    add_shops(conn, 2)
    _night(conn, "old", 10)
    assert main(["prune", "--keep-days", "30"]) == 0
    assert _count(conn, "runs") == 1
    assert main(["prune", "--keep-days", "7"]) == 0
    assert _count(conn, "runs") == 0
    assert "pruned what is older than 7 days: 3 rejects, 3 task_runs, 2 run_shops, 1 runs" in \
        capsys.readouterr().out
