"""The limits a shop's catalog is read under, so that no small input can exhaust memory.

Each has a default and a per-shop override in the shop's ``format_options`` (validated at
``shops import`` with the format's other options). A file over a total limit is refused (exit 65);
a record over a per-record limit is rejected with its position where the format can skip it in
constant memory (JSON Lines, CSV, XML), and refuses the file where it cannot (one JSON document).
docs/net-and-stores.md ("Limits") lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20
GiB = 1 << 30

# name → (default, minimum, maximum)
LIMITS: dict[str, tuple[int, int, int]] = {
    # Bytes the whole catalog may inflate to (after gzip), and for any source at most this.
    "max_total_bytes": (8 * GiB, MiB, 1 << 40),
    # A gzip source may inflate to at most this many times its compressed size.
    "max_inflate_ratio": (20, 1, 100_000),
    # One record: a CSV row, a JSON Lines line, a JSON item, an XML item. The csv module's field
    # limit is set to the maximum, so no override can turn a long field into a parse error.
    "max_record_bytes": (4 * MiB, 1024, 64 * MiB),
    # Containers inside containers (JSON arrays and objects, XML elements), the document's own
    # levels included.
    "max_depth": (64, 4, 1024),
    # Characters in the text of one XML element: ten times what a product's text field can store.
    "max_text_chars": (1_000_000, 1024, 64 * MiB),
}
OPTIONS = tuple(LIMITS)
# The ratio never refuses a catalog that inflates to less than this: small files of repeated text
# compress far better than 20:1, and 16 MiB holds nobody's memory hostage.
INFLATE_FLOOR = 16 * MiB


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int = LIMITS["max_total_bytes"][0]
    max_inflate_ratio: int = LIMITS["max_inflate_ratio"][0]
    max_record_bytes: int = LIMITS["max_record_bytes"][0]
    max_depth: int = LIMITS["max_depth"][0]
    max_text_chars: int = LIMITS["max_text_chars"][0]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Limits:
        """The limits of a shop whose ``format_options`` passed ``limit_problems``."""
        return cls(**{name: int(options[name]) for name in OPTIONS if name in options})

    def inflated_cap(self, compressed_size: int) -> tuple[int, str]:
        """Bytes a gzip source of this size may inflate to, and the limit that says so."""
        by_ratio = max(self.max_inflate_ratio * compressed_size, INFLATE_FLOOR)
        if by_ratio < self.max_total_bytes:
            return by_ratio, "max_inflate_ratio"
        return self.max_total_bytes, "max_total_bytes"


def limit_problems(options: Mapping[str, Any]) -> list[str]:
    """What is wrong with the limit overrides among a shop's ``format_options``."""
    problems = []
    for name, (_, low, high) in LIMITS.items():
        if name not in options:
            continue
        value = options[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            problems.append(
                f"format_options.{name}={value!r} must be a whole number from {low} to {high}"
            )
    return problems


def size(n: int) -> str:
    """A byte count as people read it in an error message."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"
