"""GTINs: GS1 check digit and lengths on every channel, Google's restricted prefixes and
identifier_exists, Naver's GTIN-13/GTIN-8 barcode; a wrong GTIN is dropped, never the item."""

from __future__ import annotations

import pytest
from stdnum import ean

from tests.worker.feed.items import XML_AND_TEXT, item, publish
from worker.feed.rules import gtin13_or_8, normalise_gtin, restricted_gtin


def gtin(body: str) -> str:
    """``body`` completed with its GS1 check digit."""
    return body + ean.calc_check_digit(body)


def wrong(code: str) -> str:
    """``code`` with its check digit off by one."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def test_gtin_normalisation_keeps_valid_codes_and_names_what_is_wrong() -> None:
    assert normalise_gtin("4006381333931") == ("4006381333931", None)
    assert normalise_gtin(" 0 12345-67890 5 ") == ("012345678905", None)
    assert normalise_gtin("96385074") == ("96385074", None)
    assert normalise_gtin(gtin("1001234567890")) == (gtin("1001234567890"), None)
    assert normalise_gtin(None) == ("", None) and normalise_gtin(" - ") == ("", None)
    assert normalise_gtin("4006381333932")[1] == "gtin check digit is wrong"
    assert "digits" in (normalise_gtin("4006381333")[1] or "")  # 10 digits
    assert "characters" in (normalise_gtin("40063813339A1")[1] or "")
    assert "characters" in (normalise_gtin("４００６３８１３３３９３１")[1] or "")  # full-width
    assert normalise_gtin("0000000000000")[1] == "gtin is all zeros"


@pytest.mark.parametrize(
    ("code", "restricted"),
    [
        (gtin("020000000001"), True), (gtin("029999999999"), True),
        (gtin("040000000001"), True), (gtin("049999999999"), True),
        (gtin("200000000001"), True), (gtin("299999999999"), True),
        (gtin("050000000001"), True), (gtin("059999999999"), True),  # coupons 05
        (gtin("980000000001"), True), (gtin("990000000001"), True),  # coupons 98, 99
        (gtin("019999999999"), False), (gtin("030000000001"), False),
        (gtin("039999999999"), False), (gtin("060000000001"), False),
        (gtin("199999999999"), False), (gtin("300000000001"), False),
        (gtin("970000000001"), False), (gtin("880123456789"), False),
        (gtin("20000000001"), True),  # UPC-A number system 2 → GTIN-13 02…
        (gtin("40000000001"), True), (gtin("50000000001"), True),
        (gtin("10000000001"), False),
        (gtin("1020000000001"), True),  # GTIN-14: the GTIN-13 behind the indicator
        (gtin("1880123456789"), False),
        (gtin("9638507"), False), (gtin("0123456"), True), (gtin("2123456"), True),  # GTIN-8
        (gtin("9812345"), True), (gtin("5012345"), False),
    ],
)
def test_restricted_circulation_and_coupon_prefixes(code: str, restricted: bool) -> None:
    assert normalise_gtin(code) == (code, None)
    assert restricted_gtin(code) is restricted


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_sends_valid_gtins_and_drops_restricted_and_wrong_ones(name: str) -> None:
    code = gtin("880123456789")
    ok = publish(name, item(gtin=f"{code[:3]}-{code[3:7]} {code[7:]}"))
    assert ok.values is not None and ok.values["gtin"] == code
    assert "identifier_exists" not in ok.values
    for bad, reason in ((gtin("200000000001"), "restricted"), (wrong(gtin("880123456789")),
                                                               "check digit")):
        # With brand and MPN the item keeps its identifiers: no identifier_exists.
        out = publish(name, item(gtin=bad))
        assert out.values is not None and "gtin" not in out.values
        assert "identifier_exists" not in out.values
        assert [d.field for d in out.dropped] == ["gtin"] and reason in out.dropped[0].reason
        # Without brand and MPN: identifier_exists no (answer/6324478).
        bare = publish(name, item(gtin=bad, brand=None, mpn=None))
        assert bare.values is not None and bare.values["identifier_exists"] == "no"
        assert "gtin" not in bare.values


def test_meta_drops_a_wrong_gtin_and_keeps_the_item() -> None:
    out = publish("meta", item(gtin=wrong(gtin("880123456789"))))
    assert out.values is not None and "gtin" not in out.values
    assert out.dropped_fields() == {"gtin"}
    good = publish("meta", item(gtin=gtin("880123456789")))
    assert good.values is not None and good.values["gtin"] == gtin("880123456789")
    # Meta needs one of brand / gtin / mpn: a wrong GTIN does not count as one.
    assert publish("meta", item(gtin="12345", brand=None, mpn=None)).excluded


@pytest.mark.parametrize("name", ["naver", "naver_summary"])
@pytest.mark.parametrize(
    ("given", "barcode"),
    [
        (gtin("880123456789"), gtin("880123456789")),  # GTIN-13 as it is
        ("96385074", "96385074"),  # GTIN-8 as it is
        ("012345678905", "0012345678905"),  # UPC-A takes a leading 0
        (gtin("0880123456789"), gtin("880123456789")),  # GTIN-14 with indicator 0 → GTIN-13
        (gtin("1880123456789"), ""),  # a trade unit's GTIN-14: left out
        (wrong(gtin("880123456789")), ""),
    ],
)
def test_naver_barcode_is_gtin_13_or_gtin_8(name: str, given: str, barcode: str) -> None:
    out = publish(name, item(gtin=given))
    assert out.values is not None
    assert out.values.get("barcode", "") == barcode
    if barcode:
        assert len(barcode) in (8, 13) and ean.is_valid(barcode) and not out.dropped
    else:
        assert out.dropped_fields() == {"gtin"} or out.dropped_fields() == {"barcode"}


def test_gtin13_or_8_keeps_the_check_digit_valid() -> None:
    for code in ("012345678905", gtin("0880123456789"), "4006381333931", "96385074"):
        converted, problem = gtin13_or_8(code)
        assert problem is None and ean.is_valid(converted) and len(converted) in (8, 13)
