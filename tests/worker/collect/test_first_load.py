"""The delta's first-load path (a shop with no products at all: one plain INSERT) against the
general one: the same counts, the same stored hash, and a shop whose products are all gone is
not a first load."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import psycopg
import pytest

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


class _Rejects:
    def __init__(self) -> None:
        self.added: list[tuple[str, dict[str, Any]]] = []

    def add(self, reason: str, **where: Any) -> None:
        self.added.append((reason, where))


def _keyed(pos: int, option: int, product_id: str, title: str) -> tuple[Any, ...]:
    row = list(_row(pos, title))
    row[1], row[2] = option, product_id
    return tuple(row)


def test_a_first_load_in_chunks_keeps_the_first_of_a_duplicated_id(
    conn: psycopg.Connection, monkeypatch: Any,
) -> None:
    """Chunks of two rows: duplicates within a chunk and across chunks, a record's options
    never split; the first wins in products and the later ones are rejected with positions."""
    monkeypatch.setattr(load, "CHUNK_ROWS", 2)
    make_shop(conn, id="shop-a")
    rows = [_keyed(1, 0, "a", "a first"), _keyed(2, 0, "b", "b first"),
            _keyed(3, 0, "a", "a again"), _keyed(4, 1, "c", "c"), _keyed(4, 2, "d", "d"),
            _keyed(4, 3, "b", "b again"), _keyed(5, 0, "e", "e")]
    assert load.shop_is_empty(conn, "shop-a")
    load.create_staging(conn)
    assert load.stage_first_load(conn, iter(rows), "shop-a") == 7
    rejects = _Rejects()
    assert load.reject_duplicates(conn, rejects, "item") == 2
    assert [w["position"] for _, w in rejects.added] == ["item 3", "item 4, option 3"]
    counts = load.apply_delta(conn, "shop-a", max_shrink_share=0.5, force=False, where="t",
                              first_load_staged=True)
    conn.commit()
    assert counts.as_dict() == {"inserted": 5, "updated": 0, "returned": 0, "unchanged": 0,
                                "gone": 0}
    titles = dict(conn.execute("SELECT product_id, title FROM products").fetchall())
    assert titles == {"a": "a first", "b": "b first", "c": "c", "d": "d", "e": "e"}
    assert not load.shop_is_empty(conn, "shop-a")


def test_a_row_the_server_refuses_fails_the_first_load_and_a_rollback_undoes_it(
    conn: psycopg.Connection, monkeypatch: Any,
) -> None:
    monkeypatch.setattr(load, "CHUNK_ROWS", 2)
    make_shop(conn, id="shop-a")
    rows = [_row(i) for i in range(1, 6)]
    bad = list(rows[3])
    bad[load.STAGING_COLUMNS.index("price")] = Decimal("-1")  # products' CHECK (price >= 0)
    rows[3] = tuple(bad)
    load.create_staging(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        load.stage_first_load(conn, iter(rows), "shop-a")
    conn.rollback()
    assert load.shop_is_empty(conn, "shop-a")


def test_a_failure_while_reading_stops_the_writer_and_leaves_the_connection_usable(
    conn: psycopg.Connection, monkeypatch: Any,
) -> None:
    monkeypatch.setattr(load, "CHUNK_ROWS", 2)
    make_shop(conn, id="shop-a")

    def rows() -> Any:
        yield from (_row(i) for i in range(1, 6))
        raise RuntimeError("the source broke")

    load.create_staging(conn)
    with pytest.raises(RuntimeError, match="the source broke"):
        load.stage_first_load(conn, rows(), "shop-a")
    assert not any(t.name == "collect-first-load" for t in threading.enumerate())
    # The connection is ours again: what the writer stored is there until the rollback.
    assert conn.execute("SELECT count(*) FROM products").fetchone() == (4,)
    conn.rollback()
    assert load.shop_is_empty(conn, "shop-a")
