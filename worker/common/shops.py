"""Shops: the row type, its per-shop options and defaults, and the queries that store and load it.

Parsing and validating a shop file needs the stages' registries (channels, the mapping language),
so it lives in ``submitter.shopfile``, above this floor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from worker.common.errors import FatalError
from worker.common.redact import redact

# Matched with ``fullmatch`` (``is_shop_id``): "$" alone would also accept a trailing newline.
SHOP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_shop_id(value: object) -> bool:
    """Whether ``value`` is a valid shop id, matched in full (no trailing newline, no padding)."""
    return isinstance(value, str) and SHOP_ID.fullmatch(value) is not None


# Per-shop options and their defaults; a shop may override any of them.
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_reject_share": 0.10,  # collect fails (exit 65) past this share of rejected rows
    "max_shrink_share": 0.50,  # collect refuses a snapshot removing more of the shop's products
    "max_feed_drop_share": 0.30,  # feed refuses to publish a feed that lost more rows than this
    "image_square": False,  # pad processed images to a white square canvas
    "apparel": False,  # Google's apparel minimum image size (250 × 250) applies
    "image_max_edge": 1600,  # processed images fit within this edge
    # publish the title as the description where the shop gives none (Google requires one)
    "description_from_title": False,
}
_SHARE_OPTIONS = ("max_reject_share", "max_shrink_share", "max_feed_drop_share")


@dataclass(frozen=True)
class Shop:
    id: str
    name: str
    source_url: str
    format: str
    currency: str
    channels: tuple[str, ...]
    format_options: Mapping[str, Any] = field(default_factory=dict)
    mapping: Mapping[str, Any] = field(default_factory=dict)
    active: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    source_etag: str | None = None
    source_last_modified: str | None = None
    # ISO 3166-1 alpha-2: the country the shop ships to (Google g:shipping, Meta shipping)
    country: str | None = None

    def __repr__(self) -> str:
        # What a traceback or a log may show of a shop: never its source's credentials or query
        # string, never the whole row (mapping, options).
        return (
            f"Shop(id={self.id!r}, source_url={redact(self.source_url)!r}, format={self.format!r}, "
            f"channels={self.channels!r}, active={self.active!r})"
        )

    def option(self, name: str) -> Any:
        return self.options.get(name, DEFAULT_OPTIONS[name])


def upsert_shops(conn: psycopg.Connection, shops: Iterable[Shop]) -> int:
    """Insert or update shops by id (validators of past collects are kept); return how many."""
    count = 0
    with conn.transaction():
        for shop in shops:
            conn.execute(
                """
                INSERT INTO shops (id, name, source_url, format, format_options, mapping,
                                   channels, currency, active, options, country)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET
                    name = EXCLUDED.name, source_url = EXCLUDED.source_url,
                    format = EXCLUDED.format, format_options = EXCLUDED.format_options,
                    mapping = EXCLUDED.mapping, channels = EXCLUDED.channels,
                    currency = EXCLUDED.currency, active = EXCLUDED.active,
                    options = EXCLUDED.options, country = EXCLUDED.country, updated_at = now(),
                    -- a new source, or a new way of reading it, invalidates the conditional-GET
                    -- validators: a 304 must never skip re-mapping under a changed mapping
                    source_etag = CASE WHEN (shops.source_url, shops.format, shops.format_options,
                                             shops.mapping, shops.currency)
                                            IS NOT DISTINCT FROM
                                            (EXCLUDED.source_url, EXCLUDED.format,
                                             EXCLUDED.format_options, EXCLUDED.mapping,
                                             EXCLUDED.currency)
                                       THEN shops.source_etag END,
                    source_last_modified = CASE WHEN (shops.source_url, shops.format,
                                                      shops.format_options, shops.mapping,
                                                      shops.currency)
                                                     IS NOT DISTINCT FROM
                                                     (EXCLUDED.source_url, EXCLUDED.format,
                                                      EXCLUDED.format_options, EXCLUDED.mapping,
                                                      EXCLUDED.currency)
                                                THEN shops.source_last_modified END
                """,
                (
                    shop.id, shop.name, shop.source_url, shop.format,
                    Jsonb(dict(shop.format_options)), Jsonb(dict(shop.mapping)),
                    list(shop.channels), shop.currency, shop.active, Jsonb(dict(shop.options)),
                    shop.country,
                ),
            )
            count += 1
    return count


def _row_to_shop(row: Mapping[str, Any]) -> Shop:
    return Shop(
        id=row["id"],
        name=row["name"],
        source_url=row["source_url"],
        format=row["format"],
        currency=row["currency"].strip(),
        channels=tuple(row["channels"]),
        format_options=row["format_options"],
        mapping=row["mapping"],
        active=row["active"],
        options=row["options"],
        source_etag=row["source_etag"],
        source_last_modified=row["source_last_modified"],
        country=row["country"],
    )


def load_shop(conn: psycopg.Connection, shop_id: str) -> Shop | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM shops WHERE id = %s", (shop_id,)).fetchone()
    return _row_to_shop(row) if row else None


def list_shops(conn: psycopg.Connection, *, active_only: bool = False) -> list[Shop]:
    """All shops in id order (the registry is small by construction: hundreds, not millions)."""
    query = "SELECT * FROM shops" + (" WHERE active" if active_only else "") + " ORDER BY id"
    with conn.cursor(row_factory=dict_row) as cur:
        return [_row_to_shop(r) for r in cur.execute(query)]  # type: ignore[arg-type]


def require_shop(conn: psycopg.Connection, shop_id: str, *, where: str) -> Shop:
    """The active shop, or exit 65 naming where the id came from."""
    shop = load_shop(conn, shop_id)
    if shop is None:
        raise FatalError(f"{where}: shop {shop_id!r} is not registered (catalog-submit shops import)")
    if not shop.active:
        raise FatalError(f"{where}: shop {shop_id!r} is inactive")
    return shop
