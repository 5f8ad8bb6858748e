"""Meta (Facebook/Instagram) catalog: CSV, RFC 4180 quoting, UTF-8, one product per line.

Meta's pages, the rule each one gives:
- the fields, their limits and values (id ≤ 100, title ≤ 200, description ≤ 9999 plain text,
  availability ``in stock`` / ``out of stock`` / ``preorder`` / ``available for order`` /
  ``discontinued``, condition, price ``9.99 USD``, sale_price and sale_price_effective_date as an
  ISO 8601 interval, link, image_link, brand / gtin / mpn (at least one), item_group_id, color and
  size ≤ 200, gender ``female`` / ``male`` / ``unisex``, age_group ``adult`` / ``all ages`` /
  ``teen`` / ``kids`` / ``toddler`` / ``infant`` / ``newborn``, material ≤ 200, pattern ≤ 100,
  shipping ``COUNTRY:REGION:SERVICE:PRICE``, additional_image_link a list of at most 2000
  characters in all):
  https://developers.facebook.com/docs/commerce-platform/catalog/fields
- variants: the items of one item_group_id differ by size, color, gender, age_group, material or
  pattern and each item carries the attribute that differs; item_group_id never equals an id:
  https://developers.facebook.com/docs/marketing-api/catalog/guides/product-variants
- the CSV format (quote fields holding whitespace or commas, ``"`` doubled; a line ≤ 5,242,880
  bytes): https://developers.facebook.com/docs/marketing-api/catalog/reference
- images ≥ 500 × 500: https://www.facebook.com/business/help/686259348512056
URLs follow the shared rules (worker/feed/rules.py: RFC 3987 → RFC 3986, public hosts only).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.common.errors import RejectedRecord
from worker.feed.channels.base import Channel
from worker.feed.product import FeedProduct
from worker.feed.rules import (
    AGE_GROUPS,
    GENDERS,
    check_id,
    is_positive_amount,
    require,
    trim_at_word,
)

AVAILABILITY = {
    "in_stock": "in stock",
    "out_of_stock": "out of stock",
    "preorder": "preorder",
    "backorder": "available for order",
    "discontinued": "discontinued",
}
GENDER = {g: g for g in ("female", "male", "unisex")}
AGE_GROUP = {a: a for a in ("adult", "all ages", "teen", "kids", "toddler", "infant", "newborn")}
FIELDS = (
    "id", "title", "description", "availability", "condition", "price", "sale_price",
    "sale_price_effective_date", "link", "image_link", "additional_image_link", "brand", "gtin",
    "mpn", "item_group_id", "color", "size", "gender", "age_group", "material", "pattern",
    "shipping", "product_type", "google_product_category",
)
ID_LIMIT = 100
TITLE_LIMIT = 200
DESCRIPTION_LIMIT = 9999
URL_LIMIT = 2000
LIST_LIMIT = 2000  # additional_image_link: the whole comma-joined list
BRAND_LIMIT = 100
MPN_LIMIT = 100
COLOR_LIMIT = 200
SIZE_LIMIT = 200
MATERIAL_LIMIT = 200
PATTERN_LIMIT = 100
PRODUCT_TYPE_LIMIT = 750
# Prefix of a group id that collides with a product id (Meta refuses such groups).
GROUP_PREFIX = "group-"
# The service named in the shipping value (country:region:service:price).
SHIPPING_SERVICE = "Standard"


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
    min_image_size = 500

    def header(self) -> str:
        return ",".join(FIELDS) + "\n"

    def fit_list(self, urls: list[str]) -> list[str]:
        """The extra images whose comma-joined list stays within Meta's 2000 characters."""
        kept: list[str] = []
        size = -1
        for url in urls:
            if size + 1 + len(url) > LIST_LIMIT:
                self.drop("additional_image_link",
                          f"additional_image_link list longer than {LIST_LIMIT} characters", url)
                continue
            kept.append(url)
            size += 1 + len(url)
        return kept

    def row(self, p: FeedProduct) -> str:
        pid = check_id(p.product_id, ID_LIMIT)
        title = require(trim_at_word(p.title, TITLE_LIMIT), "title")
        description = require(trim_at_word(self.description(p), DESCRIPTION_LIMIT), "description")
        if not is_positive_amount(p.price):
            raise RejectedRecord("price is zero", field="price", excerpt=p.price)
        values = {
            "color": (self.limited(p.color, "color", COLOR_LIMIT) if p.color else ""),
            "size": (self.limited(p.size, "size", SIZE_LIMIT) if p.size else ""),
            "gender": (self.spelled(p.gender, "gender", GENDERS, GENDER) if p.gender else ""),
            "age_group": (self.spelled(p.age_group, "age_group", AGE_GROUPS, AGE_GROUP)
                          if p.age_group else ""),
            "material": (self.limited(p.material, "material", MATERIAL_LIMIT) if p.material else ""),
            "pattern": (self.limited(p.pattern, "pattern", PATTERN_LIMIT) if p.pattern else ""),
        }
        group = p.item_group_id or ""
        if group and p.group_varies is not None:
            full, _, partial = p.group_varies.partition("|")
            if full:
                pass  # every item carries an attribute that tells it from its siblings
            elif partial:
                # Only some items carry the differing attributes: one without any of them cannot
                # be told from its siblings.
                present = [a for a in partial.split(",") if values[a]]
                if not present:
                    raise RejectedRecord(
                        f"item lacks {partial.replace(',', ', ')}, which differs within its "
                        "item_group_id", field=partial.split(",")[0], excerpt=group[:120],
                    )
            else:
                self.drop("item_group_id", "no variant attribute (size, color, gender, age_group, "
                          "material, pattern) differs within the group", group)
                group = ""
        if group and (group == pid or p.group_is_id == "t"):
            # Decided per group value (the database sees every id), so all variants move together.
            group = GROUP_PREFIX + group
        link = self.url(p.link, "link", limit=URL_LIMIT, required=True)
        image = self.url(self.image(p), "image_link", limit=URL_LIMIT, required=True,
                         encode_comma=True)
        extra = self.fit_list(
            self.additional_urls(p, "additional_image_link", limit=URL_LIMIT, encode_comma=True)
        )
        sale_price, effective = self.sale(p) if p.sale_price else ("", "")
        brand = trim_at_word(p.brand, BRAND_LIMIT) if p.brand else ""
        gtin = self.gtin(p, drop_restricted=False) if p.gtin else ""
        mpn = (self.limited(p.mpn, "mpn", MPN_LIMIT) if p.mpn else "")
        if not (brand or gtin or mpn):
            raise RejectedRecord("none of brand, gtin, mpn is given", field="brand")
        shipping = self.shipping_price(p)
        if shipping:
            shipping = f"{self.options.country}::{SHIPPING_SERVICE}:{shipping}"
        return csv_row((
            pid, title, description, AVAILABILITY[p.availability], p.condition,
            f"{p.price} {p.currency}", sale_price, effective, link, image, ",".join(extra), brand,
            gtin, mpn, group, values["color"], values["size"], values["gender"],
            values["age_group"], values["material"], values["pattern"], shipping,
            trim_at_word(p.product_type, PRODUCT_TYPE_LIMIT) if p.product_type else "",
            p.google_product_category or "",
        ))


CHANNEL = MetaChannel
