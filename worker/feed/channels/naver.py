"""Naver Shopping EP 3.0 (full EP): a TSV with Naver's field names, in Naver's order, as a header.

Rules from the Naver EP 3.0 guide text quoted in an open-source EP library (2017), as gathered in
CHANNELS.md (the official 쇼핑파트너센터 guide could not be read): required id, title, price_pc,
link, image_link, category_name1, shipping; ``price_pc`` a whole number of KRW ≥ 1;
``normal_price`` left out when equal to the price; ``shipping`` an integer -1..1,000,000 (0 free,
-1 paid on delivery); condition 신상품 / 중고 / 리퍼; ``add_image_link`` up to 10 joined by ``|``;
no tab or newline in a value; UTF-8 (*unconfirmed*). id ≤ 50 and title ≤ 100 are *unconfirmed*.
Sold-out products are left out of the full EP (the summary EP reports them as ``D``). Naver
fetches plain text: no gzip.
"""

from __future__ import annotations

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
SOLD_OUT = ("out_of_stock", "discontinued")
_AT = {name: i for i, name in enumerate(FIELDS)}
(ID, TITLE, PRICE_PC, NORMAL_PRICE, LINK, MOBILE_LINK, IMAGE_LINK, ADD_IMAGE_LINK, CATEGORY1,
 NAVER_CATEGORY, CONDITION_AT, BARCODE, MODEL_NUMBER, BRAND, SHIPPING) = (
    _AT[n] for n in ("id", "title", "price_pc", "normal_price", "link", "mobile_link",
                     "image_link", "add_image_link", "category_name1", "naver_category",
                     "condition", "barcode", "model_number", "brand", "shipping")
)


def naver_values(ch: Channel, p: FeedProduct) -> list[str]:
    """The product's EP 3.0 values in ``FIELDS`` order (absent fields empty)."""
    values = [""] * len(FIELDS)
    values[ID] = check_id(p.product_id, 50)
    values[TITLE] = require(trim_at_word(p.title, 100), "title")
    if p.currency != "KRW":
        raise RejectedRecord(
            f"price is in {p.currency}, Naver takes KRW only", field="price", excerpt=p.price
        )
    # KRW has no decimals, so the database formatted a whole number.
    if not is_positive_amount(p.price):
        raise RejectedRecord("price is zero", field="price", excerpt=p.price)
    if p.sale_price and is_positive_amount(p.sale_price) and less_than(p.sale_price, p.price):
        values[PRICE_PC], values[NORMAL_PRICE] = p.sale_price, p.price
    else:
        values[PRICE_PC] = p.price
    shipping = p.shipping_cost
    if not shipping:
        raise RejectedRecord(
            "shipping is missing (map the shop's shipping cost to shipping_cost)",
            field="shipping",
        )
    if not -1 <= int(shipping) <= 1_000_000:
        raise RejectedRecord("shipping outside -1..1000000", field="shipping", excerpt=shipping)
    values[SHIPPING] = shipping
    product_type = p.product_type or ""
    categories = [c.strip() for c in product_type.split(">")] if ">" in product_type else [
        product_type
    ]
    categories = [c for c in categories if c]
    if not categories:
        raise RejectedRecord(
            "category_name1 is missing (product_type is empty)", field="category_name1"
        )
    values[CATEGORY1:CATEGORY1 + min(4, len(categories))] = categories[:4]
    values[LINK] = check_url(p.link, "link")
    if p.mobile_link:
        values[MOBILE_LINK] = check_url(p.mobile_link, "mobile_link", required=False)
    values[IMAGE_LINK] = check_url(ch.image(p), "image_link")
    extra = ch.additional_images(p, 10)
    if extra:
        # "|" separates the list: an URL holding one is encoded, as the comma is.
        values[ADD_IMAGE_LINK] = "|".join(
            u.replace("|", "%7C") for u in (
                check_url(u, "add_image_link", required=False) for u in extra
            ) if u
        )
    values[NAVER_CATEGORY] = p.naver_category or ""
    values[CONDITION_AT] = CONDITION[p.condition]
    values[BARCODE] = clean_gtin(p.gtin)
    if p.mpn:
        values[MODEL_NUMBER] = trim_at_word(p.mpn, 60)
    if p.brand:
        values[BRAND] = trim_at_word(p.brand, 60)
    return values


def naver_sql_values(channel: str) -> list[str]:
    """``naver_values`` in SQL (see worker/feed/lines.py): NULL where the row is Python's."""
    values = ["''"] * len(FIELDS)
    values[ID] = lines.product_id(50)
    values[TITLE] = lines.within("c.title_c", 100)
    # Another currency than KRW, a zero price, no or a wild shipping: Python rejects the row.
    price = f"CASE WHEN c.currency = 'KRW' THEN {lines.positive_price()} END"
    lower = "c.sale_lower"
    values[PRICE_PC] = f"CASE WHEN {lower} THEN c.sale_price || left({price}, 0) ELSE {price} END"
    values[NORMAL_PRICE] = f"CASE WHEN {lower} THEN c.price ELSE '' END"
    values[SHIPPING] = (
        "CASE WHEN c.shipping_cost <> '' AND c.shipping_cost::numeric BETWEEN -1 AND 1000000"
        " THEN c.shipping_cost END"
    )
    for i in range(4):
        values[CATEGORY1 + i] = f"coalesce(c.categories[{i + 1}], '')"
    values[CATEGORY1] = "c.categories[1]"
    values[LINK] = "c.link_u"
    values[MOBILE_LINK] = "c.mobile_link_u"
    values[IMAGE_LINK] = lines.image_link(channel)
    # "|" separates the list: an URL holding one is encoded, as the comma is.
    values[ADD_IMAGE_LINK] = (
        f"replace(replace({lines.extra_images(channel)}, '|', '%7C'),"
        " chr(31), '|')"
    )
    values[NAVER_CATEGORY] = "coalesce(c.naver_category_c, '')"
    values[CONDITION_AT] = "CASE c.condition " + " ".join(
        f"WHEN {lines.lit(k)} THEN {lines.lit(v)}" for k, v in CONDITION.items()
    ) + " END"
    values[BARCODE] = "c.gtin_v"
    values[MODEL_NUMBER] = lines.optional_within("c.mpn_c", 60)
    values[BRAND] = lines.optional_within("c.brand_c", 60)
    return values


def naver_sql_columns(channel: str) -> tuple[tuple[str, ...], list[str]]:
    """``naver_sql_values`` as LineSQL.values, and the line's 49 references to them."""
    exprs = naver_sql_values(channel)
    named = {str(i): e for i, e in enumerate(exprs) if e != "''"}
    values, refs = lines.as_values(named, f"{channel}_")
    return values, [refs.get(str(i), "''") for i in range(len(exprs))]


# product_type's categories as naver_values splits them: on ">", trimmed, empty ones dropped. A plain
# product_type (single spaces, none at the ends) with no empty category: the spaces next to each ">"
# removed, one split; any other, one category at a time.
_PT = "m.product_type"
CATEGORIES_SQL = (
    f"CASE WHEN m.plain AND {_PT} <> '' AND NOT starts_with({_PT}, '>') AND {_PT} NOT LIKE '%>'"
    f" AND strpos({_PT}, '>>') = 0 AND strpos({_PT}, '> >') = 0"
    f" THEN string_to_array(replace(replace({_PT}, ' >', '>'), '> ', '>'), '>')"
    " ELSE (SELECT array_agg(btrim(s, ' ') ORDER BY o) FROM unnest(string_to_array("
    + lines.clean(_PT)
    + ", '>')) WITH ORDINALITY AS a(s, o) WHERE btrim(s, ' ') <> '') END AS categories"
)


class NaverChannel(Channel):
    name = "naver"
    extension = "tsv"
    content_type = "text/tab-separated-values; charset=utf-8"
    gzip = False

    def header(self) -> str:
        return "\t".join(FIELDS) + "\n"

    def row(self, p: FeedProduct) -> str | None:
        if p.availability in SOLD_OUT:
            return None
        return "\t".join(naver_values(self, p)) + "\n"

    def line_sql(self) -> LineSQL:
        values, v = naver_sql_columns(self.name)
        return LineSQL(
            lines.joined(v, "\t"),
            excluded="v.availability IN ('out_of_stock', 'discontinued')",
            middle=(CATEGORIES_SQL,),
            values=values,
        )


CHANNEL = NaverChannel
