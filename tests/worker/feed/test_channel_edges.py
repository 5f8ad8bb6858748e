"""Channel rules where the mutation run (docs/mutation.md) found no test looking, each asserted
against the rule as the channel module states it (CHANNELS.md, the platforms' pages)."""

from __future__ import annotations

from datetime import date

import pytest

from tests.worker.feed.items import XML_AND_TEXT, item, options, publish
from worker.feed.channels import get_channel
from worker.feed.channels.base import ImageSize

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


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_image_sizes_before_and_from_the_500_pixel_date(name: str) -> None:
    # answer/6324350: at least 100 × 100 (apparel 250 × 250); every image at least 500 × 500
    # from 2027-01-31 on.
    channel = type(get_channel(name, options=options()))
    day_before, day = date(2027, 1, 30), date(2027, 1, 31)
    assert channel.image_size(apparel=False, on=day_before) == ImageSize(100, 100)
    assert channel.image_size(apparel=True, on=day_before) == ImageSize(250, 250)
    assert channel.image_size(apparel=False, on=day) == ImageSize(500, 500)
    assert channel.image_size(apparel=True, on=day) == ImageSize(500, 500)


def test_a_meta_item_lacking_several_attributes_its_group_varies_by_names_them_all() -> None:
    # group_varies "full|partial": no attribute tells every item apart, color and size only some.
    out = publish("meta", item(item_group_id="G1", group_varies="|color,size"))
    assert out.excluded and out.field == "color"
    assert out.reason == "item lacks color, size, which differs within its item_group_id"
    assert publish("meta", item(item_group_id="G1", group_varies="|color,size",
                                size="M")).values is not None
