"""The stream's database side: prices formatted as the pure rule does, and the summary watermark."""

from __future__ import annotations

import itertools
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.catalogs import generate_products, insert_products, product
from tests.fixtures_shops import make_shop
from worker.common.product import CURRENCY_DECIMALS
from worker.feed.rules import format_price
from worker.feed.stream import data_as_of, feed_query, stream_products, stream_rows

_SHOPS = itertools.count()
amounts = st.decimals(min_value=0, max_value=Decimal("9999999999.9999"), places=4)


# Each example writes its own shop's products; one database for every generated input is fine.
@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(amounts, st.sampled_from(sorted(CURRENCY_DECIMALS))), min_size=1,
                max_size=50))
@example([(Decimal("0.005"), "USD"), (Decimal("12900.5"), "KRW"), (Decimal("1.0005"), "KWD"),
          (Decimal("2.4999"), "JPY"), (Decimal("0"), "EUR")])
def test_the_database_rounds_prices_as_format_price_does(
    database_url: str, pairs: list[tuple[Decimal, str]]
) -> None:
    # The feed's own query (stream.feed_query) over stored products, not a copy of its expression.
    shop_id = f"round-{next(_SHOPS)}"
    with psycopg.connect(database_url) as conn:
        make_shop(conn, id=shop_id)
        insert_products(conn, shop_id, [
            product(f"p{i:03d}", price=amount, sale_price=amount, shipping_cost=amount,
                    currency=currency)
            for i, (amount, currency) in enumerate(pairs)
        ])
        with conn.transaction():
            streamed = list(stream_products(conn, feed_query(shop_id)))
    assert [f"{p.price} {p.currency}" for p in streamed] == [format_price(a, c) for a, c in pairs]
    assert [f"{p.sale_price} {p.currency}" for p in streamed] == [
        format_price(a, c) for a, c in pairs]


def test_the_watermark_looks_back_to_a_transaction_still_open(database_url: str) -> None:
    with psycopg.connect(database_url) as other, psycopg.connect(database_url) as conn:
        with other.transaction():
            started = other.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            # Our own transaction starts later; the other one may still commit older stamps.
            conn.execute("SELECT pg_sleep(0.05)")
            conn.commit()
            with conn.transaction():
                mine = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
                assert mine > started
                assert data_as_of(conn) == started
        with conn.transaction():
            alone = data_as_of(conn)
            assert alone == conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


@pytest.mark.timeout(60)  # broken, the rollback waits on the open COPY: fail, do not hang
@pytest.mark.parametrize("method", ["copy", "cursor"])
@pytest.mark.parametrize("stream", [stream_rows, stream_products])
def test_a_pass_that_stops_early_leaves_the_connection_usable(
    conn: psycopg.Connection, method: str, stream: object
) -> None:
    # A COPY left open mid-stream (its generator suspended when the pass raised) kept the
    # connection busy: the rollback and the task's record after it failed ("another command is
    # already in progress"). Closing the stream cancels the COPY and reads what is left.
    make_shop(conn, id="early")
    generate_products(conn, "early", 5_000)
    conn.commit()
    with pytest.raises(RuntimeError, match="the pass stopped"), conn.transaction():
        rows = stream(conn, feed_query("early"), method=method)  # type: ignore[operator]
        try:
            for n, _ in enumerate(rows):
                if n == 10:
                    raise RuntimeError("the pass stopped")
        finally:
            rows.close()
    assert conn.execute("SELECT count(*) FROM products WHERE shop_id = 'early'").fetchone() == (
        5_000,)
