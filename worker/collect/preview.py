"""The head of a shop's source through its mapping and validation, writing nothing: what
``catalog-submit shops preview`` shows. The submitter reads the collect stage through this one
function (tests/test_layers.py allows it), so that the preview runs exactly collect's code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from worker.collect import formats
from worker.collect.mapping import compile_mapping
from worker.collect.sources import describe, open_source
from worker.collect.task import header_check, sniff
from worker.collect.validate import ROW_COLUMNS, STAGING_COLUMNS, normalise
from worker.common.errors import RejectedRecord
from worker.common.settings import Settings
from worker.common.shops import Shop


@dataclass(frozen=True)
class HeadItem:
    """One record of the head: the product as collect would store it, or why it would not."""

    position: int
    mapped: dict[str, Any]  # the mapping's output (before validation), for display
    product: dict[str, Any] | None  # PRODUCT_FIELDS and extra, validated; None when rejected
    rejected: RejectedRecord | None
    option: int = 0  # the option's position from 1 when the record's options were expanded


def head_items(shop: Shop, settings: Settings, limit: int) -> Iterator[HeadItem]:
    """The first ``limit`` records of the shop's source, mapped and validated as collect does.

    Raises what collect raises for the whole source (an unreachable URL, an HTML page, a mapping
    that does not fit): the shop is not ready.
    """
    where = f"shop {shop.id}, source {describe(shop.source_url)}"
    compiled = compile_mapping(shop.mapping, shop.format, shop.format_options,
                               currency=shop.currency)
    check_header = header_check(shop, where)

    with open_source(shop.source_url, settings=settings, where=where) as source:
        sniff(source, shop.format, where)
        records = formats.records(shop.format, source.stream, shop.format_options, where,
                                  check_header)
        for count, (pos, record) in enumerate(records):
            if count >= limit:
                return
            if isinstance(record, RejectedRecord):
                yield HeadItem(pos, {}, None, record)
                continue
            fields: dict[str, Any] = {}
            try:
                fields, extra = compiled.apply(record)
                if compiled.variants is None:
                    options: Any = [(0, fields, extra)]
                else:
                    options = compiled.variants.expand(fields, extra, record)
            except RejectedRecord as exc:
                yield HeadItem(pos, dict(fields), None, exc)
                continue
            for option, variant, variant_extra in options:
                yield _item(pos, option, variant, variant_extra, shop.currency)


def _item(pos: int, option: int, variant: Any, extra: Any, currency: str) -> HeadItem:
    """One product of the head (one option of an expanded record), validated as collect does."""
    if isinstance(variant, RejectedRecord):
        return HeadItem(pos, {}, None, variant, option)
    try:
        row = normalise(pos, variant, extra, currency=currency, option=option)
    except RejectedRecord as exc:
        return HeadItem(pos, dict(variant), None, exc, option)
    # The staging row starts with the record's and the option's positions.
    product = dict(zip(ROW_COLUMNS, row[len(STAGING_COLUMNS) - len(ROW_COLUMNS):], strict=True))
    return HeadItem(pos, dict(variant), product, None, option)
