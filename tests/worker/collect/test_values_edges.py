"""Value parsers' rules where the mutation run (docs/mutation.md) found no test looking."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.collect.values import ParseFailure, parse_price


def test_only_a_currency_may_stand_before_a_minus_sign() -> None:
    assert parse_price("₩-5") == Decimal(-5)
    assert parse_price("KRW -1,000") == Decimal(-1000)
    for text in ("=-5", "#-5", "₩=-5"):
        with pytest.raises(ValueError, match="more than a currency around the number"):
            parse_price(text)


def test_a_parse_failure_shows_its_value_and_reason() -> None:
    # What a log line or a debugger shows of a value the parser could not read.
    assert repr(ParseFailure("12,9.0", "not a price")) == "ParseFailure('12,9.0', 'not a price')"
