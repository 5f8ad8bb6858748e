"""The small Channel interface every channel module implements, and what it is created with.

A channel is a preset (SyliusFeedPlugin's idea): a field mapping from ``FeedProduct``, the
platform's own limits and spellings, and a file format; the rules that do not depend on the
platform live in ``worker.feed.rules``. ``row`` turns one product into one chunk of text, or
raises ``RejectedRecord`` (the item is excluded from this channel, with its reason); an attribute
the platform would refuse is left out of the item and reported through ``drop``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import ClassVar, NamedTuple

from worker.common.errors import RejectedRecord
from worker.common.settings import Network, Settings
from worker.common.shops import Shop
from worker.feed.product import LIST_SEP, FeedProduct
from worker.feed.rules import (
    UrlProblem,
    amount,
    canonical,
    is_plain_url,
    is_positive_amount,
    iso_utc,
    less_than,
    normalise_gtin,
    plain_amount,
    publishable_url,
    restricted_gtin,
    window_open,
)


@dataclass(frozen=True)
class ImageSize:
    """The image sizes a channel accepts, in pixels (inclusive); None: no maximum."""

    min_width: int
    min_height: int
    max_width: int | None = None
    max_height: int | None = None


# How far ahead Google takes an availability_date (google.py); the line cache's time breakpoints
# (worker/feed/linecache.py) use the same span.
YEAR_AHEAD = timedelta(days=365)


@dataclass(frozen=True)
class ChannelOptions:
    """What a channel needs of the shop and the deployment, resolved once per task."""

    country: str | None = None  # ISO 3166-1 alpha-2: shipping's country (Google, Meta)
    apparel: bool = False  # the shop option: Google's apparel attributes are required
    description_from_title: bool = False  # the shop option: a missing description is the title
    # FETCH_ALLOW_NETWORKS: addresses a platform can reach in this deployment (the local demo).
    allow_networks: tuple[Network, ...] = ()
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # the build's time

    @classmethod
    def for_shop(cls, shop: Shop, settings: Settings) -> ChannelOptions:
        """What the channels need of the shop and the deployment, once per task (or preview)."""
        return cls(
            country=shop.country,
            apparel=bool(shop.option("apparel")),
            description_from_title=bool(shop.option("description_from_title")),
            allow_networks=settings.fetch_allow_networks,
            now=datetime.now(UTC),
        )

    # Read for every row with a sale or a date: formatted once (cached_property writes the
    # instance's __dict__ directly, which a frozen dataclass allows).
    @cached_property
    def now_iso(self) -> str:
        return iso_utc(self.now)

    @cached_property
    def year_ahead_iso(self) -> str:
        return iso_utc(self.now + YEAR_AHEAD)


class Dropped(NamedTuple):
    """An attribute left out of an item, and why (the item itself stays in the channel)."""

    field: str
    reason: str
    excerpt: str | None


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
    # Whether the stream must say if a row's item_group_id equals a live product id, and which
    # variant attributes differ within the row's group (a join and a grouped scan).
    checks_groups: ClassVar[bool] = False
    # For a delta channel: the channels whose last publication marks "since when".
    since_channels: ClassVar[tuple[str, ...]] = ()
    # The platform's image size rule (the images task reads it through the registry): the
    # smallest edge in pixels, the apparel one where the platform has one, the largest if any.
    min_image_size: ClassVar[int]
    min_image_size_apparel: ClassVar[int | None] = None
    max_image_size: ClassVar[int | None] = None

    def __init__(self, options: ChannelOptions | None = None) -> None:
        self.options = options or ChannelOptions()
        self.dropped: list[Dropped] = []

    @classmethod
    def image_size(cls, *, apparel: bool, on: date) -> ImageSize:
        """The image size this channel accepts on a given day, for an apparel shop or not."""
        edge = cls.min_image_size
        if apparel and cls.min_image_size_apparel is not None:
            edge = cls.min_image_size_apparel
        return ImageSize(edge, edge, cls.max_image_size, cls.max_image_size)

    def header(self) -> str:
        return ""

    @abstractmethod
    def row(self, p: FeedProduct) -> str | None:
        """The product's text in this channel; None leaves it out by policy (not a reject).

        Raises ``RejectedRecord`` when the platform would refuse the item; ``drop`` records an
        attribute left out of it.
        """

    def footer(self) -> str:
        return ""

    # --- what every preset uses: the shared rules applied, with what they drop recorded -------

    def drop(self, field: str, reason: str, excerpt: str | None = None) -> None:
        """Leave an attribute out of the current item, with the reason (the task records it)."""
        self.dropped.append(Dropped(field, reason, excerpt))

    def url(self, value: str | None, field: str, *, limit: int, required: bool,
            encode_comma: bool = False) -> str:
        """A publishable URL (``rules.publishable_url``); a bad one excludes the item when
        ``required``, else it is dropped with its reason."""
        if not value:
            if required:
                raise RejectedRecord(f"{field} is missing", field=field)
            return ""
        # Most shops' URLs are already plain (rules.is_plain_url): publishable_url would give
        # them back as they are when within the limit and, if commas are to be encoded, without
        # one; answered here without its calls.
        if len(value) <= limit and is_plain_url(value) and not (encode_comma and "," in value):
            return value
        try:
            return publishable_url(value, limit=limit, allow=self.options.allow_networks,
                                   encode_comma=encode_comma)
        except UrlProblem as problem:
            reason = f"{field} {problem.reason}"
            if required:
                raise RejectedRecord(reason, field=field, excerpt=value[:200]) from None
            self.drop(field, reason, value[:200])
            return ""

    def description(self, p: FeedProduct) -> str:
        """The description, or the title where the shop option says so and there is none."""
        if not p.description and self.options.description_from_title:
            return p.title
        return p.description or ""

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

    def additional_urls(self, p: FeedProduct, field: str, *, limit: int,
                        encode_comma: bool = False, count: int = 10) -> list[str]:
        """The extra images as publishable URLs; a bad one is dropped with its reason."""
        urls = self.additional_images(p, count)
        if not urls:
            return urls
        return [u for u in (self.url(u, field, limit=limit, required=False,
                                     encode_comma=encode_comma) for u in urls) if u]

    def sale(self, p: FeedProduct) -> tuple[str, str]:
        """``(sale price, sale_price_effective_date)`` for Google and Meta; ``("", "")`` without one.

        A sale price not lower than the price, or whose window is over or inverted, is dropped
        with the reason. A window with both ends becomes the ISO 8601 interval; with one end only,
        the sale price is sent while the window is open at build time.
        """
        sale = p.sale_price
        if not sale:
            return "", ""
        if not (is_positive_amount(sale) and less_than(sale, p.price)):
            self.drop("sale_price", "sale_price is not lower than price", sale)
            return "", ""
        start, end, now = p.sale_price_start, p.sale_price_end, self.options.now_iso
        if start and end:
            if end <= start:
                self.drop("sale_price", "sale window ends before it starts", f"{start}/{end}")
                return "", ""
            if end <= now:
                self.drop("sale_price", "sale window ended before the feed was built",
                          f"{start}/{end}")
                return "", ""
            return f"{sale} {p.currency}", f"{start}/{end}"
        if not window_open(start, end, now):
            self.drop("sale_price", "sale window not open when the feed was built",
                      f"{start or ''}/{end or ''}")
            return "", ""
        return f"{sale} {p.currency}", ""

    def limited(self, value: str | None, field: str, limit: int) -> str:
        """A free-text attribute within ``limit`` characters; a longer one is dropped (a cut
        colour or part number would be a wrong one)."""
        if not value:
            return ""
        if len(value) > limit:
            self.drop(field, f"{field} longer than {limit} characters", value[:120])
            return ""
        return value

    def spelled(self, value: str | None, field: str, table: dict[str, str],
                spellings: dict[str, str]) -> str:
        """A value of a fixed set in the channel's spelling; one outside it is dropped."""
        neutral, problem = canonical(value, table)
        if problem:
            self.drop(field, f"{field} {problem}", value)
            return ""
        if not neutral:
            return ""
        spelling = spellings.get(neutral)
        if spelling is None:
            self.drop(field, f"{field} has no {self.name} value", value)
            return ""
        return spelling

    def gtin(self, p: FeedProduct, *, drop_restricted: bool) -> str:
        """A valid GTIN, or "" with the reason dropped; ``drop_restricted``: Google's prefix rule."""
        gtin, problem = normalise_gtin(p.gtin)
        if problem:
            self.drop("gtin", problem, p.gtin)
            return ""
        if gtin and drop_restricted and restricted_gtin(gtin):
            self.drop("gtin", "gtin has a restricted-circulation or coupon prefix", gtin)
            return ""
        return gtin

    def shipping_price(self, p: FeedProduct) -> str:
        """The shipping price for the shop's country (Google, Meta), "" when either is unknown."""
        cost = p.shipping_cost
        if not cost or not self.options.country:
            return ""
        if plain_amount(cost):  # the database's "2500", "3.50": finite, not negative
            return f"{cost} {p.currency}"
        value = amount(cost)
        if value is None:
            return ""
        if value < 0:
            self.drop("shipping", "shipping_cost is negative (paid on delivery): no price to send",
                      cost)
            return ""
        return f"{cost} {p.currency}"
