"""Shop files: parse and validate a declarative shop registry (JSON or TOML) into ``Shop`` rows.

A shop file is ``{"shops": [ {...}, ... ]}`` (JSON) or ``[[shops]]`` tables (TOML). Every field is
validated against the channel registry and the mapping language, and every problem is reported with
the shop it belongs to.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.collect.formats import registry as format_registry
from worker.collect.mapping import mapping_problems
from worker.common.errors import ConfigError
from worker.common.product import CURRENCY_DECIMALS
from worker.common.shops import _SHARE_OPTIONS, DEFAULT_OPTIONS, Shop, is_shop_id
from worker.feed.channels import registry

_COUNTRY = re.compile(r"[A-Z]{2}")
# The country a shop ships to when its file names none: the one its currency belongs to, where that
# is one country (a euro shop must say which).
_COUNTRY_OF_CURRENCY = {
    "KRW": "KR", "JPY": "JP", "USD": "US", "GBP": "GB", "CNY": "CN", "TWD": "TW", "HKD": "HK",
    "SGD": "SG", "AUD": "AU", "CAD": "CA", "INR": "IN", "BRL": "BR", "VND": "VN", "THB": "TH",
}


def known_channels() -> tuple[str, ...]:
    """The channels a shop may list: the modules of worker/feed/channels (adding one is adding a module)."""
    return tuple(sorted(registry()))


def parse_shop(raw: Mapping[str, Any], where: str) -> Shop:
    """Validate one shop's declaration; raise ``ConfigError`` naming the shop and every problem."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a shop must be an object, got {type(raw).__name__}")
    shop_id = raw.get("id")
    label = f"{where} (shop {shop_id!r})" if shop_id is not None else where
    known = {
        "id", "name", "source_url", "format", "currency", "channels", "format_options",
        "mapping", "active", "options", "country",
    }
    for key in raw:
        if key not in known:
            problems.append(f"unknown field {key!r}: expected one of {', '.join(sorted(known))}")
    if not is_shop_id(shop_id):
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
    formats = sorted(format_registry())
    if not isinstance(fmt, str) or fmt not in formats:
        problems.append(f"format {fmt!r} is not known: expected one of {', '.join(formats)}")
    currency = raw.get("currency")
    if not isinstance(currency, str) or currency.upper() not in CURRENCY_DECIMALS:
        problems.append(f"currency {currency!r} is not a known ISO 4217 code (e.g. KRW, USD)")
    country = raw.get("country", _COUNTRY_OF_CURRENCY.get(str(currency).upper()))
    if country is not None and (not isinstance(country, str) or not _COUNTRY.fullmatch(country.upper())):
        problems.append(f"country {country!r} is not an ISO 3166-1 alpha-2 code (e.g. KR, US)")
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
        elif key in ("image_square", "apparel", "description_from_title") and (
            not isinstance(value, bool)
        ):
            problems.append(f"options.{key}={value!r} must be true or false")
        elif key == "image_max_edge" and (
            not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 8000
        ):
            problems.append(f"options.{key}={value!r} must be a whole number of pixels, 100–8000")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.append(f"active={active!r} must be true or false")
    if not problems and fmt is not None:
        problems.extend(mapping_problems(raw.get("mapping", {}), str(fmt), raw.get("format_options", {})))
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
        country=country.upper() if isinstance(country, str) else None,
    )


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
