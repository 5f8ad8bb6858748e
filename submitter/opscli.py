"""The operators' commands of ``catalog-submit``: ``report`` (the night report), ``shops sketch``
(a shop file proposed from an export's head) and ``shops preview`` (a shop's mapping and channel
rules on the head of its source, writing nothing). ``submitter.cli`` registers them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from submitter.config import SubmitterConfig, resolve_database_url
from worker.common import db
from worker.common.errors import EXIT_OK, CatalogError
from worker.common.stores import open_store

DEFAULT_LOG_DIR = ".catalog-batch/logs"


def _output_url(config: SubmitterConfig, override: str | None) -> str:
    return override or config.output_url or "./out"


def cmd_report(args: argparse.Namespace) -> int:
    from submitter.nightreport import LogPlaces, write_report

    config = SubmitterConfig.from_env()
    store = open_store(_output_url(config, args.output), endpoint_url=config.aws_endpoint_url)
    places = LogPlaces(log_dir=Path(args.log_dir) if args.log_dir else None,
                       region=args.region, log_group=args.log_group)
    with db.connect(resolve_database_url(config)) as conn:
        db.check_schema(conn)
        conn.commit()
        written = write_report(conn, store, args.run_id, places=places)
    g = written.report["glance"]
    print(f"run {written.run_id}: {g['ok'] + g['unchanged']} shops ok, {g['failed']} failed, "
          f"{g['rows_rejected']} rows rejected")
    print(f"report: {written.html_url}")
    print(f"data:   {written.json_url}")
    return EXIT_OK


def report_line(config: SubmitterConfig, run_id: str) -> str:
    """For ``status``: where the run's report is, or how to write it."""
    from submitter.nightreport import report_address

    try:
        store = open_store(_output_url(config, None), endpoint_url=config.aws_endpoint_url)
        address = report_address(store, run_id)
    except CatalogError as exc:  # the run's state still prints; only the report's place is unknown
        return f"report: cannot tell whether one was written ({exc})"
    return (f"report: {address}" if address
            else f"report: not written yet (catalog-submit report {run_id})")


def cmd_sketch(args: argparse.Namespace) -> int:
    from submitter.sketch import run_sketch

    return run_sketch(args.url, fmt=args.format, output=args.output, shop_id=args.id,
                      max_records=args.records, out=sys.stdout)


def cmd_preview(args: argparse.Namespace) -> int:
    from submitter.preview import run_preview

    return run_preview(args.shop, limit=args.limit, out=sys.stdout)


def add_operator_commands(sub: Any, shops_sub: Any) -> None:
    """Register ``report`` beside the night's commands and ``sketch``/``preview`` under ``shops``."""
    p = sub.add_parser("report", help="write the night report (HTML + JSON) to "
                                      "OUTPUT_URL/reports/{run}/")
    p.add_argument("run_id", nargs="?", help="the run (default: the latest)")
    p.add_argument("--output", metavar="URL", help="where reports/ goes (default: OUTPUT_URL or "
                                                   "./out)")
    p.add_argument("--log-dir", default=DEFAULT_LOG_DIR,
                   help="the local executor's log folder, linked for failed shops "
                        f"(default {DEFAULT_LOG_DIR})")
    p.add_argument("--log-group", help="the job log group, for CloudWatch Logs links "
                                       "(e.g. /aws/batch/STACK)")
    p.add_argument("--region", help="the AWS region of --log-group")
    p.set_defaults(func=cmd_report)
    p = shops_sub.add_parser("sketch", help="propose a shop file from the head of an export")
    p.add_argument("url", help="the export's URL (https://, http://, s3:// or file://)")
    p.add_argument("--format", choices=("json", "jsonl", "csv", "xml"),
                   help="skip format detection")
    p.add_argument("--id", help="the shop id to propose (default: from the URL's host)")
    p.add_argument("--records", type=int, default=200,
                   help="records to read from the head (default 200)")
    p.add_argument("--output", "-o", help="write the shop file here (.toml or .json) instead of "
                                          "stdout")
    p.set_defaults(func=cmd_sketch)
    p = shops_sub.add_parser(
        "preview", help="a shop's mapping and channel rules on the head of its source; writes "
                        "nothing; exit 0 ready, 65 not")
    p.add_argument("shop", help="a registered shop id, or a shop file (JSON/TOML) with one shop")
    p.add_argument("--limit", type=int, default=50, help="records to try (default 50)")
    p.set_defaults(func=cmd_preview)
