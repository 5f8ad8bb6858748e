"""Shop ids are matched in full: a trailing newline (which "$" accepts) or any padding is refused."""

from __future__ import annotations

import pytest

from submitter.shopfile import parse_shop
from worker.common.errors import ConfigError
from worker.common.settings import Settings
from worker.common.shops import is_shop_id

GOOD = {"name": "Shop", "source_url": "https://shop.example/feed.json", "format": "json",
        "currency": "KRW", "channels": ["google"]}


@pytest.mark.parametrize("value", ["a", "shop-1", "A_b-9", "x" * 64])
def test_a_valid_id_passes(value: str) -> None:
    assert is_shop_id(value)


@pytest.mark.parametrize(
    "value", ["shop\n", "shop\r\n", " shop", "shop ", "-shop", "_shop", "x" * 65, "", "a/b", 7, None]
)
def test_anything_else_is_refused(value: object) -> None:
    assert not is_shop_id(value)


def test_a_shop_file_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"id 'shop\\n' is invalid"):
        parse_shop({"id": "shop\n", **GOOD}, "shops.json")


def test_the_environment_s_shop_ids_are_checked_in_full() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": "postgresql://x@h/d", "SHOP_ID": "a.b",
                           "SHOP_IDS": "ok,no way"})
    assert "SHOP_ID='a.b' is not a shop id" in str(caught.value)
    assert "SHOP_IDS entry 1 ('no way') is not a shop id" in str(caught.value)
