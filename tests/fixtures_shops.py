"""Registering shops in a test's database."""

from __future__ import annotations

from typing import Any

import psycopg

from submitter.shopfile import parse_shop
from worker.common.shops import Shop, upsert_shops


def make_shop(conn: psycopg.Connection, **overrides: Any) -> Shop:
    """Register (upsert) one valid shop; any field may be overridden."""
    raw: dict[str, Any] = {
        "id": "shop-a",
        "name": "Shop A",
        "source_url": "file:///dev/null",
        "format": "jsonl",
        "currency": "KRW",
        "channels": ["google"],
    }
    raw.update(overrides)
    shop = parse_shop(raw, "test")
    upsert_shops(conn, [shop])
    return shop
