"""``catalog-submit``: the command line of the submitter (migrate, shops, and the night's commands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from worker.common import db
from worker.common.errors import EXIT_DATAERR, EXIT_OK, CatalogError, exit_code_for
from worker.common.logging import configure
from worker.common.settings import Settings
from worker.common.shops import list_shops, read_shop_file, upsert_shops


def _settings() -> Settings:
    return Settings.from_env()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    assert settings.database_url is not None
    applied = db.migrate(settings.database_url)
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print(f"schema is up to date (version {db.latest_version()})")
    return EXIT_OK


def cmd_shops_import(args: argparse.Namespace) -> int:
    shops = read_shop_file(Path(args.file))
    settings = _settings()
    assert settings.database_url is not None
    with db.connect(settings.database_url) as conn:
        db.check_schema(conn)
        count = upsert_shops(conn, shops)
    print(f"imported {count} shop(s) from {args.file}")
    return EXIT_OK


def cmd_shops_list(args: argparse.Namespace) -> int:
    settings = _settings()
    assert settings.database_url is not None
    with db.connect(settings.database_url) as conn:
        db.check_schema(conn)
        shops = list_shops(conn)
    rows = [("ID", "ACTIVE", "FORMAT", "CURRENCY", "CHANNELS", "SOURCE")]
    rows += [
        (s.id, "yes" if s.active else "no", s.format, s.currency, ",".join(s.channels), s.source_url)
        for s in shops
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog-submit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="apply the database schema migrations (DATABASE_URL)")
    p.set_defaults(func=cmd_migrate)
    shops = sub.add_parser("shops", help="register and list shops")
    shops_sub = shops.add_subparsers(dest="shops_command", required=True)
    p = shops_sub.add_parser("import", help="upsert the shops of a JSON or TOML file")
    p.add_argument("file", help="a shops file, e.g. examples/shops.json")
    p.set_defaults(func=cmd_shops_import)
    p = shops_sub.add_parser("list", help="print the registered shops")
    p.set_defaults(func=cmd_shops_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure("console", stream=sys.stderr)
    try:
        return int(args.func(args))
    except CatalogError as exc:
        print(f"catalog-submit {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        code = exit_code_for(exc)
        if code == 1:
            raise
        print(f"catalog-submit {args.command}: {exc}", file=sys.stderr)
        return code if code else EXIT_DATAERR
