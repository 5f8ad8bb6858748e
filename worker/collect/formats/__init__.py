"""The format registry: every module of this package that defines ``FORMAT`` is a source format.

Adding a format is adding a module here (a ``Format`` subclass and its instance, see ``base``):
nothing else names the formats. The shop-file check and collect both ask ``registry()``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from worker.collect.formats.base import Format, HeaderHook, Record
from worker.collect.limits import Limits
from worker.common.plugins import discover

__all__ = ["Format", "HeaderHook", "Record", "get_format", "records", "registry"]


@cache
def registry() -> dict[str, Format]:
    """name → format, discovered once from this package's modules."""
    return discover(__name__, __path__, "FORMAT", "format")


def get_format(name: str) -> Format:
    """The named format; ``ValueError`` naming the known ones when there is no such module."""
    try:
        return registry()[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(registry()))
        raise ValueError(f"format {name!r} is not known: expected one of {known}") from None


def records(
    fmt: str,
    stream: io.BufferedReader,
    options: Mapping[str, Any],
    where: str,
    on_header: HeaderHook | None = None,
    limits: Limits | None = None,
) -> Iterator[Record]:
    """The raw records of ``stream`` in format ``fmt``."""
    return get_format(fmt).records(stream, options, where, on_header, limits)
