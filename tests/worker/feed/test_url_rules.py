"""URLs on every channel: IRI → URI, IDNA hosts, hosts a platform cannot reach, encoded length.

Each rule against what the published rule says (RFC 3986's character set, Google answer/6324350
and 6324416, Naver's 255 characters), on the XML and the text writers where both exist.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.worker.feed.items import ALL, XML_AND_TEXT, item, options, publish
from worker.feed.rules import UrlProblem, normalise_url, publishable_url, unreachable_host

# RFC 3986 appendix A: the characters a URI may hold (percent-escapes well formed).
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9\-._~!$&'()*+,;=:@/?#%\[\]]+\Z")
ESCAPES_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_uri(url: str) -> bool:
    return bool(URI.match(url)) and not ESCAPES_OK.search(url)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Hangul path and file name: UTF-8 percent-escapes (RFC 3987 §3.1).
        ("https://shop.example/상품/셔츠 1.jpg",
         "https://shop.example/%EC%83%81%ED%92%88/%EC%85%94%EC%B8%A0%201.jpg"),
        # An internationalised host: IDNA.
        ("https://한국.example/p", "https://xn--3e0b707e.example/p"),
        ("https://bücher.example/a", "https://xn--bcher-kva.example/a"),
        # Existing escapes stay single; a lone % is a character of its own.
        ("https://shop.example/a%20b%2Fc", "https://shop.example/a%20b%2Fc"),
        ("https://shop.example/100%/off", "https://shop.example/100%25/off"),
        # Query and fragment: non-ASCII and spaces encoded, delimiters kept.
        ("https://shop.example/s?q=셔츠 L&x=1#상세",
         "https://shop.example/s?q=%EC%85%94%EC%B8%A0%20L&x=1#%EC%83%81%EC%84%B8"),
        ("HTTPS://Shop.Example:8443", "https://shop.example:8443/"),
        ('https://shop.example/a"<b>|{c}', "https://shop.example/a%22%3Cb%3E%7C%7Bc%7D"),
    ],
)
def test_iris_become_rfc_3986_uris(given: str, expected: str) -> None:
    assert normalise_url(given) == expected
    assert is_uri(expected)
    assert normalise_url(expected) == expected  # idempotent: never encoded twice


@pytest.mark.parametrize(
    "bad",
    ["ftp://shop.example/a", "javascript:alert(1)", "//shop.example/a", "/p/1", "shop.example/p",
     "https://user:pw@shop.example/", "https://", "https://[::1/", "https://shop.example:99999/",
     "https://sh op.example/", "https://999.1.1.1.1/", "http://[fe80::1%25eth0]/"],
)
def test_only_absolute_http_urls_with_a_host_pass(bad: str) -> None:
    with pytest.raises(UrlProblem):
        normalise_url(bad)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.5", "169.254.169.254", "0.0.0.0",
     "localhost", "LOCALHOST.", "shop.localhost", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1]",
     "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1"],
)
def test_hosts_a_platform_cannot_fetch_are_refused(host: str) -> None:
    url = normalise_url(f"http://{host}/img.jpg")
    assert unreachable_host(url) is not None
    with pytest.raises(UrlProblem, match="cannot fetch"):
        publishable_url(url, limit=2000)


def test_the_deployments_allowed_networks_are_published() -> None:
    allow = (ipaddress.ip_network("127.0.0.0/8"),)
    assert unreachable_host("http://127.0.0.1:8080/a.jpg", allow) is None
    assert unreachable_host("http://localhost/a.jpg", allow) is None
    assert unreachable_host("http://10.0.0.1/a.jpg", allow) is not None
    assert unreachable_host("https://shop.example/a.jpg") is None
    assert unreachable_host("https://8.8.8.8/a.jpg") is None


@pytest.mark.parametrize("name", ALL)
def test_every_channel_publishes_hangul_urls_encoded(name: str) -> None:
    out = publish(name, item(link="https://shop.example/상품/1",
                             image_link="https://shop.example/이미지 1.jpg",
                             additional_image_links=["https://shop.example/추가.jpg"]))
    assert out.values is not None
    for key in ("link", "image_link"):
        assert is_uri(out.values[key]), out.values[key]
    assert out.values["link"] == "https://shop.example/%EC%83%81%ED%92%88/1"
    extra = out.values.get("additional_image_link") or out.values.get("add_image_link")
    extra = extra if isinstance(extra, list) else extra.split("|" if name.startswith("naver") else ",")
    assert extra == ["https://shop.example/%EC%B6%94%EA%B0%80.jpg"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("field", ["link", "image_link"])
def test_a_required_url_on_a_private_host_excludes_the_item_with_the_reason(
    name: str, field: str
) -> None:
    out = publish(name, item(**{field: "http://169.254.169.254/latest/meta-data"}))
    assert out.excluded and out.field == field
    assert "link-local" in (out.reason or "") and "cannot fetch" in (out.reason or "")
    allowed = publish(name, item(**{field: "http://127.0.0.1:8000/p"}),
                      options(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),)))
    assert allowed.values is not None and allowed.values[field] == "http://127.0.0.1:8000/p"


@pytest.mark.parametrize("name", ALL)
def test_a_bad_optional_url_is_dropped_and_the_item_stays(name: str) -> None:
    out = publish(name, item(mobile_link="http://localhost/m",
                             additional_image_links=["http://10.0.0.1/x.jpg",
                                                     "https://shop.example/ok.jpg"]))
    assert out.values is not None and "mobile_link" not in out.values
    if name != "meta":  # Meta's file has no mobile_link column
        assert "mobile_link" in out.dropped_fields()
    extra = out.values.get("additional_image_link") or out.values.get("add_image_link")
    assert "10.0.0.1" not in str(extra) and "ok.jpg" in str(extra)


def padded(total: int, prefix: str = "https://shop.example/") -> str:
    """A URL of exactly ``total`` characters once encoded (its tail is one Hangul syllable = 9)."""
    head = total - len(prefix) - 9
    return prefix + "a" * head + "상"


@pytest.mark.parametrize("name", XML_AND_TEXT)
@pytest.mark.parametrize("field", ["link", "image_link"])
def test_google_url_limit_is_2000_encoded_characters(name: str, field: str) -> None:
    at = publish(name, item(**{field: padded(2000)}))
    assert at.values is not None and len(at.values[field]) == 2000
    over = publish(name, item(**{field: padded(2001)}))
    assert over.excluded and over.field == field and "2000" in (over.reason or "")


@pytest.mark.parametrize("name", ["naver", "naver_summary"])
@pytest.mark.parametrize("field", ["link", "image_link"])
def test_naver_url_limit_is_255_encoded_characters(name: str, field: str) -> None:
    at = publish(name, item(**{field: padded(255)}))
    assert at.values is not None and len(at.values[field]) == 255
    over = publish(name, item(**{field: padded(256)}))
    assert over.excluded and over.field == field and "255" in (over.reason or "")


def test_google_encodes_commas_in_image_urls_and_in_the_text_feed() -> None:
    p = item(link="https://shop.example/p/a,b", image_link="https://shop.example/i/a,b.jpg",
             additional_image_links=["https://shop.example/i/c,d.jpg"])
    xml, tsv = publish("google", p).values, publish("google_tsv", p).values
    assert xml is not None and tsv is not None
    assert xml["image_link"] == tsv["image_link"] == "https://shop.example/i/a%2Cb.jpg"
    assert xml["additional_image_link"] == tsv["additional_image_link"] == [
        "https://shop.example/i/c%2Cd.jpg"
    ]
    assert tsv["link"] == "https://shop.example/p/a%2Cb"
    assert xml["link"] == "https://shop.example/p/a,b"  # RFC 3986 allows it; the XML splits nothing


plain_parts = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=:@/%?#ÿ한 ", max_size=30)


@given(st.sampled_from(["http", "https", "HTTP"]),
       st.sampled_from(["shop.example", "a-b.c0.example", "x.localhost", "1.2.3.4", "127.0.0.0x1",
                        "a.0x7f", "-a.example", "a.example-", "xn--3e0b707e.kr", "a..b"]),
       plain_parts)
def test_the_plain_url_shortcut_gives_what_the_full_parse_gives(
    scheme: str, host: str, rest: str
) -> None:
    url = f"{scheme}://{host}/{rest}"
    try:
        slow: str | Exception = normalise_url(url, fast=False)
    except UrlProblem as problem:
        slow = problem
    try:
        fast: str | Exception = normalise_url(url)
    except UrlProblem as problem:
        fast = problem
    assert type(fast) is type(slow) and str(fast) == str(slow)
    for limit in (2000, 20):
        try:
            published = publishable_url(url, limit=limit)
        except UrlProblem as problem:
            published = f"problem: {problem.reason}"
        if isinstance(slow, str):
            reason = unreachable_host(slow)
            expected = (f"problem: {reason}" if reason and len(slow) <= limit else
                        slow if len(slow) <= limit else published)
            assert published == expected


def test_reasons_name_the_rule_not_the_value_so_that_they_can_be_counted() -> None:
    reasons: dict[str, set[str]] = {name: set() for name in ALL}
    for i in range(30):
        p = item(product_id=f"P{i}", link=f"http://10.0.{i}.1/p", gender=f"g{i}",
                 gtin="1" * (i % 7 + 1), mobile_link=f"gopher{i}://x/",
                 additional_image_links=[f"http://[::ffff:10.0.0.{i}]/x.jpg",
                                         "https://shop.example/" + "a" * (2000 + i)])
        for name in ALL:
            out = publish(name, p)
            reasons[name] |= {out.reason or ""} | {d.reason for d in out.dropped}
            out = publish(name, p._replace(link="https://shop.example/ok"))
            reasons[name] |= {out.reason or ""} | {d.reason for d in out.dropped}
    for name, found in reasons.items():
        assert len(found) <= 8, (name, found)
