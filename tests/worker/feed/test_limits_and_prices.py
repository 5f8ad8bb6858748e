"""Each channel's own limits at the limit and one past it, shipping, sale windows, dates, and
the description option; asserted against the published numbers, on XML and text writers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.worker.feed.helpers import NOW
from tests.worker.feed.items import ALL, XML_AND_TEXT, item, options, publish
from worker.feed.rules import iso_utc

NAVER = ("naver", "naver_summary")
WORDS = "word " * 60  # 300 characters of words


@pytest.mark.parametrize(("name", "limit"), [("google", 50), ("google_tsv", 50), ("meta", 100),
                                             ("naver", 50), ("naver_summary", 50)])
def test_id_limit_at_and_past_it(name: str, limit: int) -> None:
    at = publish(name, item(product_id="i" * limit))
    assert at.values is not None and at.values["id"] == "i" * limit
    over = publish(name, item(product_id="i" * (limit + 1)))
    assert over.excluded and over.field == "id" and str(limit) in (over.reason or "")


@pytest.mark.parametrize("name", NAVER)
@pytest.mark.parametrize("pid", ["상품-1", "A.1", "A 1", "A/1", "Ä-1", "A+1"])
def test_naver_ids_outside_ascii_letters_digits_dash_underscore_are_excluded(
    name: str, pid: str
) -> None:
    out = publish(name, item(product_id=pid))
    assert out.excluded and out.field == "id" and "ASCII" in (out.reason or "")
    assert publish(name, item(product_id="Ab_9-x")).values is not None
    # Other channels keep such ids (their rules allow any single-line text).
    assert publish("google", item(product_id=pid)).values is not None


@pytest.mark.parametrize(("name", "limit"), [("google", 150), ("google_tsv", 150), ("meta", 200),
                                             ("naver", 100), ("naver_summary", 100)])
def test_title_limit_trims_at_a_word(name: str, limit: int) -> None:
    exact = "t" * (limit - 5) + " tail"
    at = publish(name, item(title=exact))
    assert at.values is not None and at.values["title"] == exact
    out = publish(name, item(title=exact + "s"))
    assert out.values is not None
    title = out.values["title"]
    assert len(title) <= limit and title == "t" * (limit - 5)  # cut at the word, not inside it
    long = publish(name, item(title=WORDS)).values
    assert long is not None and len(long["title"]) <= limit and not long["title"].endswith(" ")


@pytest.mark.parametrize("name", NAVER)
def test_naver_categories_are_trimmed_to_50(name: str) -> None:
    at, over = "c" * 50, "c" * 51
    out = publish(name, item(product_type=f"{at} > {over} > x > y > z"))
    assert out.values is not None
    assert out.values["category_name1"] == at and out.values["category_name2"] == at
    assert (out.values["category_name3"], out.values["category_name4"]) == ("x", "y")


@pytest.mark.parametrize("name", NAVER)
@pytest.mark.parametrize(("given", "sent"), [("50000204", "50000204"), ("5000020", None),
                                             ("500002040", None), ("5000020A", None)])
def test_naver_category_only_when_exactly_eight_digits(name: str, given: str, sent: str | None) -> None:
    out = publish(name, item(naver_category=given))
    assert out.values is not None and out.values.get("naver_category") == sent
    assert ("naver_category" in out.dropped_fields()) is (sent is None)


@pytest.mark.parametrize("name", NAVER)
@pytest.mark.parametrize(("cost", "ok"), [("-1", True), ("-2", False), ("0", True),
                                          ("1000000", True), ("1000001", False)])
def test_naver_shipping_range(name: str, cost: str, ok: bool) -> None:
    out = publish(name, item(shipping_cost=cost))
    if ok:
        assert out.values is not None and out.values["shipping"] == cost
    else:
        assert out.excluded and out.field == "shipping"


@pytest.mark.parametrize("name", NAVER)
@pytest.mark.parametrize("field", ["brand", "model_number"])
def test_naver_brand_and_model_number_are_trimmed_to_60(name: str, field: str) -> None:
    source = "mpn" if field == "model_number" else "brand"
    at = publish(name, item(**{source: "b" * 60})).values
    over = publish(name, item(**{source: "b" * 61})).values
    assert at is not None and over is not None
    assert at[field] == "b" * 60 and over[field] == "b" * 60


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_shipping_from_the_shops_country_in_the_feed_currency(name: str) -> None:
    out = publish(name, item(shipping_cost="3000"))
    assert out.values is not None
    if name == "google":
        assert out.values["shipping"] == {"country": "KR", "price": "3000 KRW"}
    else:
        assert out.values["shipping"] == "KR:::3000 KRW"
    usd = publish(name, item(shipping_cost="3.50", currency="USD", price="20.00"),
                  options(country="US")).values
    assert usd is not None and "3.50 USD" in str(usd["shipping"]) and "US" in str(usd["shipping"])
    # Unknown country, unknown cost, or a cost paid on delivery: no shipping attribute.
    assert "shipping" not in (publish(name, item(), options(country=None)).values or {})
    assert "shipping" not in (publish(name, item(shipping_cost=None)).values or {})
    assert "shipping" not in (publish(name, item(shipping_cost="NaN")).values or {})
    negative = publish(name, item(shipping_cost="-1"))
    assert negative.values is not None and "shipping" not in negative.values
    assert negative.dropped_fields() == {"shipping"}


def test_meta_shipping_column() -> None:
    out = publish("meta", item(shipping_cost="2500"))
    assert out.values is not None and out.values["shipping"] == "KR::Standard:2500 KRW"


def window(days_from: int, days_to: int) -> dict[str, str]:
    return {"sale_price_start": iso_utc(NOW + timedelta(days=days_from)),
            "sale_price_end": iso_utc(NOW + timedelta(days=days_to))}


@pytest.mark.parametrize("name", (*XML_AND_TEXT, "meta"))
def test_google_and_meta_get_the_sale_window_as_an_iso_8601_interval(name: str) -> None:
    w = window(-1, 7)
    out = publish(name, item(sale_price="9900", **w))
    assert out.values is not None and out.values["sale_price"] == "9900 KRW"
    assert out.values["sale_price_effective_date"] == f"{w['sale_price_start']}/{w['sale_price_end']}"
    future = publish(name, item(sale_price="9900", **window(3, 7))).values
    assert future is not None and future["sale_price"] == "9900 KRW"  # the platform waits for it
    for bad in (window(-7, -1), window(7, 3)):  # over, inverted
        out = publish(name, item(sale_price="9900", **bad))
        assert out.values is not None and "sale_price" not in out.values
        assert "sale_price_effective_date" not in out.values
        assert out.dropped_fields() == {"sale_price"}
    for not_lower in ("12900", "13000"):
        out = publish(name, item(sale_price=not_lower))
        assert out.values is not None and "sale_price" not in out.values
        assert out.dropped_fields() == {"sale_price"}


@pytest.mark.parametrize("name", NAVER)
def test_naver_gets_the_sale_price_only_while_the_window_is_open(name: str) -> None:
    open_ = publish(name, item(sale_price="9900", **window(-1, 1))).values
    assert open_ is not None and (open_["price_pc"], open_["normal_price"]) == ("9900", "12900")
    for closed in (window(1, 7), window(-7, -1)):
        out = publish(name, item(sale_price="9900", **closed))
        assert out.values is not None and out.values["price_pc"] == "12900"
        assert "normal_price" not in out.values and out.dropped_fields() == {"sale_price"}
    # The window's end is exclusive: a sale ending at build time is over.
    ends_now = publish(name, item(sale_price="9900", sale_price_end=iso_utc(NOW))).values
    assert ends_now is not None and ends_now["price_pc"] == "12900"
    plain = publish(name, item(sale_price="9900")).values  # no window: always on
    assert plain is not None and plain["price_pc"] == "9900"


@pytest.mark.parametrize("name", XML_AND_TEXT)
@pytest.mark.parametrize("availability", ["preorder", "backorder"])
def test_google_availability_date_at_most_one_year_ahead(name: str, availability: str) -> None:
    year = iso_utc(NOW + timedelta(days=365))
    at = publish(name, item(availability=availability, availability_date=year))
    assert at.values is not None and at.values["availability_date"] == year
    over = iso_utc(NOW + timedelta(days=365, seconds=1))
    out = publish(name, item(availability=availability, availability_date=over))
    assert out.excluded and out.field == "availability_date" and "one year" in (out.reason or "")
    missing = publish(name, item(availability=availability))
    assert missing.excluded and missing.field == "availability_date"


@pytest.mark.parametrize("name", ("google", "google_tsv", "meta"))
def test_description_from_title_is_a_shop_option(name: str) -> None:
    assert publish(name, item(description=None)).excluded
    out = publish(name, item(description=None), options(description_from_title=True))
    assert out.values is not None and out.values["description"] == "Cotton shirt"
    kept = publish(name, item(), options(description_from_title=True)).values
    assert kept is not None and kept["description"] == "A plain cotton shirt"


@pytest.mark.parametrize("name", ALL)
def test_every_channel_reads_back_a_value_starting_with_a_quote(name: str) -> None:
    title = '"Quoted" title, with comma'
    out = publish(name, item(title=title, brand='"Brand"'))
    assert out.values is not None and out.values["title"] == title


def test_the_summary_takes_down_only_ids_naver_could_have_listed() -> None:
    gone = publish("naver_summary", item(product_id="A-1", change="D"))
    assert gone.values is not None and gone.values["class"] == "D" and gone.values["id"] == "A-1"
    for pid in ("상품-1", "i" * 51):
        out = publish("naver_summary", item(product_id=pid, change="D"))
        assert out.excluded and out.reason is None  # left out by policy, nothing to record


def test_metas_extra_image_list_stays_within_2000_characters() -> None:
    def url(i: int, size: int) -> str:
        head = f"https://shop.example/{i}/"
        return head + "a" * (size - len(head))

    at = [url(1, 1000), url(2, 999)]  # 1000 + "," + 999 = 2000
    out = publish("meta", item(additional_image_links=at))
    assert out.values is not None and len(out.values["additional_image_link"]) == 2000
    over = [url(1, 1000), url(2, 1000), url(3, 30)]  # the second would make it 2001
    out = publish("meta", item(additional_image_links=over))
    assert out.values is not None
    assert out.values["additional_image_link"].split(",") == [over[0], over[2]]
    assert [d.field for d in out.dropped] == ["additional_image_link"]


@pytest.mark.parametrize("name", (*XML_AND_TEXT, "meta"))
def test_a_sale_window_with_one_end_is_applied_at_build_time(name: str) -> None:
    later, earlier = iso_utc(NOW + timedelta(days=2)), iso_utc(NOW - timedelta(days=2))
    for open_ in ({"sale_price_end": later}, {"sale_price_start": earlier}):
        out = publish(name, item(sale_price="9900", **open_)).values
        assert out is not None and out["sale_price"] == "9900 KRW"
        assert "sale_price_effective_date" not in out  # an interval needs both ends
    for closed in ({"sale_price_end": earlier}, {"sale_price_start": later}):
        out = publish(name, item(sale_price="9900", **closed))
        assert out.values is not None and "sale_price" not in out.values
        assert out.dropped_fields() == {"sale_price"}
