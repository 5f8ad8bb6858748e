"""The collect task: one shop's catalog, from its source, validated, into ``products`` as a delta.

Order of work: compile the mapping (a bad one fails before a byte is read); take the shop's lock;
open the source (a 304 ends the task, nothing changed); stream records → mapping → validation →
COPY into staging, rejecting bad rows as they pass; reject duplicate ids; the reject gate; the
delta with its shrink gate; the source's validators; one commit. Any failure rolls everything back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from worker.collect import formats, load
from worker.collect.compiled import RowMaker, compile_rows
from worker.collect.limits import Limits
from worker.collect.mapping import CompiledMapping, column_problems, compile_mapping
from worker.collect.sources import (
    Source,
    describe,
    file_validator,
    local_file_validator,
    open_source,
)
from worker.common.accounting import RejectRecorder
from worker.common.db import shop_lock
from worker.common.errors import CatalogError, ConfigError, FatalError, RejectedRecord
from worker.common.shops import Shop
from worker.common.task import TaskContext, TaskResult

log = structlog.get_logger(__name__)
EXCERPT = 200


@dataclass
class _Tally:
    rows_in: int = 0  # records read
    candidates: int = 0  # products they make: records, or their options when expanded
    rejected: int = 0


def run(ctx: TaskContext) -> TaskResult:
    """Collect ``ctx.shop``'s catalog; see the module docstring for the order of work."""
    shop = ctx.shop
    where = f"shop {shop.id}, source {describe(shop.source_url)}"
    compiled = compile_mapping(
        shop.mapping, shop.format, shop.format_options, currency=shop.currency
    )
    with shop_lock(ctx.conn, shop.id, "collect", timeout_s=ctx.settings.shop_lock_timeout):
        try:
            return _collect(ctx, compiled, where)
        except BaseException:
            _rollback(ctx.conn)
            raise


def _rollback(conn: psycopg.Connection) -> None:
    if conn.closed:
        return
    # When the connection is gone the server rolls the transaction back by itself.
    with contextlib.suppress(psycopg.Error):
        conn.rollback()


def _collect(ctx: TaskContext, compiled: CompiledMapping, where: str) -> TaskResult:
    shop, conn = ctx.shop, ctx.conn
    fmt = formats.get_format(shop.format)
    limits = Limits.from_options(shop.format_options)
    tally = _Tally()
    config = config_fingerprint(shop)
    local = is_local(shop.source_url)
    if local and shop.source_etag and shop.source_etag.startswith("sha256:") and (
        local_file_validator(shop.source_url, config, ctx.settings.source_file_root)
        == shop.source_etag
    ):
        # A local file has no server to answer 304: the same bytes under the same mapping
        # would map to the same snapshot, so it is skipped the way a 304 is.
        log.info("collect.unchanged", source=describe(shop.source_url), etag=shop.source_etag)
        return TaskResult(note="unchanged source", counts=_counts(load.DeltaCounts()))
    with open_source(
        shop.source_url, settings=ctx.settings, etag=shop.source_etag,
        last_modified=shop.source_last_modified, where=where, limits=limits,
    ) as source:
        if source.unchanged:
            log.info("collect.unchanged", source=describe(shop.source_url), etag=shop.source_etag)
            return TaskResult(note="unchanged source", counts=_counts(load.DeltaCounts()))
        sniff(source, shop.format, where)
        log.info("collect.source", source=describe(source.url), compressed=source.compressed,
                 format=shop.format)
        check_header = header_check(shop, where)
        load.create_staging(conn)
        records = fmt.records(source.stream, shop.format_options, where, check_header, limits)
        rows = _rows(records, compile_rows(compiled, shop.currency), ctx.rejects, fmt.position,
                     tally)
        started = time.monotonic()
        first_load = load.shop_is_empty(conn, shop.id)
        staged = (load.stage_first_load(conn, rows, shop.id) if first_load
                  else load.stage(conn, rows))
        bytes_read = source.bytes_read
        log.info("collect.staged", rows=staged, rejected=tally.rejected,
                 seconds=round(time.monotonic() - started, 3))
    if tally.rows_in == 0:
        hint = {
            "json": f"is format_options.item_path ({shop.format_options.get('item_path', 'item')})"
                    " right?",
            "xml": "is format_options.item_element "
                   f"({shop.format_options.get('item_element', 'product')}) right?",
        }.get(shop.format, "is the export empty?")
        raise FatalError(f"{where}: found no products in the {shop.format} catalog: {hint}")
    duplicates = load.reject_duplicates(conn, ctx.rejects, fmt.position)
    rejected = tally.rejected + duplicates
    share = float(shop.option("max_reject_share"))
    # With options expanded the share counts products (options), which is what is rejected.
    unit = "records" if compiled.variants is None else "products (options expanded)"
    if rejected > share * tally.candidates:
        raise FatalError(
            f"{where}: {rejected} of {tally.candidates} {unit} were rejected "
            f"({rejected / tally.candidates:.1%}), more than max_reject_share {share:.0%}: the "
            "shop's products were not changed. See the rejects table for each row's reason; "
            "fix the export or the mapping"
        )
    started = time.monotonic()
    counts = load.apply_delta(
        conn, shop.id, max_shrink_share=float(shop.option("max_shrink_share")),
        force=ctx.settings.force, where=where, first_load_staged=first_load,
    )
    etag = source.etag
    if local and source.content_digest is not None:
        etag = file_validator(source.content_digest, config)
    load.store_validators(conn, shop.id, etag, source.last_modified)
    conn.commit()
    log.info("collect.applied", **counts.as_dict(), seconds=round(time.monotonic() - started, 3))
    return TaskResult(
        rows_in=tally.rows_in,
        rows_out=staged - duplicates,
        rows_rejected=rejected,
        bytes=bytes_read,
        counts={**_counts(counts), "duplicates": duplicates, "compressed": source.compressed},
    )


def is_local(url: str) -> bool:
    return "://" not in url or url.lower().startswith("file://")


def config_fingerprint(shop: Shop) -> str:
    """A short digest of what turns the source's bytes into products: a change re-collects."""
    text = json.dumps([shop.format, shop.format_options, shop.mapping, shop.currency],
                      sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _counts(counts: load.DeltaCounts) -> dict[str, Any]:
    return counts.as_dict()


def header_check(shop: Shop, where: str) -> Callable[[list[str]], None]:
    """The check a CSV header gets before any row: the columns the shop's mapping reads exist."""

    def check(columns: list[str]) -> None:
        problems = column_problems(shop.mapping, columns)
        if problems:
            raise ConfigError(f"{where}: the mapping does not fit the CSV header:\n"
                              + "\n".join(f"  - {p}" for p in problems))

    return check


def _rows(
    records: Iterator[formats.Record],
    maker: RowMaker,
    rejects: RejectRecorder,
    label: str,
    tally: _Tally,
) -> Iterator[tuple[Any, ...]]:
    """Staging rows of the valid records (or of their options, expanded lazily, one record at
    a time); every other record or option is rejected with its reason."""
    if not maker.variants:
        row_of = maker.row
        for pos, record in records:
            tally.rows_in += 1
            tally.candidates += 1
            if record.__class__ is RejectedRecord:
                tally.rejected += 1
                rejects.add(record.reason, position=f"{label} {pos}",  # type: ignore[union-attr]
                            field=record.field, excerpt=record.excerpt)  # type: ignore[union-attr]
                continue
            try:
                row = row_of(pos, record)  # type: ignore[arg-type]
            except RejectedRecord as exc:
                tally.rejected += 1
                where = f"{label} {pos}"
                _reject(rejects, exc, where, maker.product_id(record), record)  # type: ignore[arg-type]
                continue
            except CatalogError:
                raise
            except Exception as exc:
                tally.rejected += 1
                where = f"{label} {pos}"
                _reject(rejects, _unprocessable(exc, where), where,
                        maker.product_id(record), record)  # type: ignore[arg-type]
                continue
            yield row
        return
    expand = maker.expand
    for pos, record in records:
        tally.rows_in += 1
        if isinstance(record, RejectedRecord):
            tally.candidates += 1
            tally.rejected += 1
            rejects.add(record.reason, position=f"{label} {pos}", field=record.field,
                        excerpt=record.excerpt)
            continue
        try:
            for option, result, product_id in expand(pos, record):
                tally.candidates += 1
                if result.__class__ is tuple:
                    yield result  # type: ignore[misc]
                    continue
                tally.rejected += 1
                where = f"{label} {pos}, option {option}" if option else f"{label} {pos}"
                if not isinstance(result, RejectedRecord):
                    # Validation itself failed on this option: the option is the reject.
                    result = _unprocessable(result, where)  # type: ignore[arg-type]
                _reject(rejects, result, where, product_id, record)
        except CatalogError:
            raise
        except Exception as exc:
            # The mapping or the expansion itself failed on this record: the record is the
            # reject (options it already gave stay).
            tally.candidates += 1
            tally.rejected += 1
            where = f"{label} {pos}"
            _reject(rejects, _unprocessable(exc, where), where, maker.product_id(record), record)


def _unprocessable(exc: Exception, where: str) -> RejectedRecord:
    """Whatever one record's shape makes the mapping, validation or an encoder raise (a
    RecursionError from a value nested a thousand deep, an encoder's TypeError) is that record's
    reject, never the shop's exit 1; the reject gate still stops a shop whose every record fails
    this way."""
    log.warning("collect.record_failed", position=where, error=type(exc).__name__)
    return RejectedRecord(
        f"the record could not be processed: {type(exc).__name__}: {_message(exc)}"
    )


def _reject(rejects: RejectRecorder, exc: RejectedRecord, where: str, product_id: Any,
            record: Any) -> None:
    rejects.add(
        exc.reason, position=where, field=exc.field,
        product_id=str(product_id)[:256] if product_id not in (None, "") else None,
        excerpt=exc.excerpt or _excerpt(record),
    )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:EXCERPT]
    except Exception:
        return "(no message)"


def _excerpt(record: Any) -> str:
    try:
        text = repr(record)
    except RecursionError:
        return "(nested too deeply to show)"
    return text[:EXCERPT]


def sniff(source: Source, fmt: str, where: str) -> None:
    """Refuse at once a body that cannot be the shop's format: empty, or an HTML page."""
    head = source.head()
    # A remote response may be quoted (it is what the shop's server said); a local file never is.
    shown = "" if source.local else f"; it begins {head[:120].decode('utf-8', 'replace')!r}"
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body:
        size = (f"nothing once decompressed from {source.bytes_read} gzip bytes"
                if source.compressed else f"{source.bytes_read} bytes, blank")
        raise FatalError(f"{where}: the catalog is empty ({size}): check that the shop's export ran")
    lowered = body[:64].lower()
    looks_html = lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
    expected = {"json": (b"[", b"{"), "jsonl": (b"{",), "xml": (b"<",)}.get(fmt)
    if looks_html or (expected and not body.startswith(expected)) or (
        fmt in ("csv", "jsonl", "json") and body.startswith(b"<")
    ):
        raise FatalError(
            f"{where}: the response is not {fmt}"
            + (" but an HTML page" if looks_html else "")
            + f"{shown}: check the source URL and that the export succeeded"
        )
