"""Channel rules where the mutation run (docs/mutation.md) found no test looking, each asserted
against the rule as the channel module states it (CHANNELS.md, the platforms' pages)."""

from __future__ import annotations

import pytest

from tests.worker.feed.items import item, publish

NAVER = ("naver", "naver_summary")


@pytest.mark.parametrize("name", NAVER)
@pytest.mark.parametrize("cost", [None, ""])
def test_naver_names_a_missing_shipping_cost_as_missing(name: str, cost: str | None) -> None:
    # Shipping is required in the EP: the message tells the shop which field to map.
    out = publish(name, item(shipping_cost=cost))
    assert out.excluded and out.field == "shipping"
    assert out.reason == "shipping is missing (map the shop's shipping cost to shipping_cost)"
