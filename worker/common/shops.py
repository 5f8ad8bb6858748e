"""Shops: the declarative shop registry (JSON or TOML), its validation, upsert and lookup.

A shop file is ``{"shops": [ {...}, ... ]}`` (JSON) or ``[[shops]]`` tables (TOML). Every field is
validated and every problem is reported with the shop it belongs to.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from worker.common.errors import ConfigError, FatalError
from worker.common.product import CURRENCY_DECIMALS

SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FORMATS = ("json", "jsonl", "csv", "xml")


def known_channels() -> tuple[str, ...]:
    """The channels a shop may list: the modules of worker/feed/channels (adding one is adding a module)."""
    from worker.feed.channels import registry

    return tuple(sorted(registry()))

# Per-shop options and their defaults; a shop may override any of them.
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_reject_share": 0.10,  # collect fails (exit 65) past this share of rejected rows
    "max_shrink_share": 0.50,  # collect refuses a snapshot removing more of the shop's products
    "max_feed_drop_share": 0.30,  # feed refuses to publish a feed that lost more rows than this
    "image_square": False,  # pad processed images to a white square canvas
    "apparel": False,  # Google's apparel minimum image size (250 × 250) applies
    "image_max_edge": 1600,  # processed images fit within this edge
    # feed lines built by PostgreSQL (less worker CPU, much more database CPU: see docs/feed.md)
    "feed_database_lines": False,
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

    def option(self, name: str) -> Any:
        return self.options.get(name, DEFAULT_OPTIONS[name])


def parse_shop(raw: Mapping[str, Any], where: str) -> Shop:
    """Validate one shop's declaration; raise ``ConfigError`` naming the shop and every problem."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a shop must be an object, got {type(raw).__name__}")
    shop_id = raw.get("id")
    label = f"{where} (shop {shop_id!r})" if shop_id is not None else where
    known = {
        "id", "name", "source_url", "format", "currency", "channels", "format_options",
        "mapping", "active", "options",
    }
    for key in raw:
        if key not in known:
            problems.append(f"unknown field {key!r}: expected one of {', '.join(sorted(known))}")
    if not isinstance(shop_id, str) or not SHOP_ID.match(shop_id):
        problems.append(
            f"id {shop_id!r} is invalid: expected 1–64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    name = raw.get("name", shop_id)
    if not isinstance(name, str) or not name.strip():
        problems.append("name must be a non-empty string")
    source_url = raw.get("source_url")
    if not isinstance(source_url, str) or not source_url.strip():
        problems.append(
            "source_url is missing: expected https://…, http://…, s3://bucket/key, "
            "file://… or a local path"
        )
    elif "://" in source_url and source_url.split("://", 1)[0].lower() not in (
        "http", "https", "s3", "file"
    ):
        problems.append(
            f"source_url {source_url!r} has an unsupported scheme: expected http(s), s3 or file"
        )
    fmt = raw.get("format")
    if fmt not in FORMATS:
        problems.append(f"format {fmt!r} is not known: expected one of {', '.join(FORMATS)}")
    currency = raw.get("currency")
    if not isinstance(currency, str) or currency.upper() not in CURRENCY_DECIMALS:
        problems.append(f"currency {currency!r} is not a known ISO 4217 code (e.g. KRW, USD)")
    channels: list[str] = raw.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        problems.append("channels must be a list of channel names")
        channels = []
    channel_names = known_channels()
    for channel in channels:
        if channel not in channel_names:
            problems.append(
                f"channel {channel!r} is not known: expected {', '.join(channel_names)}"
            )
    if len(set(channels)) != len(channels):
        problems.append(f"channels {channels} lists a channel twice")
    for key in ("format_options", "mapping", "options"):
        if not isinstance(raw.get(key, {}), Mapping):
            problems.append(f"{key} must be an object")
    options = raw.get("options", {}) if isinstance(raw.get("options", {}), Mapping) else {}
    for key, value in options.items():
        if key not in DEFAULT_OPTIONS:
            problems.append(f"options.{key} is not known: expected {', '.join(DEFAULT_OPTIONS)}")
        elif key in _SHARE_OPTIONS and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1
        ):
            problems.append(f"options.{key}={value!r} must be a share between 0 and 1")
        elif key in ("image_square", "apparel", "feed_database_lines") and not isinstance(value, bool):
            problems.append(f"options.{key}={value!r} must be true or false")
        elif key == "image_max_edge" and (
            not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 8000
        ):
            problems.append(f"options.{key}={value!r} must be a whole number of pixels, 100–8000")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.append(f"active={active!r} must be true or false")
    if not problems and fmt is not None:
        problems.extend(_mapping_problems(raw.get("mapping", {}), str(fmt), raw.get("format_options", {})))
    if problems:
        raise ConfigError(f"{label}:\n" + "\n".join(f"  - {p}" for p in problems))
    assert isinstance(shop_id, str) and isinstance(source_url, str) and isinstance(currency, str)
    return Shop(
        id=shop_id,
        name=str(name),
        source_url=source_url.strip(),
        format=str(fmt),
        currency=currency.upper(),
        channels=tuple(channels),
        format_options=dict(raw.get("format_options", {})),
        mapping=dict(raw.get("mapping", {})),
        active=bool(active),
        options=dict(options),
    )


def _mapping_problems(mapping: Any, fmt: str, format_options: Any) -> list[str]:
    """The mapping's problems, as collect sees them (collect owns the mapping language)."""
    from worker.collect.mapping import mapping_problems

    return mapping_problems(mapping, fmt, format_options)


def read_shop_file(path: Path) -> list[Shop]:
    """Parse and validate a shop file; every shop's problems are reported together."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read shop file {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from exc
    entries = data.get("shops") if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of shops under the key 'shops'")
    shops: list[Shop] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        try:
            shop = parse_shop(entry, f"{path}: shops[{i}]")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if shop.id in seen:
            problems.append(f"{path}: shops[{i}] (shop {shop.id!r}): id appears twice in the file")
        seen.add(shop.id)
        shops.append(shop)
    if problems:
        raise ConfigError("\n".join(problems))
    return shops


def upsert_shops(conn: psycopg.Connection, shops: Iterable[Shop]) -> int:
    """Insert or update shops by id (validators of past collects are kept); return how many."""
    count = 0
    with conn.transaction():
        for shop in shops:
            conn.execute(
                """
                INSERT INTO shops (id, name, source_url, format, format_options, mapping,
                                   channels, currency, active, options)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET
                    name = EXCLUDED.name, source_url = EXCLUDED.source_url,
                    format = EXCLUDED.format, format_options = EXCLUDED.format_options,
                    mapping = EXCLUDED.mapping, channels = EXCLUDED.channels,
                    currency = EXCLUDED.currency, active = EXCLUDED.active,
                    options = EXCLUDED.options, updated_at = now(),
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
