"""A shop file's country: given, derived from a one-country currency, or refused with its value."""

from __future__ import annotations

import pytest

from submitter.shopfile import parse_shop
from worker.common.errors import ConfigError
from worker.common.shops import load_shop, upsert_shops

BASE = {"id": "s", "name": "S", "source_url": "https://shop.example/c.json", "format": "json",
        "channels": ["google"], "mapping": {"product_id": "id", "title": "name", "link": "url",
                                             "price": "price"}}


def test_a_won_shop_ships_to_korea_unless_it_says_otherwise() -> None:
    assert parse_shop({**BASE, "currency": "KRW"}, "t").country == "KR"
    assert parse_shop({**BASE, "currency": "KRW", "country": "jp"}, "t").country == "JP"


def test_a_euro_shop_has_no_country_until_it_names_one() -> None:
    assert parse_shop({**BASE, "currency": "EUR"}, "t").country is None
    assert parse_shop({**BASE, "currency": "EUR", "country": "DE"}, "t").country == "DE"


@pytest.mark.parametrize("bad", ["KOR", "K", "", 82, "K1"])
def test_a_country_that_is_not_two_letters_is_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"country .* is not an ISO 3166-1 alpha-2 code"):
        parse_shop({**BASE, "currency": "KRW", "country": bad}, "t")


def test_the_country_is_stored_and_loaded(conn) -> None:  # type: ignore[no-untyped-def]
    upsert_shops(conn, [parse_shop({**BASE, "currency": "EUR", "country": "FR"}, "t")])
    shop = load_shop(conn, "s")
    assert shop is not None and shop.country == "FR"
