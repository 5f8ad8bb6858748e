"""Channel rules where the mutation run (docs/mutation.md) found no test looking, each asserted
against the rule as the channel module states it (CHANNELS.md, the platforms' pages)."""

from __future__ import annotations

import pytest

from tests.worker.feed.items import XML_AND_TEXT, item, options, publish

NAVER = ("naver", "naver_summary")


@pytest.mark.parametrize("name", NAVER)
@pytest.mark.parametrize("cost", [None, ""])
def test_naver_names_a_missing_shipping_cost_as_missing(name: str, cost: str | None) -> None:
    # Shipping is required in the EP: the message tells the shop which field to map.
    out = publish(name, item(shipping_cost=cost))
    assert out.excluded and out.field == "shipping"
    assert out.reason == "shipping is missing (map the shop's shipping cost to shipping_cost)"


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_a_google_apparel_item_missing_several_attributes_names_them_all(name: str) -> None:
    # Google requires color, size, gender and age_group for apparel (answer/6324507): every one
    # missing is named, in that order, and the field is the first of them.
    out = publish(name, item(size="M", gender="male"), options(apparel=True))
    assert out.excluded and out.field == "color"
    assert out.reason == ("apparel item without color, age_group (Google requires color, size, "
                          "gender and age_group for apparel)")
