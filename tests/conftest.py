"""Fixtures every test shares: a clean, migrated PostgreSQL database per test, cloned from a
template migrated once per session (the pytest-postgresql janitor's trick)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests import fixtures_db
from tests.fixtures_aws import fake_aws_credentials, moto_endpoint  # noqa: F401 -- shared fixtures
from tests.fixtures_http import http_server  # noqa: F401 -- shared fixture
from worker.common.db import migrate

_counter = itertools.count()
TEMPLATE = "catalog_template"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_CHOICE] = fixtures_db.choose(os.environ)


_CHOICE = pytest.StashKey[fixtures_db.Choice]()


def pytest_report_header(config: pytest.Config) -> str:
    choice = config.stash[_CHOICE]
    return f"catalog-batch test database: {choice.provider} ({choice.detail})"


@pytest.fixture(scope="session")
def pg_admin_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """An admin URL to the session's PostgreSQL server, with a migrated template database."""
    choice = pytestconfig.stash[_CHOICE]
    with fixtures_db.start(choice, os.environ) as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        migrate(fixtures_db.with_database(admin_url, TEMPLATE))
        yield admin_url


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database for this test, cloned from the migrated template; dropped afterwards."""
    name = f"catalog_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE))
        )
    try:
        yield fixtures_db.with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as connection:
        yield connection


@pytest.fixture
def settings_env(database_url: str, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An environment for ``Settings.from_env(env)`` or a worker subprocess: this test's database,
    output under tmp_path, JSON logs, 127.0.0.1 allowed for the test's own HTTP servers, and
    local catalog files allowed from tmp_path."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "OUTPUT_URL": str(tmp_path / "out"),
        "LOG_FORMAT": "json",
        "FETCH_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        "SOURCE_FILE_ROOT": str(tmp_path),
    }
