"""Google Merchant Center: RSS 2.0 with the ``g:`` namespace, one ``<item>`` per line.

Rules (support.google.com/merchants): format and namespace answer/160567; id 1–50 answer/6324405;
title ≤ 150 answer/6324415; description ≤ 5000, longer is truncated answer/6324468; price
``15.00 USD`` with the currency's decimals answer/6324371; availability and availability_date
answer/6324448, answer/6324470; identifier_exists answer/6324478; image_link http(s) ≤ 2000 with
commas as %2C answer/6324350; additional_image_link ≤ 10 answer/6324370. brand/mpn ≤ 70 is
*unconfirmed* (CHANNELS.md). The file's 4 GB limit (answer/14991445) is far above what a shop sends.

``google_fields`` is the mapping shared with the tab-separated variant (``google_tsv``).
"""

from __future__ import annotations

from typing import NamedTuple

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
    xml_escape,
)
from worker.feed.lines import LineSQL

NAMESPACE = "http://base.google.com/ns/1.0"
AVAILABILITY = {
    "in_stock": "in_stock",
    "out_of_stock": "out_of_stock",
    "preorder": "preorder",
    "backorder": "backorder",
    # Google has no "discontinued": a product that is gone for good is out of stock until removed.
    "discontinued": "out_of_stock",
}
# The attributes in file order; the TSV header is this tuple.
GTIN_LENGTHS = (8, 12, 13, 14)
# What GoogleChannel.row writes whatever the value, and the values it XML-escapes.
ALWAYS = ("id", "title", "description", "link", "image_link", "availability", "price", "condition")
ESCAPED = ("id", "title", "description", "link", "mobile_link", "image_link",
           "additional_image_link", "brand", "mpn", "item_group_id", "product_type",
           "google_product_category")


def clean_gtin(value: str | None) -> str:
    """A GTIN of 8, 12, 13 or 14 digits (spaces and hyphens removed), else empty."""
    if not value:
        return ""
    digits = value.replace(" ", "").replace("-", "")
    return digits if digits.isdigit() and len(digits) in GTIN_LENGTHS else ""


class GoogleValues(NamedTuple):
    """A product's Google attributes, in ``FIELDS`` order; empty strings are left out."""

    id: str
    title: str
    description: str
    link: str
    mobile_link: str
    image_link: str
    additional_image_link: list[str]
    availability: str
    availability_date: str
    price: str
    sale_price: str
    condition: str
    brand: str
    gtin: str
    mpn: str
    identifier_exists: str
    item_group_id: str
    product_type: str
    google_product_category: str


FIELDS = GoogleValues._fields


def google_fields(ch: Channel, p: FeedProduct) -> GoogleValues:
    """The product's Google values, plain text, or ``RejectedRecord``."""
    pid = check_id(p.product_id, 50)
    title = require(trim_at_word(p.title, 150), "title")
    description = require(trim_at_word(p.description or "", 5000), "description")
    link = check_url(p.link, "link")
    mobile_link = check_url(p.mobile_link, "mobile_link", required=False) if p.mobile_link else ""
    image = check_url(ch.image(p), "image_link")
    extra = ch.additional_images(p, 10)
    if extra:
        extra = [u for u in (check_url(u, "additional_image_link", required=False)
                             for u in extra) if u]
    availability = AVAILABILITY[p.availability]
    availability_date = ""
    if availability in ("preorder", "backorder"):
        availability_date = require(
            p.availability_date or "", "availability_date",
            f"availability_date is missing for availability {availability}",
        )
    if not is_positive_amount(p.price):
        raise RejectedRecord("price is zero", field="price", excerpt=p.price)
    price = f"{p.price} {p.currency}"
    sale_price = ""
    if p.sale_price and is_positive_amount(p.sale_price) and less_than(p.sale_price, p.price):
        sale_price = f"{p.sale_price} {p.currency}"
    brand = trim_at_word(p.brand, 70) if p.brand else ""
    gtin = clean_gtin(p.gtin)
    mpn = p.mpn or ""
    if len(mpn) > 70:
        mpn = ""  # a cut part number is a wrong one
    identifier_exists = "" if gtin or (brand and mpn) else "no"
    group = p.item_group_id or ""
    if len(group) > 50:
        raise RejectedRecord(
            "item_group_id longer than 50 characters", field="item_group_id", excerpt=group[:120]
        )
    return GoogleValues(
        pid, title, description, link, mobile_link, image, extra, availability, availability_date,
        price, sale_price, p.condition, brand, gtin, mpn, identifier_exists, group,
        trim_at_word(p.product_type, 750) if p.product_type else "",
        p.google_product_category or "",
    )


def google_sql_values(channel: str) -> dict[str, str]:
    """google.google_fields in SQL: each attribute's plain text, '' when absent, NULL when Python's."""
    availability = ("CASE WHEN c.availability = 'discontinued' THEN 'out_of_stock'"
                    " ELSE c.availability END")
    brand = lines.optional_within("c.brand_c", 70)
    mpn = "CASE WHEN char_length(coalesce(c.mpn_c, '')) > 70 THEN '' ELSE coalesce(c.mpn_c, '') END"
    return {
        "id": lines.product_id(50),
        "title": lines.within("c.title_c", 150),
        "description": lines.within("c.description_c", 5000),
        "link": "c.link_u",
        "mobile_link": "c.mobile_link_u",
        "image_link": lines.image_link(channel),
        "additional_image_link": f"({lines.extra_images(channel)})",
        "availability": availability,
        "availability_date": (
            "CASE WHEN c.availability NOT IN ('preorder', 'backorder') THEN ''"
            " WHEN c.availability_date <> '' THEN c.availability_date END"
        ),
        "price": f"({lines.positive_price()}) || ' ' || c.currency",
        "sale_price": lines.sale_price(),
        "condition": "c.condition",
        "brand": brand,
        "gtin": "c.gtin_v",
        "mpn": mpn,
        "identifier_exists": (
            f"CASE WHEN c.gtin_v <> '' OR (({brand}) <> '' AND ({mpn}) <> '')"
            " THEN '' ELSE 'no' END"
        ),
        "item_group_id": (
            "CASE WHEN char_length(coalesce(c.item_group_id_c, '')) <= 50"
            " THEN coalesce(c.item_group_id_c, '') END"
        ),
        "product_type": lines.optional_within("c.product_type_c", 750),
        "google_product_category": "coalesce(c.google_product_category_c, '')",
    }


class GoogleChannel(Channel):
    name = "google"
    extension = "xml"
    content_type = "application/xml; charset=utf-8"

    def header(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<rss version="2.0" xmlns:g="{NAMESPACE}">\n<channel>\n'
            "<title>product feed</title>\n<link>https://merchants.google.com/</link>\n"
            "<description>catalog-batch</description>\n"
        )

    def row(self, p: FeedProduct) -> str:
        (pid, title, description, link, mobile_link, image, extra, availability,
         availability_date, price, sale_price, condition, brand, gtin, mpn, identifier_exists,
         group, product_type, category) = google_fields(self, p)
        esc = xml_escape
        # Spelled out rather than looped over FIELDS: this is the hot path of the biggest feed.
        parts = [
            "<item><g:id>", esc(pid), "</g:id><title>", esc(title), "</title><description>",
            esc(description), "</description><link>", esc(link), "</link>",
        ]
        if mobile_link:
            parts += ("<g:mobile_link>", esc(mobile_link), "</g:mobile_link>")
        parts += ("<g:image_link>", esc(image), "</g:image_link>")
        for url in extra:
            parts += ("<g:additional_image_link>", esc(url), "</g:additional_image_link>")
        parts += ("<g:availability>", availability, "</g:availability>")
        if availability_date:
            parts += ("<g:availability_date>", availability_date, "</g:availability_date>")
        parts += ("<g:price>", price, "</g:price>")
        if sale_price:
            parts += ("<g:sale_price>", sale_price, "</g:sale_price>")
        parts += ("<g:condition>", condition, "</g:condition>")
        if brand:
            parts += ("<g:brand>", esc(brand), "</g:brand>")
        if gtin:
            parts += ("<g:gtin>", gtin, "</g:gtin>")
        if mpn:
            parts += ("<g:mpn>", esc(mpn), "</g:mpn>")
        if identifier_exists:
            parts += ("<g:identifier_exists>", identifier_exists, "</g:identifier_exists>")
        if group:
            parts += ("<g:item_group_id>", esc(group), "</g:item_group_id>")
        if product_type:
            parts += ("<g:product_type>", esc(product_type), "</g:product_type>")
        if category:
            parts += ("<g:google_product_category>", esc(category), "</g:google_product_category>")
        parts.append("</item>\n")
        return "".join(parts)

    def footer(self) -> str:
        return "</channel>\n</rss>\n"

    def line_sql(self) -> LineSQL:
        values, v = lines.as_values(google_sql_values(self.name), f"{self.name}_")
        # row()'s markup, escaping what row() escapes, in one concat() (NULL-safe: checked first).
        parts: list[str] = [lines.Text("<item>")]
        for name in FIELDS:
            value = v[name]
            if name in ESCAPED:
                value = lines.xml(value)
            element = name if name in ("title", "description", "link") else f"g:{name}"
            if name == "additional_image_link":
                between = f"</{element}><{element}>"
                parts.append(
                    f"CASE WHEN {v[name]} <> '' THEN concat({lines.lit(f'<{element}>')},"
                    f" replace({value}, chr(31), {lines.lit(between)}),"
                    f" {lines.lit(f'</{element}>')}) END"
                )
            elif name in ALWAYS:
                parts += (lines.Text(f"<{element}>"), value, lines.Text(f"</{element}>"))
            else:
                parts.append(
                    f"CASE WHEN {v[name]} <> '' THEN concat({lines.lit(f'<{element}>')}, {value},"
                    f" {lines.lit(f'</{element}>')}) END"
                )
        parts.append(lines.Text("</item>"))
        return LineSQL(lines.concat_line(list(v.values()), parts), values=values)


CHANNEL = GoogleChannel
