"""Load: COPY a snapshot into a temporary staging table, then apply it to ``products`` as a delta.

A first load (a shop with no products at all) goes into ``products`` while it streams, chunk by
chunk (``stage_first_load``), and staging keeps only the keys the duplicate rejects need.

Everything happens in the caller's one transaction: the staging table, the duplicate rejects, the
shrink gate and the delta. A product absent from the snapshot is marked gone (``gone_at``), not
deleted, so that the summary EP can announce it; one that comes back clears ``gone_at``.
``changed_at`` moves on insert, on a content change, on gone and on return, and never otherwise.
The content hash is computed by the server, off the Python thread: ``hash_record_extended`` of the
row's content columns (each type's own 64-bit hash, as hash partitioning uses: no text output, so
neither TimeZone nor DateStyle matters), stored as 8 bytes. It is 3–4 × cheaper than md5 of the
row's text, which cost the first load ~13 µs per product (jsonb and array output). Two different
contents collide with probability 2⁻⁶⁴ — a product whose change would then go unannounced.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.copy import Copy, FileWriter

from worker.collect.validate import ROW_COLUMNS, STAGING_COLUMNS
from worker.common.accounting import RejectRecorder
from worker.common.errors import FatalError

STAGING = "collect_staging"
_CONTENT = ROW_COLUMNS[1:]  # product_id is the key, not content


@dataclass
class DeltaCounts:
    inserted: int = 0
    updated: int = 0
    returned: int = 0
    unchanged: int = 0
    gone: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _ids(names: Iterable[str], table: str | None = None) -> sql.Composable:
    if table is None:
        return sql.SQL(", ").join(sql.Identifier(n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(table, n) for n in names)


def _hash(table: str) -> sql.Composable:
    # Migrations 0006 and 0010 re-hashed the stored products with this same expression (the
    # content columns in PRODUCT_FIELDS order, then extra): keep them in step.
    return sql.SQL("int8send(hash_record_extended(ROW({}), 0))").format(_ids(_CONTENT, table))


def array_literal(items: list[str]) -> str:
    """A text[] literal, every element quoted: the COPY's text for the column.

    Quoted elements keep commas, braces, spaces and the word NULL as text; only backslash and
    double quote need escaping (COPY's own escaping follows).
    """
    return "{" + ",".join(
        '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items
    ) + "}"


class _TextArrayDumper(Dumper):
    """The staging COPY's dumper for lists (the image URLs): psycopg's own list dumper is Python
    and costs ~10 µs per product with two URLs; this one writes the same literal ~60 % faster."""

    def dump(self, obj: list[str]) -> bytes:
        return array_literal(obj).encode()


def create_staging(conn: psycopg.Connection) -> None:
    """A temporary table shaped like ``products``' collected columns, dropped at commit."""
    # Every join of the delta is a whole-snapshot set operation. Statistics for a shop's products
    # lag behind its last load (estimated at 1 row), which makes the planner pick nested-loop
    # anti-joins: quadratic, 50 s instead of 0.3 s at 9,000 products. Hash joins are right here.
    conn.execute("SET LOCAL enable_nestloop = off")
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT 0::bigint AS pos, 0::integer AS option, {} "
        "FROM products "
        "WITH NO DATA"
    ).format(sql.Identifier(STAGING), _ids(ROW_COLUMNS)))


def stage(conn: psycopg.Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """COPY ``rows`` (STAGING_COLUMNS order) into the staging table; return how many."""
    count = 0
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(STAGING), _ids(STAGING_COLUMNS)
    )
    with conn.cursor() as cur:
        cur.adapters.register_dumper(list, _TextArrayDumper)
        with cur.copy(query) as copy:
            write = copy.write_row
            for row in rows:
                write(row)
                count += 1
    return count


CHUNK = "collect_chunk"
# Rows per chunk of a first load: the worker builds the next chunk while the server stores this
# one. At most three chunks are alive (building, queued, being written): ~10 MB each.
CHUNK_ROWS = 2500


def shop_is_empty(conn: psycopg.Connection, shop_id: str) -> bool:
    """Whether the shop has no products at all (gone ones count): its load is a first load."""
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM products WHERE shop_id = %s)",
                       (shop_id,)).fetchone()
    return bool(row and row[0])


def stage_first_load(conn: psycopg.Connection, rows: Iterable[tuple[Any, ...]],
                     shop_id: str) -> int:
    """A first load (``shop_is_empty``, under the shop's lock): the rows go into ``products`` as
    they come, chunk by chunk, and only their keys into staging; return how many were staged.

    A writer thread COPYs each chunk into a chunk table and inserts it into ``products``
    (``ORDER BY pos, option`` and ``ON CONFLICT DO NOTHING``: the first of a duplicated id wins,
    as in ``reject_duplicates``, which still finds and reports the later ones in staging) while
    this thread parses, maps and validates the next: the server's insert runs beside the
    worker's work instead of after it. Same connection, same transaction: the caller's rollback
    removes everything. ``apply_delta(..., first_load_staged=True)`` then only counts.
    """
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT * FROM {} WITH NO DATA")
                 .format(sql.Identifier(CHUNK), sql.Identifier(STAGING)))
    chunk_table, staging = sql.Identifier(CHUNK), sql.Identifier(STAGING)
    copy_query = sql.SQL("COPY {} ({}) FROM STDIN").format(chunk_table, _ids(STAGING_COLUMNS))
    statements = [
        sql.SQL(
            "INSERT INTO products (shop_id, {columns}, content_hash) "
            "SELECT %s, {c_columns}, {hash} FROM {chunk} ORDER BY pos, option "
            "ON CONFLICT (shop_id, product_id) DO NOTHING"
        ).format(columns=_ids(ROW_COLUMNS), c_columns=_ids(ROW_COLUMNS, CHUNK),
                 hash=_hash(CHUNK), chunk=chunk_table),
        sql.SQL("INSERT INTO {} (pos, option, product_id) SELECT pos, option, product_id "
                "FROM {}").format(staging, chunk_table),
        sql.SQL("TRUNCATE {}").format(chunk_table),
    ]
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def write() -> None:
        try:
            with conn.cursor() as cur:
                while (chunk := chunks.get()) is not None:
                    with cur.copy(copy_query) as copy:
                        copy.write(chunk)
                    del chunk
                    cur.execute(statements[0], (shop_id,))
                    cur.execute(statements[1])
                    cur.execute(statements[2])
        except BaseException as exc:  # handed to the caller's thread, which raises it
            failed.append(exc)

    def hand(chunk: bytes | None) -> None:
        while True:
            if failed:
                raise failed[0]
            if not writer.is_alive():
                return
            try:
                chunks.put(chunk, timeout=0.05)
                return
            except queue.Full:
                continue

    # This thread formats the rows as COPY text (psycopg's C formatter, through a cursor that
    # never talks to the server): the writer only sends bytes and waits, so the two threads do
    # not take turns on the GIL row by row, and a chunk is ~4 MB of text, not Python objects.
    formatting = conn.cursor()
    formatting.adapters.register_dumper(list, _TextArrayDumper)
    writer = threading.Thread(target=write, name="collect-first-load", daemon=True)
    writer.start()
    count = in_chunk = 0
    last = None
    text = io.BytesIO()
    copy = Copy(formatting, writer=FileWriter(text))
    try:
        for row in rows:
            # A record's options share its position: a chunk ends between records.
            if in_chunk >= CHUNK_ROWS and row[0] != last:
                copy.finish(None)
                hand(text.getvalue())
                text = io.BytesIO()
                copy = Copy(formatting, writer=FileWriter(text))
                in_chunk = 0
            copy.write_row(row)
            last = row[0]
            in_chunk += 1
            count += 1
        if in_chunk:
            copy.finish(None)
            hand(text.getvalue())
    finally:
        # Whatever happened here, the writer stops and is waited for: the connection is then
        # this thread's again (for the rollback, or the next statement).
        with contextlib.suppress(BaseException):
            hand(None)
        writer.join()
    if failed:
        raise failed[0]
    return count


def _where(label: str, pos: int, option: int) -> str:
    return f"{label} {pos}, option {option}" if option else f"{label} {pos}"


def reject_duplicates(conn: psycopg.Connection, rejects: RejectRecorder, label: str) -> int:
    """Reject every later row of a product id seen twice (the first wins); return how many.

    Rows are ordered by their record's position, then their option's (expanded options share
    their record's position)."""
    has = conn.execute(sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM {} GROUP BY product_id HAVING count(*) > 1)"
    ).format(sql.Identifier(STAGING))).fetchone()
    if not has or not has[0]:
        return 0
    count = 0
    with conn.cursor(name="collect_duplicates") as cur:
        cur.execute(sql.SQL(
            """
            SELECT pos, option, product_id, first_pos, first_option FROM (
                SELECT pos, option, product_id,
                       first_value(pos) OVER w AS first_pos,
                       first_value(option) OVER w AS first_option
                FROM {staging}
                WHERE product_id IN (
                    SELECT product_id FROM {staging} GROUP BY product_id HAVING count(*) > 1)
                WINDOW w AS (PARTITION BY product_id ORDER BY pos, option)
            ) d WHERE (pos, option) <> (first_pos, first_option) ORDER BY pos, option
            """
        ).format(staging=sql.Identifier(STAGING)))
        for pos, option, product_id, first_pos, first_option in cur:
            rejects.add(
                f"duplicate product id: the first, at {_where(label, first_pos, first_option)}, "
                "wins",
                position=_where(label, pos, option), product_id=product_id, field="product_id",
            )
            count += 1
    conn.execute(sql.SQL(
        "DELETE FROM {staging} a USING {staging} b "
        "WHERE a.product_id = b.product_id AND (a.pos, a.option) > (b.pos, b.option)"
    ).format(staging=sql.Identifier(STAGING)))
    return count


def apply_delta(
    conn: psycopg.Connection, shop_id: str, *, max_shrink_share: float, force: bool, where: str,
    first_load_staged: bool = False,
) -> DeltaCounts:
    """Insert new, update changed, mark gone the absent; refuse a snapshot that shrinks too much.

    ``first_load_staged``: ``stage_first_load`` already inserted the rows; only count them."""
    staging = sql.Identifier(STAGING)
    if first_load_staged:
        row = conn.execute("SELECT count(*) FROM products WHERE shop_id = %s",
                           (shop_id,)).fetchone()
        return DeltaCounts(inserted=int(row[0]) if row else 0)
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE gone_at IS NULL) FROM products "
        "WHERE shop_id = %s", (shop_id,)
    ).fetchone()
    stored, current = (int(row[0]), int(row[1])) if row else (0, 0)
    if stored == 0:
        return _first_load(conn, shop_id)
    # Only product_id: the delta's joins are on it (a first load has none: no statistics needed).
    # Sampling every column (descriptions, jsonb) cost ~1.3 s per 100k products.
    conn.execute(sql.SQL("ANALYZE {} (product_id)").format(staging))
    row = conn.execute(sql.SQL(
        "SELECT count(*) FROM products p WHERE p.shop_id = %s AND p.gone_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM {} s WHERE s.product_id = p.product_id)"
    ).format(staging), (shop_id,)).fetchone()
    leaving = int(row[0]) if row else 0
    if current and leaving > max_shrink_share * current and not force:
        raise FatalError(
            f"{where}: the snapshot would remove {leaving} of the shop's {current} products "
            f"({leaving / current:.0%}), more than max_shrink_share {max_shrink_share:.0%}: "
            "a broken export? Nothing was changed. If the shop really shrank, rerun with "
            "CATALOG_FORCE=1 or raise options.max_shrink_share"
        )
    counts = DeltaCounts()
    row = conn.execute(sql.SQL(
        "SELECT count(*) FROM products p WHERE p.shop_id = %s AND p.gone_at IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM {} s WHERE s.product_id = p.product_id)"
    ).format(staging), (shop_id,)).fetchone()
    counts.returned = int(row[0]) if row else 0
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = s.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in _CONTENT
    )
    cur = conn.execute(sql.SQL(
        """
        UPDATE products p SET {assignments}, content_hash = s.hash, changed_at = now(),
               gone_at = NULL
        FROM (SELECT {columns}, {hash} AS hash FROM {staging}) s
        WHERE p.shop_id = %s AND p.product_id = s.product_id
          AND (p.content_hash <> s.hash OR p.gone_at IS NOT NULL)
        """
    ).format(assignments=assignments, columns=_ids(ROW_COLUMNS), hash=_hash(STAGING),
             staging=staging), (shop_id,))
    counts.updated = cur.rowcount
    cur = conn.execute(sql.SQL(
        """
        INSERT INTO products (shop_id, {columns}, content_hash)
        SELECT %s, {s_columns}, {hash} FROM {staging}
        WHERE NOT EXISTS (SELECT 1 FROM products p
                          WHERE p.shop_id = %s AND p.product_id = {staging}.product_id)
        """
    ).format(columns=_ids(ROW_COLUMNS), s_columns=_ids(ROW_COLUMNS, STAGING),
             hash=_hash(STAGING), staging=staging), (shop_id, shop_id))
    counts.inserted = cur.rowcount
    cur = conn.execute(sql.SQL(
        """
        UPDATE products p SET gone_at = now(), changed_at = now()
        WHERE p.shop_id = %s AND p.gone_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM {} s WHERE s.product_id = p.product_id)
        """
    ).format(staging), (shop_id,))
    counts.gone = cur.rowcount
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(staging)).fetchone()
    staged = int(row[0]) if row else 0
    counts.unchanged = staged - counts.inserted - counts.updated
    return counts


def _first_load(conn: psycopg.Connection, shop_id: str) -> DeltaCounts:
    """A shop with no products at all: every staged row is new, nothing can change, return or
    go. The shop's collect lock keeps it so until the commit, so the delta is one plain INSERT:
    no anti-join, no gone pass over the rows just written (~3 µs per product)."""
    cur = conn.execute(sql.SQL(
        "INSERT INTO products (shop_id, {columns}, content_hash) "
        "SELECT %s, {s_columns}, {hash} FROM {staging}"
    ).format(columns=_ids(ROW_COLUMNS), s_columns=_ids(ROW_COLUMNS, STAGING),
             hash=_hash(STAGING), staging=sql.Identifier(STAGING)), (shop_id,))
    return DeltaCounts(inserted=cur.rowcount)


def store_validators(
    conn: psycopg.Connection, shop_id: str, etag: str | None, last_modified: str | None
) -> None:
    """Remember the source's validators for the next night's conditional GET."""
    conn.execute(
        "UPDATE shops SET source_etag = %s, source_last_modified = %s WHERE id = %s",
        (etag, last_modified, shop_id),
    )
