"""The feed's row: one product as the stream yields it, cleaned once for every channel.

``stream.py`` produces it (the database formats prices, dates and lists; ``feed_query``'s columns
are in this order); ``normalise`` cleans its shop text with the shared rules; channels read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import NamedTuple

from worker.feed.rules import clean_text, is_clean

# Separator of the image lists in FeedProduct: a control character, so never part of a valid URL.
LIST_SEP = "\x1f"


class FeedProduct(NamedTuple):
    """One product as the stream yields it: formatted by the database, normalised by ``normalise``.

    Its text fields are single-line, without the characters XML forbids, and the description holds
    no HTML: channels apply only their own limits and mappings. Dates are ``iso_utc`` strings.
    """

    product_id: str
    title: str
    description: str | None
    link: str
    mobile_link: str | None
    image_url: str | None  # the processed image (images task), when there is one
    image_link: str | None  # the shop's own image
    unfit: str | None  # comma list of the image_fitness keys that are false
    additional_image_urls: str | None  # LIST_SEP-joined processed extra images
    additional_image_links: str | None  # LIST_SEP-joined shop's extra images
    price: str  # already rounded to the currency's decimals, e.g. "15.00", "12900"
    sale_price: str | None
    sale_price_start: str | None  # ISO 8601, UTC
    sale_price_end: str | None
    currency: str
    availability: str
    availability_date: str | None  # ISO 8601, UTC
    condition: str
    brand: str | None
    gtin: str | None
    mpn: str | None
    item_group_id: str | None
    group_is_id: str | None  # "t" when item_group_id equals a live product id of the shop
    # For a channel that checks groups, in a group of two or more (else None): the variant
    # attributes every item of the group has and that differ, "|", those only some items have
    # (comma lists), e.g. "color|material".
    group_varies: str | None
    color: str | None
    size: str | None
    gender: str | None
    age_group: str | None
    material: str | None
    pattern: str | None
    size_system: str | None
    size_type: str | None
    product_type: str | None
    google_product_category: str | None
    naver_category: str | None
    shipping_cost: str | None  # rounded to the currency's decimals
    change: str | None  # summary EP class: I, U or D (None when the shop has no summary channel)
    update_time: str | None  # "YYYY-MM-DD HH:MM:SS", Asia/Seoul


# FeedProduct fields that are shop text (not database-formatted numbers, dates or URL lists).
_TEXT_FIELDS = tuple(
    FeedProduct._fields.index(name)
    for name in ("title", "brand", "gtin", "mpn", "item_group_id", "color", "size", "gender",
                 "age_group", "material", "pattern", "size_system", "size_type", "product_type",
                 "google_product_category", "naver_category")
)
_DESCRIPTION = FeedProduct._fields.index("description")


_text_of = itemgetter(*_TEXT_FIELDS)


def normalise(row: Sequence[str | None]) -> FeedProduct:
    """The stream's row as a FeedProduct with its text cleaned once, for every channel."""
    values = list(row)
    # One scan over all of the row's text fields joined (a "|" between them, which is clean):
    # when it finds nothing, no field would change. A hit — or a field whose edge or a "|" beside
    # it makes "  " or " |" ambiguous — falls back to checking each field on its own.
    texts = [v for v in _text_of(values) if v]
    joined = "|".join(texts)
    if not is_clean(joined) or " |" in joined or "| " in joined:
        for i in _TEXT_FIELDS:
            value = values[i]
            if value and not is_clean(value):
                values[i] = clean_text(value)
    description = values[_DESCRIPTION]
    if description:
        values[_DESCRIPTION] = clean_text(description, html=True)
    return FeedProduct._make(values)
