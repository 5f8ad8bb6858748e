"""Naver Shopping EP 3.0 (full EP): a TSV with Naver's field names, in Naver's order, as a header.

The rules come from Naver's EP 3.0 guide (쇼핑파트너센터, "EP 가이드",
https://join.shopping.naver.com/misc/download/ep_guide.nhn; the help centre's EP pages,
https://adcenter.shopping.naver.com/), as quoted by open-source EP libraries and gathered in
CHANNELS.md, because the guide itself could not be read here:
- required id, title, price_pc, link, image_link, category_name1, shipping; UTF-8; a header row;
  no tab or line break in a value; sold-out items are not listed in the full EP.
- ``id`` ≤ 50 ASCII letters, digits, ``-``, ``_`` (never rewritten: excluded otherwise);
  ``title`` ≤ 100 (trimmed at a word); ``price_pc`` a whole number of KRW ≥ 1; ``normal_price``
  only above ``price_pc``; ``link``, ``mobile_link``, ``image_link`` ≤ 255 characters with
  non-ASCII percent-encoded; ``add_image_link`` up to 10, joined by ``|``;
  ``category_name1``–``4`` ≤ 50 each; ``naver_category`` an 8-digit Naver category id;
  ``condition`` 신상품 / 중고 / 리퍼; ``barcode`` GTIN-13 or GTIN-8 (UPC-A takes a leading 0);
  ``brand``, ``model_number`` ≤ 60; ``group_id`` groups the variants of one product;
  ``gender`` 남성 / 여성 / 남녀공용, ``age_group`` 성인 / 청소년 / 아동 / 유아; ``shipping`` an
  integer -1..1,000,000 (0 free, -1 paid on delivery).
- images ≥ 300 × 300, ≤ 4000 × 4000.
Naver has no sale-window attribute: the sale price is ``price_pc`` only while the window is open
when the feed is built. Naver fetches plain text: no gzip.
"""

from __future__ import annotations

import re

from worker.common.errors import RejectedRecord
from worker.feed.channels.base import Channel
from worker.feed.product import FeedProduct
from worker.feed.rules import (
    AGE_GROUPS,
    GENDERS,
    check_id,
    gtin13_or_8,
    is_positive_amount,
    less_than,
    require,
    trim_at_word,
    whole_number,
    window_open,
)

FIELDS = (
    "id", "title", "price_pc", "price_mobile", "normal_price", "link", "mobile_link",
    "image_link", "add_image_link", "category_name1", "category_name2", "category_name3",
    "category_name4", "naver_category", "naver_product_id", "condition", "import_flag",
    "parallel_import", "order_made", "product_flag", "adult", "goods_type", "barcode",
    "manufacture_define_number", "model_number", "brand", "maker", "origin", "card_event",
    "event_words", "coupon", "partner_coupon_download", "interest_free_event", "point",
    "installation_costs", "search_tag", "group_id", "vendor_id", "coordi_id",
    "minimum_purchase_quantity", "review_count", "shipping", "delivery_grade", "delivery_detail",
    "attribute", "option_detail", "seller_id", "age_group", "gender",
)
CONDITION = {"new": "신상품", "used": "중고", "refurbished": "리퍼"}
GENDER = {"male": "남성", "female": "여성", "unisex": "남녀공용"}
AGE_GROUP = {"newborn": "유아", "infant": "유아", "toddler": "유아", "kids": "아동",
             "teen": "청소년", "adult": "성인"}
SOLD_OUT = ("out_of_stock", "discontinued")
ID_LIMIT = 50
TITLE_LIMIT = 100
URL_LIMIT = 255
CATEGORY_LIMIT = 50
BRAND_LIMIT = 60
MODEL_LIMIT = 60
GROUP_LIMIT = 50
SHIPPING_MIN, SHIPPING_MAX = -1, 1_000_000
_NAVER_CATEGORY = re.compile(r"[0-9]{8}\Z")
_AT = {name: i for i, name in enumerate(FIELDS)}
(ID, TITLE, PRICE_PC, NORMAL_PRICE, LINK, MOBILE_LINK, IMAGE_LINK, ADD_IMAGE_LINK, CATEGORY1,
 NAVER_CATEGORY, CONDITION_AT, BARCODE, MODEL_NUMBER, BRAND, GROUP_ID, SHIPPING, AGE_GROUP_AT,
 GENDER_AT) = (
    _AT[n] for n in ("id", "title", "price_pc", "normal_price", "link", "mobile_link",
                     "image_link", "add_image_link", "category_name1", "naver_category",
                     "condition", "barcode", "model_number", "brand", "group_id", "shipping",
                     "age_group", "gender")
)


def naver_values(ch: Channel, p: FeedProduct) -> list[str]:
    """The product's EP 3.0 values in ``FIELDS`` order (absent fields empty)."""
    values = [""] * len(FIELDS)
    values[ID] = check_id(p.product_id, ID_LIMIT, ascii_only=True)
    values[TITLE] = require(trim_at_word(p.title, TITLE_LIMIT), "title")
    if p.currency != "KRW":
        raise RejectedRecord(
            f"price is in {p.currency}, Naver takes KRW only", field="price", excerpt=p.price
        )
    # KRW has no decimals, so the database formatted a whole number; checked all the same.
    if not is_positive_amount(p.price):
        raise RejectedRecord("price is zero", field="price", excerpt=p.price)
    if whole_number(p.price) is None:
        raise RejectedRecord("price is not a whole number of KRW", field="price", excerpt=p.price)
    values[PRICE_PC] = p.price
    sale = p.sale_price
    if sale:
        if not (is_positive_amount(sale) and less_than(sale, p.price)):
            ch.drop("sale_price", "sale_price is not lower than price", sale)
        elif whole_number(sale) is None:
            ch.drop("sale_price", "sale_price is not a whole number of KRW", sale)
        elif not window_open(p.sale_price_start, p.sale_price_end, ch.options.now_iso):
            ch.drop("sale_price", "sale window not open when the feed was built",
                    f"{p.sale_price_start or ''}/{p.sale_price_end or ''}")
        else:
            values[PRICE_PC], values[NORMAL_PRICE] = sale, p.price
    shipping = p.shipping_cost
    if shipping is None or shipping == "":
        raise RejectedRecord(
            "shipping is missing (map the shop's shipping cost to shipping_cost)",
            field="shipping",
        )
    amount = whole_number(shipping)
    if amount is None or not SHIPPING_MIN <= amount <= SHIPPING_MAX:
        raise RejectedRecord(
            f"shipping is not a whole number in {SHIPPING_MIN}..{SHIPPING_MAX}", field="shipping",
            excerpt=shipping,
        )
    values[SHIPPING] = str(amount)
    product_type = p.product_type or ""
    categories = [c.strip() for c in product_type.split(">")] if ">" in product_type else [
        product_type
    ]
    categories = [trim_at_word(c, CATEGORY_LIMIT) for c in categories if c]
    if not categories:
        raise RejectedRecord(
            "category_name1 is missing (product_type is empty)", field="category_name1"
        )
    values[CATEGORY1:CATEGORY1 + min(4, len(categories))] = categories[:4]
    values[LINK] = ch.url(p.link, "link", limit=URL_LIMIT, required=True)
    values[MOBILE_LINK] = ch.url(p.mobile_link, "mobile_link", limit=URL_LIMIT, required=False)
    values[IMAGE_LINK] = ch.url(ch.image(p), "image_link", limit=URL_LIMIT, required=True)
    # "|" separates the list: normalise_url percent-encodes it inside a URL.
    values[ADD_IMAGE_LINK] = "|".join(ch.additional_urls(p, "add_image_link", limit=URL_LIMIT))
    if p.naver_category:
        if _NAVER_CATEGORY.match(p.naver_category):
            values[NAVER_CATEGORY] = p.naver_category
        else:
            ch.drop("naver_category", "naver_category is not an 8-digit Naver category id",
                    p.naver_category)
    values[CONDITION_AT] = CONDITION[p.condition]
    gtin = ch.gtin(p, drop_restricted=False) if p.gtin else ""
    if gtin:
        barcode, problem = gtin13_or_8(gtin)
        if problem:
            ch.drop("barcode", problem, gtin)
        values[BARCODE] = barcode
    if p.mpn:
        values[MODEL_NUMBER] = trim_at_word(p.mpn, MODEL_LIMIT)
    if p.brand:
        values[BRAND] = trim_at_word(p.brand, BRAND_LIMIT)
    if p.item_group_id:
        values[GROUP_ID] = ch.limited(p.item_group_id, "group_id", GROUP_LIMIT)
    if p.gender:
        values[GENDER_AT] = ch.spelled(p.gender, "gender", GENDERS, GENDER)
    if p.age_group:
        values[AGE_GROUP_AT] = ch.spelled(p.age_group, "age_group", AGE_GROUPS, AGE_GROUP)
    return values


class NaverChannel(Channel):
    name = "naver"
    extension = "tsv"
    content_type = "text/tab-separated-values; charset=utf-8"
    gzip = False
    min_image_size = 300
    max_image_size = 4000

    def header(self) -> str:
        return "\t".join(FIELDS) + "\n"

    def row(self, p: FeedProduct) -> str | None:
        if p.availability in SOLD_OUT:
            return None
        return "\t".join(naver_values(self, p)) + "\n"


CHANNEL = NaverChannel
