"""All channels from one pass: outputs parsed back with a real XML parser and the csv module."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest

from tests.catalogs import WATERMARK, edge_catalog, insert_products
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import GOLDEN_OPTIONS, build, read_text
from worker.common.errors import ConfigError
from worker.feed.channels import get_channel, registry
from worker.feed.channels.google import FIELDS as GOOGLE_FIELDS
from worker.feed.channels.meta import FIELDS as META_FIELDS
from worker.feed.channels.naver import FIELDS as NAVER_FIELDS
from worker.feed.channels.naver_summary import SUMMARY_FIELDS

G = "{http://base.google.com/ns/1.0}"
ALL = ("google", "google_tsv", "meta", "naver", "naver_summary")


@pytest.fixture
def built(conn: psycopg.Connection, tmp_path: Path):  # type: ignore[no-untyped-def]
    make_shop(conn, id="shop-a", channels=list(ALL))
    insert_products(conn, "shop-a", edge_catalog())
    conn.execute(
        "INSERT INTO feed_publications (shop_id, channel, key, rows, bytes, sha256, data_as_of)"
        " VALUES ('shop-a', 'naver', 'k', 1, 1, 'x', %s)", (WATERMARK,),
    )
    conn.commit()
    result, rejects = build(conn, "shop-a", ALL, tmp_path / "all", options=GOLDEN_OPTIONS)
    return result, rejects, {f.channel.name: f for f in result.feeds}


def test_one_pass_reads_each_product_once_and_matches_each_channel_alone(
    conn: psycopg.Connection, tmp_path: Path, built  # type: ignore[no-untyped-def]
) -> None:
    result, _, feeds = built
    live_or_changed = len(edge_catalog()) - 1  # A-028 went before the watermark
    assert result.rows_in == live_or_changed
    for name in ALL:
        alone, _ = build(conn, "shop-a", [name], tmp_path / name, options=GOLDEN_OPTIONS)
        assert read_text(alone.feeds[0].path) == read_text(feeds[name].path), name


def test_google_xml_parses_and_holds_the_rules(built) -> None:  # type: ignore[no-untyped-def]
    _, rejects, feeds = built
    root = ET.fromstring(read_text(feeds["google"].path))  # noqa: S314 (our own output)
    assert root.tag == "rss" and root.get("version") == "2.0"
    items = {i.findtext(f"{G}id"): i for i in root.iter("item")}
    assert len(items) == feeds["google"].rows
    assert items["A-002"].findtext("title") == "Tom & Jerry <Deluxe> \"Edition\" '99"
    assert items["A-003"].findtext("title") == "Controlchars gone"
    assert items["A-004"].findtext("title") == "Emoji 🎉 party pack 👍🏽"
    assert items["A-005"].findtext("title") == "T" * 100 + " " + "U" * 49  # at the limit: kept
    assert len(items["A-006"].findtext("title") or "") <= 150
    assert len(items["A-006"].findtext("description") or "") <= 5000
    assert items["A-007"].findtext(f"{G}price") == "20.00 USD"
    assert items["A-007"].findtext(f"{G}sale_price") == "14.50 USD"
    assert items["A-008"].findtext(f"{G}price") == "12901 KRW"
    assert items["A-009"].findtext(f"{G}identifier_exists") == "no"
    assert items["A-010"].findtext(f"{G}identifier_exists") is None  # a GTIN is enough
    assert items["A-010"].findtext(f"{G}gtin") == "012345678905"
    assert items["A-011"].findtext(f"{G}availability") == "out_of_stock"
    assert items["A-012"].findtext(f"{G}availability_date") == "2027-01-15T09:30:00Z"
    assert len(items["A-014"].findall(f"{G}additional_image_link")) == 1
    assert len(items["A-015"].findall(f"{G}additional_image_link")) == 10
    assert items["A-022"].findtext(f"{G}image_link") == "https://cdn.example/images/shop-a/abc.jpg"
    # A processed image without a public address (no PUBLIC_BASE_URL) is not sent to a platform.
    assert items["A-031"].findtext(f"{G}image_link") == "https://shop.example/img/A-031.jpg"
    assert items["A-031"].findall(f"{G}additional_image_link") == []
    # A comma stays in an XML link (RFC 3986 allows it); the text feed and image URLs encode it.
    assert items["A-024"].findtext("link") == "https://shop.example/p/a,b?x=1&y=2"
    assert items["A-027"].findtext("description") == "Visible été text"
    # Issue 12's rules (catalog A-032…): variants, Hangul URLs, sale windows, GTINs, hosts.
    assert (items["A-032"].findtext(f"{G}gender"), items["A-032"].findtext(f"{G}size_system")) == (
        "male", "EU"
    )
    assert items["A-034"].findtext("link") == (
        "https://shop.example/%EC%83%81%ED%92%88/%EC%85%94%EC%B8%A0%201"
        "?%EC%83%89%EC%83%81=%EB%84%A4%EC%9D%B4%EB%B9%84"
    )
    assert items["A-035"].findtext(f"{G}sale_price_effective_date") == (
        "2026-11-25T00:00:00Z/2026-12-05T00:00:00Z"
    )
    assert items["A-037"].findtext(f"{G}gtin") is None  # restricted prefix 2
    assert items["A-038"].findtext(f"{G}gtin") is None  # wrong check digit
    assert items["A-007"].find(f"{G}shipping").findtext(f"{G}price") == "3.50 USD"  # type: ignore[union-attr]
    assert items["A-025"].find(f"{G}shipping") is None  # -1: paid on delivery
    assert rejects.ids("google") == {"A-013", "A-019", "A-020", "A-021", "A-039"}
    assert rejects.ids("google", "dropped") == {"A-025", "A-037", "A-038"}
    assert feeds["google"].rejected == {
        "availability_date is missing for availability preorder": 1,
        "description is missing": 1, "price is zero": 1,
        "link is not an http(s) URL": 1,
        "image_link host is a private address, which a platform cannot fetch": 1,
    }


def test_google_tsv_has_the_same_items_one_per_line(built) -> None:  # type: ignore[no-untyped-def]
    _, rejects, feeds = built
    lines = read_text(feeds["google_tsv"].path).splitlines()
    assert lines[0].split("\t") == list(GOOGLE_FIELDS)
    rows = [dict(zip(GOOGLE_FIELDS, line.split("\t"), strict=True)) for line in lines[1:]]
    assert len(rows) == feeds["google_tsv"].rows == feeds["google"].rows
    by_id = {r["id"]: r for r in rows}
    assert len(by_id["A-015"]["additional_image_link"].split(",")) == 10
    assert by_id["A-003"]["description"] == "tab here new line end"
    assert rejects.ids("google_tsv") == rejects.ids("google")


def test_meta_csv_parses_with_the_csv_module(built) -> None:  # type: ignore[no-untyped-def]
    _, rejects, feeds = built
    reader = csv.DictReader(io.StringIO(read_text(feeds["meta"].path), newline=""))
    assert reader.fieldnames == list(META_FIELDS)
    rows = {r["id"]: r for r in reader}
    assert len(rows) == feeds["meta"].rows
    assert rows["A-002"]["title"] == "Tom & Jerry <Deluxe> \"Edition\" '99"
    assert rows["A-011"]["availability"] == "out of stock"
    assert rows["A-024"]["availability"] == "available for order"
    assert rows["A-007"]["price"] == "20.00 USD"
    assert rows["A-001"]["description"] == "고음질 블루투스 5.3 지원"  # HTML and &nbsp; gone
    # A group id equal to a product id is renamed, for every row of that group.
    assert rows["A-016"]["item_group_id"] == "group-A-016"
    assert rows["A-017"]["item_group_id"] == "group-A-001"
    assert rows["A-018"]["item_group_id"] == "G-1"
    assert not {r["item_group_id"] for r in rows.values()} & set(rows)
    # The processed image is unfit for Meta: the shop's own image and extra images are used.
    assert rows["A-022"]["image_link"] == "https://shop.example/img/A-022.jpg"
    assert len(rows["A-022"]["additional_image_link"].split(",")) == 2
    assert rejects.ids("meta") == {"A-009", "A-019", "A-020", "A-021", "A-039"}
    assert (rows["A-032"]["color"], rows["A-033"]["color"]) == ("Navy", "White")
    assert rows["A-032"]["item_group_id"] == rows["A-033"]["item_group_id"] == "SHIRT"
    assert rows["A-037"]["gtin"] == "2000000000015"  # Meta has no prefix rule
    assert rows["A-036"]["sale_price_effective_date"] == "2026-12-10T00:00:00Z/2026-12-20T00:00:00Z"
    assert rows["A-001"]["shipping"] == "KR::Standard:0 KRW"
    assert feeds["meta"].rejected["none of brand, gtin, mpn is given"] == 1


def test_naver_ep_columns_prices_and_exclusions(built) -> None:  # type: ignore[no-untyped-def]
    _, rejects, feeds = built
    lines = read_text(feeds["naver"].path).split("\n")
    assert lines[-1] == ""
    assert lines[0].split("\t") == list(NAVER_FIELDS)
    rows = {}
    for line in lines[1:-1]:
        values = line.split("\t")
        assert len(values) == len(NAVER_FIELDS)
        rows[values[0]] = dict(zip(NAVER_FIELDS, values, strict=True))
    assert len(rows) == feeds["naver"].rows
    assert rows["A-008"]["price_pc"] == "9900" and rows["A-008"]["normal_price"] == "12901"
    assert rows["A-001"]["normal_price"] == ""  # equal to the price: left out
    assert rows["A-001"]["category_name1"] == "디지털" and rows["A-001"]["category_name3"] == "이어폰"
    assert rows["A-024"]["condition"] == "리퍼"
    assert len(rows["A-015"]["add_image_link"].split("|")) == 10
    assert all(r["shipping"].lstrip("-").isdigit() for r in rows.values())
    # Sold out: left out by policy and counted, not rejected.
    assert "A-011" not in rows and "A-025" not in rows and feeds["naver"].excluded == 2
    assert rejects.ids("naver") == {"A-007", "A-020", "A-021", "A-023", "A-026", "A-039",
                                    "상품-040"}
    assert (rows["A-035"]["price_pc"], rows["A-035"]["normal_price"]) == ("9900", "12900")
    assert (rows["A-036"]["price_pc"], rows["A-036"]["normal_price"]) == ("12900", "")
    assert rows["A-037"]["barcode"] == "2000000000015" and rows["A-038"]["barcode"] == ""
    assert rows["A-010"]["barcode"] == "0012345678905"  # UPC-A with its leading 0
    assert rows["A-032"]["group_id"] == "SHIRT" and rows["A-032"]["gender"] == "남성"


def test_naver_summary_holds_only_what_changed(built) -> None:  # type: ignore[no-untyped-def]
    _, rejects, feeds = built
    lines = read_text(feeds["naver_summary"].path).splitlines()
    assert lines[0].split("\t") == list(SUMMARY_FIELDS)
    rows = {}
    for line in lines[1:]:
        values = line.split("\t")
        assert len(values) == len(SUMMARY_FIELDS)
        rows[values[0]] = dict(zip(SUMMARY_FIELDS, values, strict=True))
    assert {k: v["class"] for k, v in rows.items()} == {
        "A-001": "I", "A-011": "D", "A-029": "D", "A-030": "U"
    }
    assert rows["A-030"]["price_pc"] == "15000"
    assert rows["A-001"]["update_time"] == "2026-11-20 12:00:00"  # Korean time
    assert rejects.ids("naver_summary") == {"A-007", "A-023"}


def test_an_unknown_channel_is_a_config_error_naming_the_shop() -> None:
    with pytest.raises(ConfigError, match=r"shop s1: channel 'tiktok'.*known: google"):
        get_channel("tiktok", shop_id="s1")
    assert set(registry()) == set(ALL)
