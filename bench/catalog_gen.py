"""The synthetic catalogs' command line; the generator itself is ``tests/catalogs.py`` (one module
for tests and benchmarks, imported from here so that bench depends on tests and never the reverse).

    python bench/catalog_gen.py out.json --format json --count 1000 [--gzip]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import catalogs


def __getattr__(name: str) -> Any:
    """Every name of tests/catalogs.py, as ``bench.catalog_gen.<name>`` (the callers' old import)."""
    return getattr(catalogs, name)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--format", choices=catalogs.FORMATS, default="json")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    size = catalogs.write(args.path, args.format, catalogs.products(args.count, seed=args.seed),
                          gzip=args.gzip)
    print(f"{args.path}: {args.count} products, {size} bytes")


if __name__ == "__main__":
    main()
