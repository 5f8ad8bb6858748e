"""The small Channel interface, the product row every channel reads, and the rules channels share.

A channel is a preset (SyliusFeedPlugin's idea): a field mapping from ``FeedProduct``, the
platform's rules, and a file format. It turns one product into one chunk of text, or raises
``RejectedRecord`` naming the reason and the field when the platform would refuse the row. The rules
here are pure functions so that they can be tested by the thousand.
"""

from __future__ import annotations

import html
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from worker.common.errors import RejectedRecord
from worker.common.product import CURRENCY_DECIMALS

if TYPE_CHECKING:
    from worker.feed.lines import LineSQL

# Separator of the image lists in FeedProduct: a control character, so never part of a valid URL.
LIST_SEP = "\x1f"


class FeedProduct(NamedTuple):
    """One product as the stream yields it: formatted by the database, normalised by ``normalise``.

    Its text fields are single-line, without the characters XML forbids, and the description holds
    no HTML: channels apply only their own limits and mappings.
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
    currency: str
    availability: str
    availability_date: str | None  # ISO 8601, UTC
    condition: str
    brand: str | None
    gtin: str | None
    mpn: str | None
    item_group_id: str | None
    group_is_id: str | None  # "t" when item_group_id equals a live product id of the shop
    product_type: str | None
    google_product_category: str | None
    naver_category: str | None
    shipping_cost: str | None  # whole number
    change: str | None  # summary EP class: I, U or D (None when the shop has no summary channel)
    update_time: str | None  # "YYYY-MM-DD HH:MM:SS", Asia/Seoul


class Channel(ABC):
    """A channel preset: one module each under ``worker.feed.channels``, registered by name."""

    name: ClassVar[str]
    extension: ClassVar[str]  # file extension before any .gz
    content_type: ClassVar[str]
    # Whether the platform accepts a gzip file; the level is chosen by measurement (docs/feed.md).
    gzip: ClassVar[bool] = True
    # A delta channel takes the rows changed since its last publication (gone ones included) and
    # has no publish gate; a full channel takes every live product.
    delta: ClassVar[bool] = False
    # Whether the stream must say if a row's item_group_id equals a live product id (a join).
    checks_groups: ClassVar[bool] = False
    # For a delta channel: the channels whose last publication marks "since when".
    since_channels: ClassVar[tuple[str, ...]] = ()

    def header(self) -> str:
        return ""

    @abstractmethod
    def row(self, p: FeedProduct) -> str | None:
        """The product's text in this channel; None leaves it out by policy (not a reject).

        Raises ``RejectedRecord`` when the platform would refuse the row.
        """

    def footer(self) -> str:
        return ""

    def line_sql(self) -> LineSQL | None:
        """The channel's line built by PostgreSQL (worker/feed/lines.py), None to build all in Python.

        It must give exactly ``row``'s text for every row it does not hand back to Python.
        """
        return None

    def image(self, p: FeedProduct) -> str | None:
        """The processed image when it suits this channel and has a public address, else the shop's.

        ``image_fitness`` is keyed by channel name (the images task's contract, docs/images.md);
        without PUBLIC_BASE_URL the images task stores an s3:// or local address, which no
        platform can fetch.
        """
        url = p.image_url
        if (
            url
            and url.startswith(("https://", "http://"))
            and not (p.unfit and self.name in p.unfit.split(","))
        ):
            return url
        return p.image_link

    def additional_images(self, p: FeedProduct, limit: int = 10) -> list[str]:
        """Extra images, processed ones when the main image is processed; at most ``limit``."""
        joined = p.additional_image_links
        if p.additional_image_urls and self.image(p) == p.image_url:
            joined = p.additional_image_urls
        if not joined:
            return []
        return [u for u in joined.split(LIST_SEP) if u][:limit]


# --- text rules ----------------------------------------------------------------------------------

# What XML 1.0 forbids (its Char production, inverted), which breaks a whole feed; and DEL and the
# C1 controls, which XML 1.0 only discourages but which are never text and trip other parsers.
_XML_FORBIDDEN = re.compile(
    "[^\t\n\r\u0020-\u007e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_DROP_ELEMENTS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_SCRIPT_OR_STYLE = re.compile(r"<(?:script|style)", re.IGNORECASE)
_TAG = re.compile(r"<!--.*?-->|<[A-Za-z/!][^>]*>", re.DOTALL)


def strip_forbidden(text: str) -> str:
    """Remove what XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE/FFFF, surrogates), DEL, C1."""
    return _XML_FORBIDDEN.sub("", text)


def one_line(text: str) -> str:
    """Collapse every run of whitespace (tabs, newlines) into one space; trim the ends."""
    # str.split() walks Unicode whitespace in C: many times faster than a regex substitution.
    return " ".join(text.split())


def strip_html(text: str) -> str:
    """Plain text from HTML: tags and comments out, script/style bodies out, entities decoded."""
    if "<" in text:
        if _SCRIPT_OR_STYLE.search(text):
            text = _DROP_ELEMENTS.sub(" ", text)
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return text


# A character clean_text would remove or replace: what XML forbids, DEL, C1, and every whitespace
# character but the plain space (str.isspace's set, spelled out so that it is one class: one scan).
_BAD_CHAR = re.compile(
    "[\x00-\x1f\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    "\ud800-\udfff\ufffe\uffff]"
)


def is_clean(text: str) -> bool:
    """Whether ``clean_text`` would leave ``text`` as it is (without HTML); much cheaper than it."""
    return not text or not (
        _BAD_CHAR.search(text) or "  " in text or text[0] == " " or text[-1] == " "
    )


# FeedProduct fields that are shop text (not database-formatted numbers, dates or URL lists).
_TEXT_FIELDS = tuple(
    FeedProduct._fields.index(name)
    for name in ("title", "brand", "gtin", "mpn", "item_group_id", "product_type",
                 "google_product_category", "naver_category")
)
_DESCRIPTION = FeedProduct._fields.index("description")


def normalise(row: Sequence[str | None]) -> FeedProduct:
    """The stream's row as a FeedProduct with its text cleaned once, for every channel."""
    values = list(row)
    for i in _TEXT_FIELDS:
        value = values[i]
        if value and not is_clean(value):
            values[i] = clean_text(value)
    description = values[_DESCRIPTION]
    if description:
        values[_DESCRIPTION] = clean_text(description, html=True)
    return FeedProduct._make(values)


def clean_text(text: str | None, *, html: bool = False) -> str:
    """A single-line value: forbidden characters out, whitespace collapsed; HTML out if ``html``.

    ``html`` is for fields shops fill with markup (descriptions). A title's "<Deluxe>" is text.
    """
    if not text:
        return ""
    if html:
        # HTML first: a decoded entity (&#1;) may itself be a character the next step removes.
        text = strip_html(text)
    if is_clean(text):
        return text
    return one_line(strip_forbidden(text))


def trim_at_word(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at the last word boundary when one is near enough.

    "Near enough" is the last fifth of the limit: a text with no space there (Korean without
    spaces, a long URL) is cut at the limit itself rather than losing most of its length.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    if space >= limit * 4 // 5:
        return cut[:space].rstrip()
    return text[:limit].rstrip()


def xml_escape(text: str) -> str:
    """Escape for XML element content (the three characters that matter there)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def format_price(amount: Decimal | str | int, currency: str) -> str:
    """``15.00 USD``, ``12900 KRW``: the currency's ISO 4217 decimals, '.' always, no grouping.

    Half-up rounding, as PostgreSQL's ``round(numeric, n)`` does, so that the database-formatted
    stream and this function agree (tested).
    """
    decimals = CURRENCY_DECIMALS.get(currency, 2)
    value = Decimal(amount).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{value:f} {currency}"


def is_positive_amount(text: str | None) -> bool:
    """Whether a database-formatted amount is above zero."""
    return text is not None and text != "" and text[0] != "-" and text.strip("0.") != ""


def less_than(a: str, b: str) -> bool:
    """Whether amount ``a`` < ``b``, both database-formatted decimals."""
    return Decimal(a) < Decimal(b)


# --- required-field checks shared by the presets ------------------------------------------------

# http(s), then no whitespace and nothing XML forbids (the same set as _BAD_CHAR), in one match.
_URL_OK = re.compile(
    "(?i:https?)://[^\\s\x00-\x1f\x7f-\xa0\ud800-\udfff\ufffe\uffff]+\\Z"
)


def require(value: str, field: str, reason: str | None = None) -> str:
    """The value, or a rejection naming the field when it is empty."""
    if not value:
        raise RejectedRecord(reason or f"{field} is missing", field=field)
    return value


def check_id(product_id: str, limit: int) -> str:
    """A product id the platform keeps: present, single-line, at most ``limit`` characters.

    An id is never trimmed: two products trimmed to the same id would collide on the platform.
    """
    value = product_id.strip()
    if not value:
        raise RejectedRecord("id is missing", field="id")
    if len(value) > limit or _BAD_CHAR.search(value):
        raise RejectedRecord(
            f"id longer than {limit} characters or holding control characters or line breaks",
            field="id",
            excerpt=value[:120],
        )
    return value


def check_url(url: str | None, field: str, *, required: bool = True, limit: int = 2000) -> str:
    """An http(s) URL without spaces or controls, at most ``limit`` characters; commas as %2C."""
    value = (url or "").strip()
    if not value:
        if required:
            raise RejectedRecord(f"{field} is missing", field=field)
        return ""
    if len(value) > limit or not _URL_OK.match(value):
        if required:
            raise RejectedRecord(
                f"{field} is not an http(s) URL of at most {limit} characters",
                field=field,
                excerpt=value[:200],
            )
        return ""
    # Google (answer/6324350) asks for commas percent-encoded; text formats split on them too.
    return value.replace(",", "%2C") if "," in value else value
