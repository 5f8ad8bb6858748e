"""Collect's test helpers: register a shop over a generated catalog and run the task for real."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import structlog

from tests import catalogs as catalog_gen
from tests.fixtures_shops import make_shop
from worker.collect.task import run
from worker.common import accounting
from worker.common.settings import Settings
from worker.common.shops import Shop, load_shop
from worker.common.task import TaskContext, TaskResult


@pytest.fixture
def s3(moto_endpoint: str, fake_aws_credentials: None) -> Iterator[Any]:
    """A client and a fresh bucket named catalogs-<pid>; boto3 finds fake credentials."""
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"catalogs-{os.getpid()}"
    client.create_bucket(Bucket=bucket)
    yield client
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


RunCollect = Callable[..., tuple[TaskResult, accounting.RejectSink]]


@pytest.fixture
def run_collect(database_url: str, settings_env: dict[str, str]) -> Iterator[RunCollect]:
    """Run collect for a registered shop on its own connections, as the router would."""

    def go(shop_id: str = "synthetic", **env: str) -> tuple[TaskResult, accounting.RejectSink]:
        settings = Settings.from_env({**settings_env, **env})
        with psycopg.connect(database_url) as conn, psycopg.connect(
            database_url, autocommit=True
        ) as acct:
            shop = load_shop(conn, shop_id)
            assert shop is not None
            conn.commit()
            task_run_id = accounting.start_task_run(
                acct, run_id=None, shop_id=shop_id, task="collect", array_index=0,
                job_id=None, attempt=1,
            )
            sink = accounting.RejectSink(acct, shop_id=shop_id, task="collect",
                                         task_run_id=task_run_id)
            ctx = TaskContext(
                settings=settings, conn=conn, shop=shop, run_id=None, task_run_id=task_run_id,
                rejects=sink, log=structlog.get_logger("test"), task="collect",
            )
            try:
                return run(ctx), sink
            finally:
                sink.flush()

    yield go


def register(conn: psycopg.Connection, fmt: str, source: Path | str, **overrides: Any) -> Shop:
    """Register the synthetic shop reading ``source`` in ``fmt`` (catalog_gen's mapping)."""
    shop = make_shop(conn, **catalog_gen.shop(fmt, str(source), **overrides))
    conn.commit()
    return shop


def write_catalog(path: Path, fmt: str, items: Any = None, count: int = 20, **kw: Any) -> Path:
    catalog_gen.write(path, fmt, catalog_gen.products(count) if items is None else items, **kw)
    return path


def products_table(conn: psycopg.Connection, shop_id: str = "synthetic") -> dict[str, dict[str, Any]]:
    """product_id → row (a small test catalog, so a dict is fine here)."""
    conn.commit()
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM products WHERE shop_id = %s ORDER BY product_id", (shop_id,)
        ).fetchall()
    conn.commit()
    return {r["product_id"]: r for r in rows}


def rejects_table(conn: psycopg.Connection) -> list[dict[str, Any]]:
    conn.commit()
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("SELECT * FROM rejects ORDER BY id").fetchall()
    conn.commit()
    return rows
