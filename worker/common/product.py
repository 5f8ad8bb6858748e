"""The internal product: the normalised fields every channel needs, as stored in ``products``.

Collect maps each shop's own fields onto these; feed maps these onto each channel's fields. Fields a
shop sends that are not mapped are kept in ``extra`` (jsonb).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# Columns collect writes, in COPY order. ``extra`` and ``content_hash`` are computed by collect.
PRODUCT_FIELDS: Final = (
    "product_id",
    "title",
    "description",
    "link",
    "mobile_link",
    "image_link",
    "additional_image_links",
    "price",
    "sale_price",
    "currency",
    "availability",
    "availability_date",
    "condition",
    "brand",
    "gtin",
    "mpn",
    "item_group_id",
    "product_type",
    "google_product_category",
    "naver_category",
    "shipping_cost",
    # Variant attributes (apparel and anything with options) and the sale price's window
    # (migration 0007). Stored as the shop wrote them, trimmed; the channels spell them.
    "color",
    "size",
    "gender",
    "age_group",
    "material",
    "pattern",
    "size_system",
    "size_type",
    "sale_price_start",
    "sale_price_end",
)
# The variant attributes above, stored as text of at most MAX_ATTRIBUTE_LENGTH characters.
VARIANT_ATTRIBUTES: Final = (
    "color", "size", "gender", "age_group", "material", "pattern", "size_system", "size_type",
)
REQUIRED_FIELDS: Final = ("product_id", "title", "link", "price")

# The values ``products.availability`` and ``products.condition`` allow (migration 0001's CHECKs),
# and what a product without one gets.
AVAILABILITY: Final = ("in_stock", "out_of_stock", "preorder", "backorder", "discontinued")
CONDITION: Final = ("new", "refurbished", "used")
DEFAULT_AVAILABILITY: Final = "in_stock"
DEFAULT_CONDITION: Final = "new"

# Storage limits (the channels' own limits are the channels' rules, not these).
MAX_ID_LENGTH: Final = 256
MAX_TEXT_LENGTH: Final = 100_000
MAX_URL_LENGTH: Final = 4_096
MAX_ATTRIBUTE_LENGTH: Final = 1_000
# numeric(20, 4): 16 digits before the point. PostgreSQL rounds to 4 places, half away from
# zero, so this is the first amount that would round to 10¹⁶ and overflow the column.
PRICE_LIMIT: Final = Decimal("9999999999999999.99995")
MAX_ADDITIONAL_IMAGES: Final = 10

# ISO 4217 minor units of the currencies we meet; an unknown code is rejected by collect.
CURRENCY_DECIMALS: Final[dict[str, int]] = {
    "KRW": 0, "JPY": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "TWD": 2, "IDR": 2,
    "USD": 2, "EUR": 2, "GBP": 2, "CNY": 2, "HKD": 2, "SGD": 2, "AUD": 2, "CAD": 2,
    "NZD": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "THB": 2,
    "MYR": 2, "PHP": 2, "INR": 2, "BRL": 2, "MXN": 2, "ZAR": 2, "TRY": 2, "AED": 2,
    "SAR": 2, "ILS": 2, "RON": 2, "BGN": 2, "UAH": 2, "KWD": 3, "BHD": 3, "OMR": 3,
    "JOD": 3, "TND": 3,
}
