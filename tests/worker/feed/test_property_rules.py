"""Property: whatever text, URLs and GTINs a shop sends, no published value breaks its channel's
rules. Each item goes through the stream's normalisation and the channel, the file is read back
with a real XML parser or the csv module, and every field is checked against the published rule."""

from __future__ import annotations

import html
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import ean

from tests.worker.feed.items import options, publish
from worker.feed.channels.google import AGE_GROUP as GOOGLE_AGE
from worker.feed.channels.google import SIZE_SYSTEMS
from worker.feed.channels.meta import AGE_GROUP as META_AGE
from worker.feed.channels.naver import AGE_GROUP as NAVER_AGE
from worker.feed.channels.naver import GENDER as NAVER_GENDER
from worker.feed.product import FeedProduct, normalise
from worker.feed.rules import restricted_gtin, unreachable_host

URI = re.compile(r"https?://[A-Za-z0-9\-._~!$&'()*+,;=:@/?#%\[\]]+\Z")
LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
PRICE = re.compile(r"[0-9]+(\.[0-9]+)? [A-Z]{3}\Z")
ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"
INTERVAL = re.compile(ISO + "/" + ISO + r"\Z")
NAVER_ID = re.compile(r"[A-Za-z0-9_-]{1,50}\Z")
TAG = re.compile(r"<[A-Za-z/!][^>]*>")
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
long_text = st.one_of(text, st.text(alphabet="ab 가", min_size=40, max_size=400))
hosts = st.one_of(
    st.sampled_from(["shop.example", "한국.example", "Bücher.DE", "127.0.0.1", "10.0.0.1",
                     "[::1]", "localhost", "2130706433", "0x7f.1", "169.254.169.254",
                     "shop.example:8080", "[2001:db8::1]", "8.8.8.8", "a..b", ""]),
    st.text(max_size=20),
)
urls = st.one_of(
    text,
    st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}",
              st.sampled_from(["http", "https", "HTTPS", "ftp", "javascript", ""]), hosts,
              st.one_of(text, st.text(alphabet="가나 %,|\"<>#?&=/a1", max_size=300))),
)
gtins = st.one_of(
    text,
    st.from_regex(r"[0-9 \-]{6,18}", fullmatch=True),
    st.sampled_from(["4006381333931", "012345678905", "96385074", "2000000000015",
                     "10012345678902", "0000000000000", "９６３８５０７４"]),
)
dates = st.one_of(st.none(), st.sampled_from([
    "2026-11-20T00:00:00Z", "2026-11-29T03:00:00Z", "2026-12-24T00:00:00Z",
    "2027-11-29T03:00:00Z", "2027-11-29T03:00:01Z", "2030-01-01T00:00:00Z",
]))
amounts = st.sampled_from(["0", "1", "12900", "9900", "15000", "-1", "-2", "1000000",
                           "1000001", "3.50", "12900.5"])


paths = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "product_id": st.from_regex(r"[A-Za-z0-9_-]{1,50}", fullmatch=True),
    "title": st.one_of(st.builds(lambda t: "Item " + t, long_text),
                       st.builds(lambda t: '"Quoted" ' + t, long_text)),
    "description": st.builds(lambda t: "About " + t, st.one_of(
        long_text, st.text(alphabet="<>&;#amplt gbr/!-", max_size=80),
        st.sampled_from(["&amp;lt;b&amp;gt;x", "&lt;p&gt;hi&lt;/p&gt;", "&amp;amp;amp;eacute;",
                         "<scr<script>x</script>ipt>", "&#38;#60;b&#38;#62;",
                         "&am&#1;p;lt;b&am\x01p;gt;", "&amp\t;x"]))),
    "link": st.builds(lambda t: "https://shop.example/p/" + t, paths),
    "image_link": st.builds(lambda t: "https://상점.example/이미지/" + t, paths),
    "price": st.sampled_from(["12900", "15000"]),
    "currency": st.just("KRW"),
    "brand": st.one_of(st.builds(lambda t: "Brand " + t, long_text),
                       st.builds(lambda t: '"' + t, long_text.filter(str.strip))),
    "shipping_cost": st.sampled_from(["0", "3000", "-1"]),
    "product_type": st.builds(lambda t: "옷 > " + t, text),
}


@st.composite
def raw_rows(draw: st.DrawFn) -> FeedProduct:
    """A stream row as the database hands it over (text not yet cleaned), then ``normalise``.

    The required fields are mostly publishable (so that most items reach the file and their
    values are checked) and sometimes hostile; the optional ones are anything.
    """
    row: dict[str, Any] = {name: None for name in FeedProduct._fields}
    row.update(
        product_id=draw(st.one_of(text.filter(bool), st.from_regex(r"[A-Za-z0-9_-]{1,60}",
                                                                    fullmatch=True))),
        title=draw(long_text), description=draw(st.one_of(st.none(), long_text)),
        link=draw(urls), mobile_link=draw(st.one_of(st.none(), urls)),
        image_link=draw(st.one_of(st.none(), urls)),
        additional_image_links="\x1f".join(draw(st.lists(urls, max_size=12))) or None,
        price=draw(amounts), sale_price=draw(st.one_of(st.none(), amounts)),
        sale_price_start=draw(dates), sale_price_end=draw(dates),
        currency=draw(st.sampled_from(["KRW", "USD"])),
        availability=draw(st.sampled_from(["in_stock", "out_of_stock", "preorder", "backorder",
                                           "discontinued"])),
        availability_date=draw(dates), condition=draw(st.sampled_from(["new", "used"])),
        brand=draw(st.one_of(st.none(), long_text)), gtin=draw(st.one_of(st.none(), gtins)),
        mpn=draw(st.one_of(st.none(), long_text)),
        item_group_id=draw(st.one_of(st.none(), text)),
        group_varies=draw(st.sampled_from([None, "|", "color|", "|size,color", "size|material"])),
        color=draw(st.one_of(st.none(), long_text)), size=draw(st.one_of(st.none(), text)),
        gender=draw(st.one_of(st.none(), text, st.sampled_from(["Men", "여성", "unisex"]))),
        age_group=draw(st.one_of(st.none(), text, st.sampled_from(["adult", "teen", "유아"]))),
        material=draw(st.one_of(st.none(), long_text)), pattern=draw(st.one_of(st.none(), text)),
        size_system=draw(st.one_of(st.none(), text, st.sampled_from(["eu", "US", "KR"]))),
        size_type=draw(st.one_of(st.none(), text, st.sampled_from(["plus", "big,tall"]))),
        product_type=draw(st.one_of(st.none(), long_text, st.just("a > b > " + "c" * 60))),
        naver_category=draw(st.one_of(st.none(), text, st.just("50000204"))),
        shipping_cost=draw(st.one_of(st.none(), amounts)),
        change="I", update_time="2026-11-29 12:00:00",
    )
    for name, good in GOOD.items():
        if draw(st.integers(0, 9)) < 9:
            row[name] = draw(good)
    if draw(st.integers(0, 3)) < 3:
        row["availability"] = "in_stock"
    return normalise([row[name] for name in FeedProduct._fields])


def check_url(value: str, limit: int, *, comma: bool = True) -> None:
    assert URI.match(value) and not LONE_PERCENT.search(value), value
    assert len(value) <= limit and unreachable_host(value) is None, value
    assert comma or "," not in value, value


def check_gtin(value: str | None, *, google: bool) -> None:
    if value:
        assert len(value) in (8, 12, 13, 14) and ean.is_valid(value), value
        assert not (google and restricted_gtin(value)), value


def check_text(values: dict[str, Any]) -> None:
    for value in values.values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str):
                assert not FORBIDDEN.search(v) and "\t" not in v and "\n" not in v, v


def plain(description: str) -> bool:
    """No HTML tag and nothing an HTML reader would decode as an entity (Meta's description)."""
    return not TAG.search(description) and html.unescape(description) == description


def check_google(v: dict[str, Any]) -> None:
    check_text(v)
    assert plain(v["description"]), v["description"]
    assert 1 <= len(v["id"]) <= 50 and 1 <= len(v["title"]) <= 150
    assert 1 <= len(v["description"]) <= 5000
    check_url(v["link"], 2000)
    check_url(v["image_link"], 2000, comma=False)
    if "mobile_link" in v:
        check_url(v["mobile_link"], 2000)
    extra = v.get("additional_image_link", [])
    assert len(extra) <= 10
    for url in extra:
        check_url(url, 2000, comma=False)
    assert v["availability"] in ("in_stock", "out_of_stock", "preorder", "backorder")
    if v["availability"] in ("preorder", "backorder"):
        # ISO 8601 and at most one year after the build (tests' NOW: 2026-11-29T03:00:00Z).
        assert re.fullmatch(ISO, v["availability_date"])
        assert v["availability_date"] <= "2027-11-29T03:00:00Z"
    assert PRICE.match(v["price"]) and float(v["price"].split()[0]) > 0
    if "sale_price" in v:
        assert float(v["sale_price"].split()[0]) < float(v["price"].split()[0])
    if "sale_price_effective_date" in v:
        start, end = v["sale_price_effective_date"].split("/")
        assert INTERVAL.match(v["sale_price_effective_date"]) and start < end
        assert end > "2026-11-29T03:00:00Z"
    check_gtin(v.get("gtin"), google=True)
    assert len(v.get("brand", "")) <= 70 and len(v.get("mpn", "")) <= 70
    if "identifier_exists" in v:
        assert v["identifier_exists"] == "no" and "gtin" not in v
    assert len(v.get("item_group_id", "")) <= 50
    assert len(v.get("color", "")) <= 100 and len(v.get("size", "")) <= 100
    assert len(v.get("material", "")) <= 200 and len(v.get("pattern", "")) <= 100
    assert v.get("gender", "male") in ("male", "female", "unisex")
    assert v.get("age_group", "adult") in set(GOOGLE_AGE.values())
    assert v.get("size_system", "US") in SIZE_SYSTEMS
    assert len(v.get("product_type", "")) <= 750


@settings(max_examples=400, deadline=None)
@given(raw_rows(), st.booleans())
def test_google_xml_and_text_values_always_follow_googles_rules(p: FeedProduct, apparel: bool) -> None:
    opts = options(apparel=apparel)
    xml, tsv = publish("google", p, opts), publish("google_tsv", p, opts)
    assert xml.excluded == tsv.excluded and xml.reason == tsv.reason
    if xml.values is None or tsv.values is None:
        return
    check_google(xml.values)
    check_google(tsv.values)
    if apparel:
        assert all(k in xml.values for k in ("color", "size", "gender", "age_group"))
    # The text file reads back as the same text as the XML (quotes, commas and all), but for the
    # commas the text format encodes in links and its own spelling of shipping.
    same = {k for k in xml.values if k not in ("link", "mobile_link", "shipping")}
    assert {k: tsv.values.get(k) for k in same} == {k: xml.values[k] for k in same}
    assert set(tsv.values) == set(xml.values)
    for url in tsv.values.values():
        if isinstance(url, str) and url.startswith("http"):
            assert "," not in url


@settings(max_examples=400, deadline=None)
@given(raw_rows())
def test_meta_values_always_follow_metas_rules(p: FeedProduct) -> None:
    out = publish("meta", p)
    if out.values is None:
        return
    v = out.values
    check_text(v)
    assert 1 <= len(v["id"]) <= 100 and 1 <= len(v["title"]) <= 200
    assert 1 <= len(v["description"]) <= 9999 and plain(v["description"])
    check_url(v["link"], 2000)
    check_url(v["image_link"], 2000, comma=False)
    assert len(v.get("additional_image_link", "")) <= 2000
    for url in v.get("additional_image_link", "").split(",") if v.get("additional_image_link") else []:
        check_url(url, 2000, comma=False)
    assert v["availability"] in ("in stock", "out of stock", "preorder", "available for order",
                                 "discontinued")
    assert PRICE.match(v["price"])
    check_gtin(v.get("gtin"), google=False)
    assert v.get("brand") or v.get("gtin") or v.get("mpn")
    assert len(v.get("color", "")) <= 200 and len(v.get("size", "")) <= 200
    assert v.get("gender", "male") in ("male", "female", "unisex")
    assert v.get("age_group", "adult") in set(META_AGE.values())
    assert v.get("item_group_id") != v["id"]
    if p.group_varies is not None and v.get("item_group_id"):
        full, _, partial = p.group_varies.partition("|")
        assert full or any(v.get(a) for a in partial.split(",") if a), (p.group_varies, v)


@settings(max_examples=400, deadline=None)
@given(raw_rows())
def test_naver_values_always_follow_navers_rules(p: FeedProduct) -> None:
    out = publish("naver", p)
    if out.values is None:
        return
    v = out.values
    assert NAVER_ID.match(v["id"]) and 1 <= len(v["title"]) <= 100
    assert v["price_pc"].isdigit() and int(v["price_pc"]) >= 1
    if "normal_price" in v:
        assert int(v["normal_price"]) > int(v["price_pc"])
    for key in ("link", "mobile_link", "image_link"):
        if key in v:
            check_url(v[key], 255)
    for url in v.get("add_image_link", "").split("|") if v.get("add_image_link") else []:
        check_url(url, 255)
    for i in range(1, 5):
        assert len(v.get(f"category_name{i}", "")) <= 50
    assert "category_name1" in v
    assert re.fullmatch(r"[0-9]{8}", v.get("naver_category", "12345678"))
    if "barcode" in v:
        assert len(v["barcode"]) in (8, 13) and ean.is_valid(v["barcode"])
    assert -1 <= int(v["shipping"]) <= 1_000_000
    assert v.get("gender", "남성") in NAVER_GENDER.values()
    assert v.get("age_group", "성인") in NAVER_AGE.values()
    assert len(v.get("brand", "")) <= 60 and len(v.get("model_number", "")) <= 60
