"""Value parsers: prices, decimals, whole numbers and ISO 8601 moments as shops write them.

Pure functions shared by the mapping language (its ``parse`` transforms) and validation (which
reads what a mapping left as text). Each raises ``ValueError`` saying why a value is unreadable;
``ParseFailure`` carries such a reason from a mapping to validation, which rejects the record.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Words, spaces and currency signs may surround the number ("KRW 3,700", "12,900원", "$15");
# the number itself is digits with group and decimal separators.
_PRICE = re.compile(r"^(\D*?)(\d(?:[\d.,'\s]*\d)?)(\D*)$")
_GROUP_SPACES = re.compile(r"['\s]")
_PLAIN = re.compile(r"^\d+(\.\d+)?$")


class ParseFailure:
    """A value a ``parse`` transform could not read; validation rejects the record with it."""

    __slots__ = ("reason", "value")

    def __init__(self, value: Any, reason: str) -> None:
        self.value = value
        self.reason = reason

    def __repr__(self) -> str:
        return f"ParseFailure({self.value!r}, {self.reason!r})"


def _around_ok(text: str) -> bool:
    return all(c.isalpha() or c.isspace() or c == "." or unicodedata.category(c) == "Sc"
               for c in text)


def parse_price(value: Any, *, decimal_separator: str | None = None,
                zero_decimal: bool = False) -> Decimal:
    """A price as a Decimal: ``12,900원`` → 12900, ``1.234,56 €`` → 1234.56, ``15.00`` → 15.00.

    Currency symbols, codes and words around the number are ignored; spaces and apostrophes
    inside it group digits. With one kind of separator, a comma followed by exactly three digits
    groups thousands; so does a dot in a zero-decimal currency (``zero_decimal``: KRW, JPY …).
    ``decimal_separator`` settles the rest. Raises ``ValueError`` with the reason otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a price")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a price")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # A float can only come from a caller outside the formats (which read Decimals); its
        # shortest repr is the number the source wrote.
        return parse_price(repr(value), decimal_separator=".")
    if not isinstance(value, str):
        raise ValueError(f"a {type(value).__name__} is not a price")
    match = _PRICE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not one number with an optional currency")
    before, number, after = match.groups()
    negative = before.rstrip().endswith("-")
    if negative:
        before = before.rstrip()[:-1]
    if not _around_ok(before) or not _around_ok(after):
        raise ValueError(f"{value!r} has more than a currency around the number")
    digits = _GROUP_SPACES.sub("", number)
    if decimal_separator is not None:
        thousands = "." if decimal_separator == "," else ","
        digits = digits.replace(thousands, "").replace(decimal_separator, ".")
    else:
        comma, dot = digits.rfind(","), digits.rfind(".")
        if comma >= 0 and dot >= 0:
            decimal_mark = "," if comma > dot else "."
            other = "." if decimal_mark == "," else ","
            digits = digits.replace(other, "").replace(decimal_mark, ".")
        elif comma >= 0:
            groups = digits.split(",")
            if len(groups) == 2 and len(groups[1]) != 3:
                digits = digits.replace(",", ".")
            else:
                digits = digits.replace(",", "")
        elif dot >= 0:
            groups = digits.split(".")
            if len(groups) > 2 or (zero_decimal and len(groups[1]) == 3):
                digits = digits.replace(".", "")
    if not _PLAIN.match(digits):
        raise ValueError(f"{value!r} is not a price this parser can read")
    amount = Decimal(digits)
    return -amount if negative else amount


def parse_decimal(value: Any, *, decimal_separator: str | None = None) -> Decimal:
    """A plain decimal number: the point is ``.`` unless ``decimal_separator`` says ``,``."""
    return parse_price(value, decimal_separator=decimal_separator or ".")


def parse_integer(value: Any) -> int:
    """A whole number (``"12"``, ``"1,200"``, ``12.0``); ``ValueError`` for ``12.5``."""
    amount = parse_price(value, decimal_separator=".")
    if amount != amount.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(amount)


def parse_moment(value: Any) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime (UTC when it has no offset).

    ``2026-12-01``, ``2026-12-01T10:00``, ``2026-12-01T10:00:00+09:00``, ``…Z``. Raises
    ``ValueError`` for anything else, a non-string included.
    """
    if isinstance(value, datetime):
        moment = value
    elif not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} {value!r:.40} is not an ISO 8601 date")
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO 8601 date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def attempt(parse: Callable[..., Any], value: Any, **options: Any) -> Any:
    """``parse(value, **options)``, or a ``ParseFailure`` with the reason it could not."""
    try:
        return parse(value, **options)
    except ValueError as exc:
        return ParseFailure(value, str(exc))
