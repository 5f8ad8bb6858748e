"""The query behind every feed (the database formats prices, dates, lists) and the row stream.

PostgreSQL does what it does well, in its own process (another core, or RDS): prices rounded to the
currency's decimals, dates in ISO 8601, image lists joined, the summary EP's change class, whether a
group id collides with a product id and which variant attributes differ within a group. Rows
stream through a server-side cursor (fetched 2000 at a time) or ``COPY (SELECT …) TO STDOUT`` as
``FeedProduct`` rows (worker/feed/product.py); both were measured (bench/results-feed.md, earlier
runs): psycopg hands COPY data over one row per call, which costs more per row in this process
than the cursor's batches.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from contextlib import ExitStack, closing
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from worker.common import shutdown
from worker.common.product import CURRENCY_DECIMALS
from worker.feed.product import LIST_SEP, FeedProduct, normalise

Method = Literal["copy", "cursor"]
_DECIMALS = json.dumps(CURRENCY_DECIMALS)

_ISO = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
# The row's columns, in FeedProduct's order (one expression each).
_COLUMNS = (
    "p.product_id",
    "p.title",
    "p.description",
    "p.link",
    "p.mobile_link",
    "p.image_url",
    "p.image_link",
    """CASE WHEN p.image_url IS NOT NULL AND p.image_fitness IS NOT NULL THEN
        (SELECT string_agg(f.key, ',') FROM jsonb_each(p.image_fitness) f
         WHERE f.value = 'false'::jsonb) END""",
    "array_to_string(p.additional_image_urls, {sep})",
    "array_to_string(p.additional_image_links, {sep})",
    "round(p.price, d.n)::text",
    "round(p.sale_price, d.n)::text",
    _ISO.format("p.sale_price_start"),
    _ISO.format("p.sale_price_end"),
    "p.currency::text",
    "p.availability",
    _ISO.format("p.availability_date"),
    "p.condition",
    "p.brand",
    "p.gtin",
    "p.mpn",
    "p.item_group_id",
    "{group_is_id}",
    "{group_varies}",
    "p.color",
    "p.size",
    "p.gender",
    "p.age_group",
    "p.material",
    "p.pattern",
    "p.size_system",
    "p.size_type",
    "p.product_type",
    "p.google_product_category",
    "p.naver_category",
    "round(p.shipping_cost, d.n)::text",
    "{change}",
    "{update_time}",
)


_GROUP_IS_ID = """
    CASE WHEN p.item_group_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM products q
        WHERE q.shop_id = p.shop_id AND q.product_id = p.item_group_id AND q.gone_at IS NULL
    ) THEN 't' END
"""
# Meta: the items of a group differ by size, color, gender, age_group, material or pattern, and
# each carries the attribute that differs. Per group of two or more live items: the attributes
# every item has and that differ ("full"), then "|", then those only some items have ("partial");
# one grouped scan, hash-joined to the rows.
VARIANT_ATTRIBUTES = ("color", "size", "gender", "age_group", "material", "pattern")
_GROUPS = sql.SQL(
    " LEFT JOIN (SELECT item_group_id, concat_ws(',', {full}) || '|' || concat_ws(',', {partial})"
    " AS varies FROM products"
    " WHERE shop_id = {shop} AND gone_at IS NULL AND item_group_id IS NOT NULL"
    " GROUP BY item_group_id HAVING count(*) > 1) g ON g.item_group_id = p.item_group_id"
)
_FULL = "CASE WHEN count({a}) = count(*) AND count(DISTINCT {a}) > 1 THEN '{a}' END"
_PARTIAL = "CASE WHEN count({a}) BETWEEN 1 AND count(*) - 1 THEN '{a}' END"

# A product first seen after the watermark is new (I); one changed after it is updated (U); one gone
# after it is deleted (D). Without a watermark (no EP published yet) every live product is new.
_CHANGE = """
    CASE WHEN p.gone_at IS NOT NULL THEN 'D'
         WHEN {since} IS NULL OR p.first_seen_at > {since} THEN 'I'
         WHEN p.changed_at > {since} THEN 'U' END
"""
_UPDATE_TIME = """
    to_char(greatest(p.changed_at, p.first_seen_at, p.gone_at) AT TIME ZONE 'Asia/Seoul',
            'YYYY-MM-DD HH24:MI:SS')
"""


def feed_query(
    shop_id: str,
    *,
    check_groups: bool = False,
    summary: bool = False,
    since: datetime | None = None,
) -> sql.Composed:
    """The SELECT behind the stream: live products, plus gone ones after ``since`` for a summary."""
    return sql.SQL("{} ORDER BY p.product_id").format(
        _select(shop_id, check_groups=check_groups, summary=summary, since=since)
    )


# Where the line cache's columns start in a row of ``cached_feed_query``: the product's columns,
# then whether every channel the row goes to hit (``'t'`` or NULL), the row's key, and per channel
# (notes, line) of its cached line (notes NULL: no line holds).
CACHE_HIT = len(FeedProduct._fields)
CACHE_KEY = CACHE_HIT + 1
CACHE_LINES = CACHE_HIT + 2
_CHANGE_AT = FeedProduct._fields.index("change")


def cached_feed_query(
    shop_id: str,
    channels: Sequence[tuple[str, bool, bool]],
    *,
    now_iso: str,
    check_groups: bool = False,
    summary: bool = False,
    since: datetime | None = None,
) -> sql.Composed:
    """``feed_query``'s rows with each channel's cached line beside them (worker/feed/linecache.py).

    ``channels``: (name, delta, cached) in the pass's order; a channel not ``cached`` (its
    fingerprint changed) joins no line. The key hashes the whole row, so any column that
    changes — the product's, its group's, the summary's class — misses. A line holds when the key
    matches and the build time ``now_iso`` lies in its [valid_from, valid_until). When every
    channel the row goes to hit, the product's columns come as NULL (but product_id and change):
    the worker then neither builds nor normalises the product.
    """
    inner = _select(shop_id, check_groups=check_groups, summary=summary, since=since,
                    aliased=True)
    now = sql.SQL("{}::timestamptz").format(sql.Literal(now_iso))
    full: list[sql.Composable] = []
    delta: list[sql.Composable] = []
    lines: list[sql.Composable] = []
    found: list[sql.Composable] = []
    for j, (name, is_delta, cached) in enumerate(channels):
        hit: sql.Composable = sql.SQL("false")
        if cached:
            notes, line = sql.Identifier(f"n{j}"), sql.Identifier(f"l{j}")
            found.append(sql.SQL(
                "max(l.notes) FILTER (WHERE l.channel = {name}) AS {notes},"
                " max(l.line) FILTER (WHERE l.channel = {name}) AS {line}"
            ).format(name=sql.Literal(name), notes=notes, line=line))
            hit = sql.SQL("c.{} IS NOT NULL").format(notes)
            lines.append(sql.SQL("c.{}, c.{}").format(notes, line))
        else:
            lines.append(sql.SQL("NULL::text, NULL::text"))
        (delta if is_delta else full).append(hit)
    # One probe of the primary key per row for every channel's line (an aggregate, so the plan
    # cannot become a join over all of the shop's lines whatever the statistics say; measured:
    # one probe per channel cost the server ~4 µs a row each, bench/results-feed.md).
    joins = sql.SQL(
        " CROSS JOIN LATERAL (SELECT {found} FROM feed_lines l"
        " WHERE l.shop_id = {shop} AND l.product_id = b.c0 AND l.channel = ANY({names})"
        " AND l.input_key = b.k AND (l.valid_from IS NULL OR l.valid_from <= {now})"
        " AND (l.valid_until IS NULL OR {now} < l.valid_until)) c"
    ).format(
        found=sql.SQL(", ").join(found), shop=sql.Literal(shop_id), now=now,
        names=sql.Literal([name for name, _, cached in channels if cached]),
    ) if found else sql.SQL("")
    change = sql.Identifier(f"c{_CHANGE_AT}")
    every = sql.SQL(
        "b.{change} IS DISTINCT FROM 'D' AND {full} AND (b.{change} IS NULL OR {delta})"
    ).format(
        change=change,
        full=sql.SQL(" AND ").join(full) if full else sql.SQL("true"),
        delta=sql.SQL(" AND ").join(delta) if delta else sql.SQL("true"),
    )
    columns = [
        sql.SQL("b.{}").format(sql.Identifier(f"c{i}")) if i in (0, _CHANGE_AT)
        else sql.SQL("CASE WHEN h.hit THEN NULL ELSE b.{} END").format(sql.Identifier(f"c{i}"))
        for i in range(CACHE_HIT)
    ]
    return sql.SQL(
        "SELECT {columns}, CASE WHEN h.hit THEN 't' END, CASE WHEN h.hit THEN NULL ELSE b.k END,"
        " {lines}"
        " FROM (SELECT b.*, hash_record_extended(b, 0) AS k FROM ({inner}) b"
        " ORDER BY b.c0 OFFSET 0) b{joins}"
        " CROSS JOIN LATERAL (SELECT {every} AS hit) h"
        " ORDER BY b.c0"
    ).format(
        columns=sql.SQL(", ").join(columns), lines=sql.SQL(", ").join(lines), inner=inner,
        joins=joins, every=every,
    )


def _select(
    shop_id: str, *, check_groups: bool, summary: bool, since: datetime | None,
    aliased: bool = False,
) -> sql.Composed:
    since_sql = sql.SQL("{}::timestamptz").format(sql.Literal(since))
    expressions = [
        sql.SQL(c).format(
            sep=sql.Literal(LIST_SEP),
            group_is_id=sql.SQL(_GROUP_IS_ID if check_groups else "NULL::text"),
            group_varies=sql.SQL("g.varies" if check_groups else "NULL::text"),
            change=sql.SQL(_CHANGE).format(since=since_sql) if summary else sql.SQL("NULL::text"),
            update_time=sql.SQL(_UPDATE_TIME if summary else "NULL::text"),
        )
        for c in _COLUMNS
    ]
    if aliased:
        expressions = [
            sql.SQL("{} AS {}").format(e, sql.Identifier(f"c{i}"))
            for i, e in enumerate(expressions)
        ]
    return sql.SQL(
        "SELECT {columns} FROM products p"
        " CROSS JOIN LATERAL (SELECT coalesce(({decimals}::jsonb ->> p.currency::text)::int, 2)"
        " AS n) d{groups}"
        " WHERE p.shop_id = {shop} AND {where}"
    ).format(
        columns=sql.SQL(",").join(expressions), decimals=sql.Literal(_DECIMALS),
        shop=sql.Literal(shop_id),
        where=_where(summary, since_sql),
        groups=_GROUPS.format(
            shop=sql.Literal(shop_id),
            full=sql.SQL(", ").join(sql.SQL(_FULL.format(a=a)) for a in VARIANT_ATTRIBUTES),
            partial=sql.SQL(", ").join(sql.SQL(_PARTIAL.format(a=a)) for a in VARIANT_ATTRIBUTES),
        ) if check_groups else sql.SQL(""),
    )


def _where(summary: bool, since_sql: sql.Composable) -> sql.Composable:
    if summary:
        return sql.SQL("(p.gone_at IS NULL OR p.gone_at > {since})").format(since=since_sql)
    return sql.SQL("p.gone_at IS NULL")


def stream_products(
    conn: psycopg.Connection,
    query: sql.Composed,
    *,
    method: Method = "cursor",
    itersize: int = 2000,
) -> Generator[FeedProduct, None, None]:
    """Yield the query's rows in order, normalised, a bounded batch in memory at any time.

    Runs inside the caller's transaction (``conn`` is not in autocommit), so a server-side cursor
    is allowed and the whole pass sees one snapshot.
    """
    with closing(stream_rows(conn, query, method=method, itersize=itersize)) as rows:
        for row in rows:
            yield normalise(row)


def stream_rows(
    conn: psycopg.Connection,
    query: sql.Composed,
    *,
    method: Method = "cursor",
    itersize: int = 2000,
) -> Generator[tuple[Any, ...], None, None]:
    """The query's rows as the server sends them, not normalised (the line cache's pass
    normalises only the rows it must build). Close the generator when the pass ends early: an
    open COPY keeps the connection busy."""
    if method == "copy":
        with conn.cursor() as cur, ExitStack() as stack:
            # A stop signal while the COPY starts would leave the connection in the middle of a
            # COPY with nothing to end it (psycopg cancels, then raises before it hands the Copy
            # over), and the rollback and the task's record would fail: hold the signal until the
            # Copy is ours, whose exit cancels the COPY and reads what is left.
            with shutdown.deferred():
                copy = stack.enter_context(cur.copy(sql.SQL("COPY ({}) TO STDOUT").format(query)))
            yield from copy.rows()
    else:
        with conn.cursor(name="feed_products") as cur:
            cur.itersize = itersize
            cur.execute(query)
            yield from cur


def data_as_of(conn: psycopg.Connection) -> datetime:
    """The summary EP watermark for the pass about to run in this transaction.

    The transaction's start, or earlier when another transaction is open: a collect that started
    before us and commits after our snapshot stamps its changes with its own start time, so the
    next summary must look back that far (a change seen twice is harmless, one missed is not).
    """
    row = conn.execute(
        """
        SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                             WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
                               AND datname = current_database()
                               AND backend_type = 'client backend'))
        """
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def last_data_as_of(
    conn: psycopg.Connection, shop_id: str, channels: tuple[str, ...]
) -> datetime | None:
    """The watermark of the shop's newest publication among ``channels``, None when none."""
    row = conn.execute(
        "SELECT max(data_as_of) FROM feed_publications WHERE shop_id = %s AND channel = ANY(%s)",
        (shop_id, list(channels)),
    ).fetchone()
    return row[0] if row else None
