"""The delta's first-load path (a shop with no products at all: one plain INSERT) against the
general one: the same counts, the same stored hash, and a shop whose products are all gone is
not a first load."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from tests.fixtures_shops import make_shop
from worker.collect import load


def _row(pos: int, title: str = "t") -> tuple[Any, ...]:
    values: dict[str, Any] = dict.fromkeys(load.STAGING_COLUMNS)
    values.update(pos=pos, option=0, product_id=f"p{pos}", title=title,
                  link="https://a.example/p", additional_image_links=[], price=Decimal("1"),
                  currency="KRW", availability="in_stock", condition="new", extra="{}")
    return tuple(values[c] for c in load.STAGING_COLUMNS)


def _load(conn: psycopg.Connection, shop_id: str, rows: list[tuple[Any, ...]]) -> dict[str, int]:
    load.create_staging(conn)
    load.stage(conn, rows)
    counts = load.apply_delta(conn, shop_id, max_shrink_share=0.5, force=True, where="test")
    conn.commit()
    return counts.as_dict()


def _stored(conn: psycopg.Connection, shop_id: str) -> dict[str, tuple[Any, ...]]:
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT product_id, content_hash, gone_at IS NULL FROM products WHERE shop_id = %s",
        (shop_id,)).fetchall()}


def test_a_first_load_counts_and_hashes_as_the_general_delta(conn: psycopg.Connection) -> None:
    make_shop(conn, id="shop-a")
    rows = [_row(i) for i in range(1, 6)]
    assert _load(conn, "shop-a", rows) == {
        "inserted": 5, "updated": 0, "returned": 0, "unchanged": 0, "gone": 0}
    first = _stored(conn, "shop-a")
    # The same snapshot again takes the general path: nothing changed, the hashes agree.
    assert _load(conn, "shop-a", rows) == {
        "inserted": 0, "updated": 0, "returned": 0, "unchanged": 5, "gone": 0}
    assert _stored(conn, "shop-a") == first
    assert _load(conn, "shop-a", [_row(1, "new title"), *rows[1:]])["updated"] == 1


def test_a_shop_whose_products_are_all_gone_is_not_a_first_load(
    conn: psycopg.Connection,
) -> None:
    make_shop(conn, id="shop-a")
    rows = [_row(i) for i in range(1, 4)]
    _load(conn, "shop-a", rows)
    assert _load(conn, "shop-a", [])["gone"] == 3
    assert _load(conn, "shop-a", rows) == {
        "inserted": 0, "updated": 3, "returned": 3, "unchanged": 0, "gone": 0}
    assert all(alive for _, alive in _stored(conn, "shop-a").values())
