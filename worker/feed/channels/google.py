"""Google Merchant Center: RSS 2.0 with the ``g:`` namespace, one ``<item>`` per line.

Google's own pages (support.google.com/merchants/answer/…), the rule each one gives:
- format and namespace: 160567 (https://support.google.com/merchants/answer/160567)
- id 1–50 characters, never rewritten: 6324405; title ≤ 150: 6324415; description ≤ 5000, longer
  truncated: 6324468; link http(s), RFC 3986, ≤ 2000: 6324416; mobile_link: 6324459
- image_link http(s), RFC 3986, ≤ 2000, ``,`` as ``%2C``: 6324350; additional_image_link ≤ 10:
  6324370; image sizes ≥ 100 × 100 (apparel ≥ 250 × 250), every image ≥ 500 × 500 from
  2027-01-31: 6324350
- price ``15.00 USD`` with the currency's decimals: 6324371; sale_price lower than price: 6324471;
  sale_price_effective_date an ISO 8601 interval ``start/end``: 6324460
- availability in_stock / out_of_stock / preorder / backorder: 6324448; availability_date ISO
  8601, required for preorder and backorder, at most one year ahead: 6324470
- gtin 8/12/13/14 digits with a valid check digit: 6324461; restricted-circulation prefixes
  (02, 04, 2; a GTIN-14's first digit is no part of the prefix) refused: 6286293 and 7000684;
  coupon prefixes (05, 981–984, 99) refused: 6286302; identifier_exists: 6324478; brand ≤ 70:
  6324351; mpn ≤ 70: 6324482
- item_group_id ≤ 50: 6324507; color ≤ 100: 6324487; size ≤ 100: 6324492; gender male / female /
  unisex: 6324479; age_group newborn / infant / toddler / kids / adult: 6324463; material ≤ 200:
  6324410; pattern ≤ 100: 6324483; size_system: 6324502; size_type: 6324497; apparel needs
  color, size, gender and age_group: 6324507 and those pages
- shipping (country, price in the feed's currency; in the text format
  ``country:region:service:price``, every colon kept): 6324484; product_type ≤ 750: 6324406
- the text (tab-separated) format: 160567, values quoted as in ``google_tsv``
The file's 4 GB limit (answer/14991445) is far above what a shop sends.

``google_fields`` is the mapping shared with the tab-separated variant (``google_tsv``).
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from worker.common.errors import RejectedRecord
from worker.feed.channels.base import Channel, ImageSize
from worker.feed.product import FeedProduct
from worker.feed.rules import (
    AGE_GROUPS,
    GENDERS,
    check_id,
    is_positive_amount,
    require,
    trim_at_word,
    xml_escape,
)

NAMESPACE = "http://base.google.com/ns/1.0"
AVAILABILITY = {
    "in_stock": "in_stock",
    "out_of_stock": "out_of_stock",
    "preorder": "preorder",
    "backorder": "backorder",
    # Google has no "discontinued": a product that is gone for good is out of stock until removed.
    "discontinued": "out_of_stock",
}
AGE_GROUP = {"newborn": "newborn", "infant": "infant", "toddler": "toddler", "kids": "kids",
             # "adult: typically teens or older" (answer/6324463)
             "teen": "adult", "adult": "adult"}
GENDER = {g: g for g in ("male", "female", "unisex")}
SIZE_SYSTEMS = ("AU", "BR", "CN", "DE", "EU", "FR", "IT", "JP", "MEX", "UK", "US")
SIZE_TYPES = ("regular", "petite", "maternity", "big", "tall", "plus")
APPAREL_REQUIRED = ("color", "size", "gender", "age_group")
ID_LIMIT = 50
TITLE_LIMIT = 150
DESCRIPTION_LIMIT = 5000
URL_LIMIT = 2000
BRAND_LIMIT = 70
MPN_LIMIT = 70
GROUP_LIMIT = 50
COLOR_LIMIT = 100
SIZE_LIMIT = 100
MATERIAL_LIMIT = 200
PATTERN_LIMIT = 100
PRODUCT_TYPE_LIMIT = 750
IMAGE_500_FROM = date(2027, 1, 31)


class GoogleValues(NamedTuple):
    """A product's Google attributes, in file order; empty strings are left out."""

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
    sale_price_effective_date: str
    condition: str
    brand: str
    gtin: str
    mpn: str
    identifier_exists: str
    item_group_id: str
    color: str
    size: str
    gender: str
    age_group: str
    material: str
    pattern: str
    size_system: str
    size_type: str
    shipping: str  # the price; the country is the shop's
    product_type: str
    google_product_category: str


FIELDS = GoogleValues._fields


# The last product's Google values, for the other of google / google_tsv in the same pass:
# (product, options, values). Kept only when they cannot differ between the two channels (see
# google_fields), so that a shop publishing both pays for the rules once per product.
_last: tuple[FeedProduct | None, object, GoogleValues | None] = (None, None, None)


def google_fields(ch: Channel, p: FeedProduct, *, text: bool = False) -> GoogleValues:
    """The product's Google values, plain text, or ``RejectedRecord``.

    ``text``: for the tab-separated file, where every URL has ``,`` encoded (answer/6324350).
    """
    global _last
    last_p, last_options, values = _last
    if last_p is p and last_options is ch.options and values is not None:
        return values
    dropped = len(ch.dropped)
    values = _google_fields(ch, p, text=text)
    # The same for both channels when no URL holds a comma (the only difference ``text`` makes),
    # the image is not judged per channel (unfit) and nothing was dropped (a reason may name the
    # channel); else the other channel computes its own.
    shared = (len(ch.dropped) == dropped and not p.unfit
              and "," not in p.link and "," not in (p.mobile_link or ""))
    _last = (p, ch.options, values) if shared else (None, None, None)
    return values


def _google_fields(ch: Channel, p: FeedProduct, *, text: bool) -> GoogleValues:
    pid = check_id(p.product_id, ID_LIMIT)
    title = require(trim_at_word(p.title, TITLE_LIMIT), "title")
    description = require(trim_at_word(ch.description(p), DESCRIPTION_LIMIT), "description")
    if not is_positive_amount(p.price):
        raise RejectedRecord("price is zero", field="price", excerpt=p.price)
    availability = AVAILABILITY[p.availability]
    availability_date = ""
    if availability in ("preorder", "backorder"):
        availability_date = require(
            p.availability_date or "", "availability_date",
            f"availability_date is missing for availability {availability}",
        )
        if availability_date > ch.options.year_ahead_iso:
            raise RejectedRecord(
                "availability_date is more than one year ahead", field="availability_date",
                excerpt=availability_date,
            )
    group = p.item_group_id or ""
    if len(group) > GROUP_LIMIT:
        raise RejectedRecord(
            f"item_group_id longer than {GROUP_LIMIT} characters", field="item_group_id",
            excerpt=group[:120],
        )
    color = (ch.limited(p.color, "color", COLOR_LIMIT) if p.color else "")
    size = (ch.limited(p.size, "size", SIZE_LIMIT) if p.size else "")
    gender = (ch.spelled(p.gender, "gender", GENDERS, GENDER) if p.gender else "")
    age_group = (ch.spelled(p.age_group, "age_group", AGE_GROUPS, AGE_GROUP) if p.age_group else "")
    if ch.options.apparel:
        present = {"color": color, "size": size, "gender": gender, "age_group": age_group}
        missing = [f for f in APPAREL_REQUIRED if not present[f]]
        if missing:
            raise RejectedRecord(
                f"apparel item without {', '.join(missing)} (Google requires color, size, "
                "gender and age_group for apparel)", field=missing[0],
            )
    link = ch.url(p.link, "link", limit=URL_LIMIT, required=True, encode_comma=text)
    mobile_link = ch.url(p.mobile_link, "mobile_link", limit=URL_LIMIT, required=False,
                         encode_comma=text)
    image = ch.url(ch.image(p), "image_link", limit=URL_LIMIT, required=True, encode_comma=True)
    extra = ch.additional_urls(p, "additional_image_link", limit=URL_LIMIT, encode_comma=True)
    sale_price, effective = ch.sale(p) if p.sale_price else ("", "")
    brand = trim_at_word(p.brand, BRAND_LIMIT) if p.brand else ""
    gtin = ch.gtin(p, drop_restricted=True) if p.gtin else ""
    mpn = (ch.limited(p.mpn, "mpn", MPN_LIMIT) if p.mpn else "")
    identifier_exists = "" if gtin or (brand and mpn) else "no"
    size_system = ""
    if p.size_system:
        size_system = p.size_system.upper()
        if size_system not in SIZE_SYSTEMS:
            ch.drop("size_system", "size_system is not one of Google's size systems",
                    p.size_system)
            size_system = ""
    size_type = ""
    if p.size_type:
        types = [t.strip().lower() for t in p.size_type.split(",")]
        if len(types) <= 2 and all(t in SIZE_TYPES for t in types):
            size_type = ",".join(types)
        else:
            ch.drop("size_type", "size_type is not one or two of Google's size types",
                    p.size_type)
    return GoogleValues(
        pid, title, description, link, mobile_link, image, extra, availability, availability_date,
        f"{p.price} {p.currency}", sale_price, effective, p.condition, brand, gtin, mpn,
        identifier_exists, group, color, size, gender, age_group,
        (ch.limited(p.material, "material", MATERIAL_LIMIT) if p.material else ""),
        (ch.limited(p.pattern, "pattern", PATTERN_LIMIT) if p.pattern else ""), size_system, size_type,
        ch.shipping_price(p),
        trim_at_word(p.product_type, PRODUCT_TYPE_LIMIT) if p.product_type else "",
        p.google_product_category or "",
    )


# The g: elements written, when present, between condition and shipping (in this order).
_TAIL = ("brand", "gtin", "mpn", "identifier_exists", "item_group_id", "color", "size", "gender",
         "age_group", "material", "pattern", "size_system", "size_type")
_TAIL_TAGS = tuple((FIELDS.index(name), f"<g:{name}>", f"</g:{name}>") for name in _TAIL)


class GoogleChannel(Channel):
    name = "google"
    extension = "xml"
    content_type = "application/xml; charset=utf-8"
    min_image_size = 100
    min_image_size_apparel = 250

    @classmethod
    def image_size(cls, *, apparel: bool, on: date) -> ImageSize:
        if on >= IMAGE_500_FROM:
            return ImageSize(500, 500)
        return super().image_size(apparel=apparel, on=on)

    def header(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<rss version="2.0" xmlns:g="{NAMESPACE}">\n<channel>\n'
            "<title>product feed</title>\n<link>https://merchants.google.com/</link>\n"
            "<description>catalog-batch</description>\n"
        )

    def row(self, p: FeedProduct) -> str:
        v = google_fields(self, p)
        esc = xml_escape
        # Element names are constants and most values need no escaping (xml_escape returns them
        # as they are): one f-string for what every item has, appends for the optional rest.
        parts = [
            f"<item><g:id>{esc(v.id)}</g:id><title>{esc(v.title)}</title><description>"
            f"{esc(v.description)}</description><link>{esc(v.link)}</link>"
        ]
        append = parts.append
        if v.mobile_link:
            append(f"<g:mobile_link>{esc(v.mobile_link)}</g:mobile_link>")
        append(f"<g:image_link>{esc(v.image_link)}</g:image_link>")
        for url in v.additional_image_link:
            append(f"<g:additional_image_link>{esc(url)}</g:additional_image_link>")
        append(f"<g:availability>{v.availability}</g:availability>")
        if v.availability_date:
            append(f"<g:availability_date>{v.availability_date}</g:availability_date>")
        append(f"<g:price>{v.price}</g:price>")
        if v.sale_price:
            append(f"<g:sale_price>{v.sale_price}</g:sale_price>")
        if v.sale_price_effective_date:
            append(f"<g:sale_price_effective_date>{v.sale_price_effective_date}"
                   "</g:sale_price_effective_date>")
        append(f"<g:condition>{v.condition}</g:condition>")
        for i, start, end in _TAIL_TAGS:
            value = v[i]
            if value:
                append(f"{start}{esc(value)}{end}")  # type: ignore[arg-type]  # the str fields
        if v.shipping:
            append(f"<g:shipping><g:country>{self.options.country or ''}</g:country><g:price>"
                   f"{v.shipping}</g:price></g:shipping>")
        if v.product_type:
            append(f"<g:product_type>{esc(v.product_type)}</g:product_type>")
        if v.google_product_category:
            append(f"<g:google_product_category>{esc(v.google_product_category)}"
                   "</g:google_product_category>")
        append("</item>\n")
        return "".join(parts)

    def footer(self) -> str:
        return "</channel>\n</rss>\n"


CHANNEL = GoogleChannel
