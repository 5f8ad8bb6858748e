"""The staging COPY against a real PostgreSQL: what goes in comes back out, column by column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.collect import load

AWKWARD = [
    'https://a.example/x,y{z}.jpg', 'https://a.example/"quoted".jpg', "https://a.example/back\\slash",
    "https://a.example/sp ace\tand tab", "NULL", "", "https://a.example/한글.jpg?a=1&b=2", "{}",
]


def _row(pos: int, images: list[str]) -> tuple[Any, ...]:
    values: dict[str, Any] = dict.fromkeys(load.STAGING_COLUMNS)
    values.update(pos=pos, option=0, product_id=f"p{pos}", title="t", link="https://a.example/p",
                  additional_image_links=images, price=Decimal("1"), currency="KRW",
                  availability="in_stock", condition="new", extra="{}")
    return tuple(values[c] for c in load.STAGING_COLUMNS)


def _staged_images(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> list[list[str]]:
    load.create_staging(conn)
    try:
        assert load.stage(conn, rows) == len(rows)
        return [r[0] for r in conn.execute(
            f"SELECT additional_image_links FROM {load.STAGING} ORDER BY pos").fetchall()]
    finally:
        conn.rollback()


def test_image_lists_survive_the_copy_as_they_were(conn: psycopg.Connection) -> None:
    lists = [[], ["https://a.example/1.jpg"], AWKWARD, [AWKWARD[1]] * 10]
    assert _staged_images(conn, [_row(i, v) for i, v in enumerate(lists)]) == lists


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.text(st.characters(blacklist_characters="\x00",
                                               blacklist_categories=("Cs",))), max_size=4),
                min_size=1, max_size=5))
def test_any_text_list_round_trips(conn: psycopg.Connection, lists: list[list[str]]) -> None:
    assert _staged_images(conn, [_row(i, v) for i, v in enumerate(lists)]) == lists
