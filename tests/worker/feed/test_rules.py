"""The channels' shared rules, as pure functions, tested by example and by the thousand."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.common.errors import RejectedRecord
from worker.feed.channels.meta import csv_row
from worker.feed.product import FeedProduct, normalise
from worker.feed.publish import gate_problem
from worker.feed.rules import (
    check_id,
    clean_text,
    format_price,
    is_clean,
    strip_forbidden,
    strip_html,
    trim_at_word,
    tsv_field,
    xml_escape,
)

any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)


@given(any_text)
def test_any_cleaned_escaped_text_is_well_formed_xml_and_round_trips(text: str) -> None:
    cleaned = clean_text(text)
    element = ET.fromstring(f"<v>{xml_escape(cleaned)}</v>")  # noqa: S314 (our own output)
    assert (element.text or "") == cleaned
    assert "\t" not in cleaned and "\n" not in cleaned and cleaned == cleaned.strip()


@given(any_text)
def test_cleaned_html_text_is_well_formed_xml(text: str) -> None:
    cleaned = clean_text(text, html=True)
    ET.fromstring(f"<v>{xml_escape(cleaned)}</v>")  # noqa: S314 (our own output)


@given(any_text, any_text, any_text)
def test_normalise_leaves_every_text_field_clean(title: str, description: str, brand: str) -> None:
    row: list[str | None] = [None] * len(FeedProduct._fields)
    row[FeedProduct._fields.index("title")] = title
    row[FeedProduct._fields.index("description")] = description
    row[FeedProduct._fields.index("brand")] = brand
    p = normalise(row)
    assert p.title == clean_text(title) and p.brand == clean_text(brand)
    assert p.description == clean_text(description, html=True)
    for value in (p.title, p.description, p.brand):
        assert value is None or is_clean(value)


def test_forbidden_characters_go_and_the_rest_stays() -> None:
    assert strip_forbidden("a\x00b\x01c\x08d\x0be\x0cf\x1fg\x7fh\x85i\ufffej\uffffk") == "abcdefghijk"
    assert strip_forbidden("tab\tlf\ncr\r 한글 🎉 é") == "tab\tlf\ncr\r 한글 🎉 é"
    assert strip_forbidden("lone \ud800 surrogate") == "lone  surrogate"


def test_html_is_stripped_with_entities_decoded() -> None:
    assert one(strip_html("<p>Hello <b>bold</b>&nbsp;&amp; world</p>")) == "Hello bold & world"
    assert one(strip_html("<script>evil()</script>ok<style>p{}</style><!-- x -->")) == "ok"
    assert clean_text("a &#1; b", html=True) == "a b"  # an entity may decode to a control
    # Plain text that merely holds "<" is kept.
    assert one(strip_html("1 < 2 and 3 > 2")) == "1 < 2 and 3 > 2"


def test_encoded_markup_and_entities_are_decoded_until_none_is_left() -> None:
    assert clean_text("&lt;b&gt;bold&lt;/b&gt; &amp;eacute;t&amp;eacute;", html=True) == "bold été"
    assert clean_text("AT&amp;amp;amp;T", html=True) == "AT&T"
    assert clean_text("&am&#1;p;lt;b&am\x01p;gt;x", html=True) == "x"


def test_titles_are_text_not_html() -> None:
    assert clean_text("Tom & Jerry <Deluxe>") == "Tom & Jerry <Deluxe>"


def one(text: str) -> str:
    return " ".join(text.split())


@given(st.text(alphabet="ab cd한", max_size=200), st.integers(min_value=1, max_value=150))
def test_trim_at_word_is_a_prefix_within_the_limit(text: str, limit: int) -> None:
    trimmed = trim_at_word(text, limit)
    assert len(trimmed) <= limit
    assert text.startswith(trimmed)
    if len(text) <= limit:
        assert trimmed == text


def test_trim_at_word_cuts_at_a_space_when_one_is_near() -> None:
    assert trim_at_word("alpha beta gamma", 12) == "alpha beta"
    # No space in the last fifth: cut at the limit rather than lose most of the text.
    assert trim_at_word("가나다라마바사아자차카타파하", 10) == "가나다라마바사아자차"
    assert trim_at_word("exactly ten", 11) == "exactly ten"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("15", "USD", "15.00 USD"),
        ("19.995", "USD", "20.00 USD"),
        ("12900", "KRW", "12900 KRW"),
        ("12900.5", "KRW", "12901 KRW"),
        ("4999", "JPY", "4999 JPY"),
        ("1.2345", "KWD", "1.235 KWD"),
        ("1234567.5", "EUR", "1234567.50 EUR"),  # no grouping, "." always
    ],
)
def test_prices_use_the_currency_decimals_never_the_locale(
    amount: str, currency: str, expected: str
) -> None:
    assert format_price(Decimal(amount), currency) == expected


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x1f\x00"),
                       max_size=40), min_size=1, max_size=5))
def test_csv_rows_round_trip_through_the_csv_module(values: list[str]) -> None:
    line = csv_row([*values, "x y", ""])
    assert next(csv.reader(io.StringIO(line, newline=""))) == [*values, "x y", ""]


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60))
def test_is_clean_says_exactly_when_clean_text_would_change_nothing(text: str) -> None:
    assert is_clean(text) == (clean_text(text) == text)


def test_ids_are_refused_not_trimmed() -> None:
    assert check_id("A-1", 50) == "A-1"
    with pytest.raises(RejectedRecord, match="whitespace"):
        check_id(" A-1 ", 50)  # trimmed it could collide with "A-1"
    with pytest.raises(RejectedRecord) as info:
        check_id("x" * 51, 50)
    assert info.value.field == "id" and "50" in info.value.reason
    with pytest.raises(RejectedRecord):
        check_id("a\tb", 50)


@pytest.mark.parametrize(
    ("previous", "rows", "share", "refused"),
    [
        (None, 0, 0.3, False),  # nothing published yet
        (0, 0, 0.3, False),
        (100, 70, 0.3, False),  # exactly the share: allowed
        (100, 69, 0.3, True),
        (100, 0, 0.3, True),
        (100, 150, 0.3, False),  # growth is never refused
        (100, 99, 0.0, True),
    ],
)
def test_publish_gate(previous: int | None, rows: int, share: float, refused: bool) -> None:
    problem = gate_problem(previous, rows, share)
    assert (problem is not None) == refused
    if problem:
        assert str(rows) in problem and str(previous) in problem


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
                        max_size=30), min_size=1, max_size=5))
def test_tsv_fields_read_back_through_a_quote_aware_reader(values: list[str]) -> None:
    """Google's text feed: a value starting with '"' or holding a tab or line break survives."""
    line = "\t".join(tsv_field(v) for v in [*values, '"x" y', "a\tb", "c\nd"]) + "\n"
    row = next(csv.reader(io.StringIO(line, newline=""), delimiter="\t"))
    assert row == [*values, '"x" y', "a\tb", "c\nd"]
    assert tsv_field("plain") == "plain" and tsv_field('mid "quote"') == 'mid "quote"'
