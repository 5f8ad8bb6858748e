"""``catalog-submit shops preview SHOP_OR_FILE``: a shop's mapping and validation on the head of its
source, then every channel's rules on each product, writing nothing.

Per item it prints the mapped fields and either collect's reject reason or, per channel, whether the
item would be published (and which attributes it drops, with the reason), left out by the
channel's policy, or excluded (and why). Exit 0 when the shop is ready, 65 with the reasons when not.

The channels are called through their registry and their one public method (``Channel.row``, which
returns a line, None for "left out", or raises ``RejectedRecord``), so the preview follows whatever
rules the channels hold.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TextIO

from submitter.shopfile import read_shop_file
from worker.collect.preview import HeadItem, head_items
from worker.common import db
from worker.common.errors import EXIT_DATAERR, EXIT_OK, CatalogError, ConfigError, RejectedRecord
from worker.common.product import CURRENCY_DECIMALS
from worker.common.settings import Settings
from worker.common.shops import Shop, load_shop
from worker.feed.channels import get_channel, registry
from worker.feed.channels.base import ChannelOptions
from worker.feed.product import LIST_SEP, FeedProduct, normalise

SHOWN = ("product_id", "title", "price", "sale_price", "currency", "availability", "link",
         "image_link", "brand", "gtin")


@dataclass
class ChannelTally:
    published: int = 0
    left_out: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass
class ShopPreview:
    shop: Shop
    items: int = 0
    collect_rejected: Counter[str] = field(default_factory=Counter)
    channels: dict[str, ChannelTally] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems


def _money(value: Any, currency: str) -> str | None:
    if value is None or value == "":
        return None
    places = CURRENCY_DECIMALS.get(currency.upper(), 2)
    quantum = Decimal(1).scaleb(-places)
    return str(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple):
        return LIST_SEP.join(str(v) for v in value) or None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def feed_product(product: Mapping[str, Any], *, delta: bool) -> FeedProduct:
    """The product as the feed's stream would hand it to the channels (before the images task:
    no processed image yet)."""
    currency = str(product.get("currency") or "")
    special: dict[str, Any] = {
        "price": _money(product.get("price"), currency),
        "sale_price": _money(product.get("sale_price"), currency),
        "shipping_cost": (str(Decimal(str(product["shipping_cost"])).quantize(
            Decimal(1), rounding=ROUND_HALF_UP)) if product.get("shipping_cost") not in (None, "")
            else None),
        "image_url": None, "unfit": None, "additional_image_urls": None, "group_is_id": None,
        "change": "I" if delta else None,
        "update_time": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).strftime(
            "%Y-%m-%d %H:%M:%S") if delta else None,
    }
    row = [special[name] if name in special else _text(product.get(name))
           for name in FeedProduct._fields]
    return normalise(row)


def preview_shop(shop: Shop, settings: Settings, *, limit: int, out: TextIO) -> ShopPreview:
    """Print the shop's head item by item; return what was found."""
    result = ShopPreview(shop)
    known = registry()
    channels = []
    for name in shop.channels:
        if name not in known:
            result.problems.append(f"channel {name!r} is not known (known: {', '.join(sorted(known))})")
            continue
        channels.append(get_channel(name, shop_id=shop.id,
                                    options=ChannelOptions.for_shop(shop, settings)))
        result.channels[name] = ChannelTally()
    print(f"shop {shop.id} ({shop.name}): {shop.format} from {shop.source_url}; channels "
          f"{', '.join(shop.channels) or 'none'}; the first {limit} records", file=out)
    try:
        for item in head_items(shop, settings, limit):
            result.items += 1
            _item(result, item, channels, out)
    except CatalogError as exc:
        result.problems.append(f"the source cannot be collected: {exc}")
    _verdict(result, out)
    return result


def _shown(value: Any) -> str:
    if hasattr(value, "reason") and hasattr(value, "value"):  # a value ``parse`` could not read
        return f"{str(value.value)[:40]!r} (unreadable)"
    return str(value)[:60]


def _item(result: ShopPreview, item: HeadItem, channels: list[Any], out: TextIO) -> None:
    mapped = item.product or item.mapped
    pid = mapped.get("product_id") or "?"
    title = str(mapped.get("title") or "")[:60]
    print(f"\n#{item.position} {pid}  {title}", file=out)
    shown = "  ".join(f"{k}={_shown(mapped[k])}" for k in SHOWN[2:]
                      if mapped.get(k) not in (None, "", []))
    if shown:
        print(f"   {shown}", file=out)
    if item.rejected is not None or item.product is None:
        reason = str(item.rejected) if item.rejected else "rejected"
        result.collect_rejected[reason] += 1
        print(f"   REJECTED by collect: {reason}", file=out)
        return
    product = item.product
    for channel in channels:
        tally = result.channels[channel.name]
        p = feed_product(product, delta=bool(getattr(channel, "delta", False)))
        channel.dropped.clear()
        try:
            line = channel.row(p)
        except RejectedRecord as exc:
            tally.rejected[str(exc)] += 1
            print(f"   {channel.name:<14} excluded: {exc}", file=out)
            continue
        if line is None:
            tally.left_out += 1
            print(f"   {channel.name:<14} left out by the channel's policy", file=out)
            continue
        tally.published += 1
        dropped = "; ".join(f"{d.field}: {d.reason}" for d in channel.dropped)
        print(f"   {channel.name:<14} published"
              + (f"; dropped {dropped}" if dropped else ""), file=out)


def _verdict(result: ShopPreview, out: TextIO) -> None:
    shop = result.shop
    print(f"\nshop {shop.id}: {result.items} records read", file=out)
    rejected = sum(result.collect_rejected.values())
    if result.items:
        share = float(shop.option("max_reject_share"))
        print(f"  collect: {result.items - rejected} valid, {rejected} rejected", file=out)
        for reason, n in result.collect_rejected.most_common(5):
            print(f"    {n} × {reason}", file=out)
        if rejected > share * result.items:
            result.problems.append(
                f"collect would reject {rejected} of {result.items} records ({rejected / result.items:.0%}), "
                f"more than max_reject_share {share:.0%}: the whole collect would fail")
        if rejected == result.items:
            result.problems.append("no record passes collect's validation")
    elif not result.problems:
        result.problems.append("the source has no records")
    for name, tally in result.channels.items():
        excluded = sum(tally.rejected.values())
        print(f"  {name}: {tally.published} published, {excluded} excluded, "
              f"{tally.left_out} left out", file=out)
        for reason, n in tally.rejected.most_common(5):
            print(f"    {n} × {reason}", file=out)
        if result.items > rejected and tally.published == 0 and not getattr(
            registry().get(name), "delta", False
        ):
            result.problems.append(f"channel {name} would publish none of the valid items")
    if result.ready:
        print(f"READY: shop {shop.id}", file=out)
    else:
        print(f"NOT READY: shop {shop.id}", file=out)
        for problem in result.problems:
            print(f"  - {problem}", file=out)


def _shops(target: str, settings: Settings) -> list[Shop]:
    path = Path(target)
    if path.suffix.lower() in (".json", ".toml") or path.is_file():
        return read_shop_file(path)
    if settings.database_url is None:
        raise ConfigError(f"{target!r} is not a shop file, and DATABASE_URL is not set to look "
                          "it up as a registered shop")
    with db.connect(settings.database_url) as conn:
        db.check_schema(conn)
        shop = load_shop(conn, target)
        conn.rollback()
    if shop is None:
        raise ConfigError(f"shop {target!r} is not registered (catalog-submit shops list), and "
                          "no such shop file exists")
    return [shop]


def run_preview(target: str, *, limit: int = 50, out: TextIO | None = None) -> int:
    """The command: every shop of a file, or one registered shop; 0 ready, 65 not."""
    stream = out or sys.stdout
    if limit < 1:
        raise ConfigError(f"--limit {limit}: preview at least one record")
    settings = Settings.from_env(require_database=False)
    results = [preview_shop(shop, settings, limit=limit, out=stream)
               for shop in _shops(target, settings)]
    return EXIT_OK if all(r.ready for r in results) else EXIT_DATAERR
