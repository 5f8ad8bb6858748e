"""Meta (Facebook/Instagram) catalog: CSV, RFC 4180 quoting, UTF-8, one product per line.

Rules (developers.facebook.com, commerce catalog reference, as gathered in CHANNELS.md): id ≤ 100,
title ≤ 200, description ≤ 9999 without HTML tags or entities; availability with spaces
(``in stock``, ``available for order``…); price ``9.99 USD``; link, image_link required; at least
one of brand / gtin / mpn; ``item_group_id`` must never equal an ``id``; quote fields with
whitespace or commas, ``"`` doubled. A line may not pass 5,242,880 bytes: one product per line and
the field limits keep a line far below it. gzip is accepted for scheduled feeds (*unconfirmed*).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.common.errors import RejectedRecord
from worker.feed import lines
from worker.feed.channels.base import (
    Channel,
    FeedProduct,
    check_id,
    check_url,
    is_positive_amount,
    less_than,
    require,
    trim_at_word,
)
from worker.feed.channels.google import clean_gtin
from worker.feed.lines import LineSQL

AVAILABILITY = {
    "in_stock": "in stock",
    "out_of_stock": "out of stock",
    "preorder": "preorder",
    "backorder": "available for order",
    "discontinued": "discontinued",
}
FIELDS = (
    "id", "title", "description", "availability", "condition", "price", "sale_price", "link",
    "image_link", "additional_image_link", "brand", "gtin", "mpn", "item_group_id",
    "product_type", "google_product_category",
)
# Prefix of a group id that collides with a product id (Meta refuses such groups).
GROUP_PREFIX = "group-"


def csv_row(values: Sequence[str]) -> str:
    """One RFC 4180 line with every field quoted and ``"`` doubled (Meta: quote whitespace, commas).

    Quoting every field keeps this to a few C-level string operations per row; values never hold
    the unit separator, which the stream's text rules remove.
    """
    joined = "\x1f".join(values)
    if '"' in joined:
        joined = joined.replace('"', '""')
    return '"' + joined.replace("\x1f", '","') + '"\n'


class MetaChannel(Channel):
    name = "meta"
    extension = "csv"
    content_type = "text/csv; charset=utf-8"
    checks_groups = True

    def header(self) -> str:
        return ",".join(FIELDS) + "\n"

    def row(self, p: FeedProduct) -> str:
        pid = check_id(p.product_id, 100)
        title = require(trim_at_word(p.title, 200), "title")
        description = require(trim_at_word(p.description or "", 9999), "description")
        if not is_positive_amount(p.price):
            raise RejectedRecord("price is zero", field="price", excerpt=p.price)
        sale_price = ""
        if p.sale_price and is_positive_amount(p.sale_price) and less_than(p.sale_price, p.price):
            sale_price = f"{p.sale_price} {p.currency}"
        link = check_url(p.link, "link")
        image = check_url(self.image(p), "image_link")
        extra = self.additional_images(p, 10)
        if extra:
            extra = [u for u in (check_url(u, "additional_image_link", required=False)
                                 for u in extra) if u]
        brand = trim_at_word(p.brand, 100) if p.brand else ""
        gtin = clean_gtin(p.gtin)
        mpn = p.mpn or ""
        if len(mpn) > 100:
            mpn = ""
        if not (brand or gtin or mpn):
            raise RejectedRecord("none of brand, gtin, mpn is given", field="brand")
        group = p.item_group_id or ""
        if group and (group == pid or p.group_is_id == "t"):
            # Decided per group value (the database sees every id), so all variants move together.
            group = GROUP_PREFIX + group
        values = (
            pid, title, description, AVAILABILITY[p.availability], p.condition,
            f"{p.price} {p.currency}", sale_price, link, image, ",".join(extra), brand, gtin, mpn,
            group, trim_at_word(p.product_type, 750) if p.product_type else "",
            p.google_product_category or "",
        )
        return csv_row(values)

    def line_sql(self) -> LineSQL:
        brand = lines.optional_within("c.brand_c", 100)
        gtin = "c.gtin_v"
        mpn = ("CASE WHEN char_length(coalesce(c.mpn_c, '')) > 100 THEN ''"
               " ELSE coalesce(c.mpn_c, '') END")
        group = (
            "CASE WHEN coalesce(c.item_group_id_c, '') = '' THEN ''"
            " WHEN c.item_group_id_c = c.product_id OR c.group_is_id = 't'"
            f" THEN {lines.lit(GROUP_PREFIX)} || c.item_group_id_c ELSE c.item_group_id_c END"
        )
        availability = "CASE c.availability " + " ".join(
            f"WHEN {lines.lit(k)} THEN {lines.lit(v)}" for k, v in AVAILABILITY.items()
        ) + " END"
        values = [
            lines.product_id(100), lines.within("c.title_c", 200),
            lines.within("c.description_c", 9999), availability, "c.condition",
            f"({lines.positive_price()}) || ' ' || c.currency", lines.sale_price(),
            "c.link_u", lines.image_link(self.name),
            f"replace({lines.extra_images(self.name)}, chr(31), ',')",
            # Meta rejects a row without any of brand, gtin, mpn: Python's then.
            f"CASE WHEN ({brand}) = '' AND ({gtin}) = '' AND ({mpn}) = '' THEN NULL"
            f" ELSE ({brand}) END",
            gtin, mpn, group, lines.optional_within("c.product_type_c", 750),
            "coalesce(c.google_product_category_c, '')",
        ]
        columns, v = lines.as_values(dict(zip(FIELDS, values, strict=True)), f"{self.name}_")
        line = lines.joined(list(v.values()), "\x1f")
        # csv_row: every field quoted, '"' doubled.
        quoted = f"'\"' || replace(replace({line}, '\"', '\"\"'), chr(31), '\",\"') || '\"'"
        return LineSQL(quoted, values=columns)


CHANNEL = MetaChannel
