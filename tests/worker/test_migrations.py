"""Migrations: ordered, recorded, applied exactly once even when many processes start at once."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from tests import fixtures_db
from worker.common import db
from worker.common.errors import FatalError


@pytest.fixture
def empty_database(pg_admin_url):
    name = f"catalog_empty_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield fixtures_db.with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_twenty_migrate_processes_at_once_apply_each_migration_once(empty_database):
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": empty_database, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen([sys.executable, "-m", "submitter", "migrate"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(20)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append((p.returncode, out, err))
    assert [r[0] for r in results] == [0] * 20, [r[2] for r in results if r[0]]
    wanted = db.migrations()
    # exactly one process applied each migration; the others found nothing to do
    applied_lines = [line for _, out, _ in results for line in out.splitlines() if line.startswith("applied")]
    assert sorted(applied_lines) == sorted(f"applied {m.version:04d}_{m.name}" for m in wanted)
    with psycopg.connect(empty_database) as c:
        rows = c.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version").fetchall()
    assert sorted(rows) == [(m.version, 1) for m in wanted]


def test_migrate_twice_applies_nothing_the_second_time(empty_database):
    assert len(db.migrate(empty_database)) == len(db.migrations())
    assert db.migrate(empty_database) == []


def test_check_schema_names_the_versions_and_the_fix(empty_database):
    with psycopg.connect(empty_database) as c, pytest.raises(FatalError) as err:
        db.check_schema(c)
    assert f"version 0, this code needs {db.latest_version()}" in str(err.value)
    assert "catalog-submit migrate" in str(err.value)


def test_check_schema_sees_a_missing_migration_below_the_newest(empty_database):
    db.migrate(empty_database)
    with psycopg.connect(empty_database) as c:
        c.execute("DELETE FROM schema_migrations WHERE version = 1")
        with pytest.raises(FatalError, match="missing: 0001_foundation"):
            db.check_schema(c)


def test_an_edited_applied_migration_is_refused(empty_database):
    db.migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as c:
        c.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(FatalError, match="was changed after it was applied"):
        db.migrate(empty_database)


def test_migrations_are_ordered_and_unique():
    versions = [m.version for m in db.migrations()]
    assert versions[0] == 1
    assert versions == sorted(set(versions))


def test_shop_lock_makes_a_second_attempt_wait_then_give_up(database_url):
    from worker.common.errors import TransientError

    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        with db.shop_lock(first, "s1", "collect", timeout_s=5):
            with (
                pytest.raises(TransientError, match="another collect attempt holds"),
                db.shop_lock(second, "s1", "collect", timeout_s=0.2),
            ):
                pass
            # another shop, or another task of the same shop, is not blocked
            with db.shop_lock(second, "s2", "collect", timeout_s=0.2):
                pass
            with db.shop_lock(second, "s1", "feed", timeout_s=0.2):
                pass
        with db.shop_lock(second, "s1", "collect", timeout_s=0.2):
            pass


@pytest.mark.parametrize(("version", "shown"), [(130011, "13.11"), (90624, "9.6.24")])
def test_a_server_older_than_14_is_refused_with_its_version(version: int, shown: str) -> None:
    with pytest.raises(FatalError, match=rf"PostgreSQL {shown}; catalog-batch needs PostgreSQL 14"):
        db.require_server_version(version)
    db.require_server_version(140000)  # 14.0 itself is enough


def test_migrate_checks_the_server_version_before_applying_anything(
    empty_database, monkeypatch
) -> None:
    with psycopg.connect(empty_database) as c:
        version = c.info.server_version
    monkeypatch.setattr(db, "MIN_SERVER_VERSION", version + 1)
    with pytest.raises(FatalError, match="needs PostgreSQL 14 or newer"):
        db.migrate(empty_database)
    with psycopg.connect(empty_database) as c:
        assert c.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
