"""``catalog-submit``: the submitter's command line (migrate, shops, plan, submit, status, retry,
local, demo)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from submitter.batch import BatchApi, make_client
from submitter.config import SubmitterConfig, resolve_database_url
from submitter.local import (
    BATCH_VARIABLES,
    LocalExecutor,
    RetryStrategy,
    docker_command,
    format_summary,
    local_base_env,
    progress_printer,
    shop_names,
)
from submitter.plan import Plan, plan_retry, plan_run
from submitter.shopfile import read_shop_file
from submitter.status import feed_reasons, format_reasons, format_status, run_status, shop_rows
from submitter.submit import submit_plan
from worker.common import db
from worker.common.errors import EXIT_DATAERR, EXIT_OK, CatalogError, ConfigError, exit_code_for
from worker.common.logging import configure
from worker.common.settings import Settings
from worker.common.shops import list_shops, upsert_shops

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


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
        (s.id, "yes" if s.active else "no", s.format, s.currency, ",".join(s.channels),
         s.source_url)
        for s in shops
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        print(cells + "  " + row[-1])
    return EXIT_OK



# ---- the night's commands ---------------------------------------------------------------------


def _config(args: argparse.Namespace) -> SubmitterConfig:
    return SubmitterConfig.from_env().with_overrides(
        job_queue=getattr(args, "job_queue", None),
        job_definition=getattr(args, "job_definition", None),
        images_before_feed=True if getattr(args, "images_before_feed", False) else None,
    )


def _date(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--date {text!r} is not YYYY-MM-DD") from None


def _shop_ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    ids = [part.strip() for part in text.split(",")]
    if any(not part for part in ids):
        raise ConfigError(f"--shop-ids {text!r} has an empty entry: expected a,b,c")
    return ids


def _connect(config: SubmitterConfig) -> psycopg.Connection:
    conn = db.connect(resolve_database_url(config))
    try:
        db.check_schema(conn)
        # End check_schema's transaction, so that planning commits in its own.
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def _batch_api(config: SubmitterConfig) -> BatchApi:
    return BatchApi(make_client(endpoint_url=config.aws_endpoint_url))


def print_plan(conn: psycopg.Connection, plan: Plan, *, all_shops: bool = False) -> None:
    """The run, its jobs and its frozen shops (the first 20 unless ``all_shops``)."""
    state = "new" if plan.created else "existing"
    print(f"run {plan.run_id} ({state} {plan.kind} run for {plan.run_date}): "
          f"{plan.shop_count} shops, {len(plan.jobs)} jobs"
          + (", images before feed" if plan.images_before_feed else ""))
    if not plan.jobs:
        print("nothing to do: no active shops")
        return
    for job in plan.jobs:
        size = f"array of {job.array_size}" if job.array_size else "plain job"
        deps = ", ".join(f"{d.key} ({d.type or 'plain'})" for d in job.depends_on) or "-"
        print(f"  {job.key:<10} {job.name:<48} {size:<15} offset {job.chunk.offset:<6} "
              f"after {deps}")
    limit = None if all_shops else 20
    shown = 0
    with conn.cursor(name="plan_shops") as cur:
        cur.execute("SELECT idx, shop_id FROM run_shops WHERE run_id = %s ORDER BY idx",
                    (plan.run_id,))
        for idx, shop_id in cur:
            if limit is not None and shown >= limit:
                break
            print(f"  [{idx}] {shop_id}")
            shown += 1
    conn.commit()
    if shown < plan.shop_count:
        print(f"  … {plan.shop_count - shown} more (--all-shops lists them)")


def _kind(args: argparse.Namespace) -> str:
    return "rerun" if getattr(args, "rerun", False) else "nightly"


def cmd_plan(args: argparse.Namespace) -> int:
    config = _config(args)
    with _connect(config) as conn:
        plan = plan_run(conn, _date(args.date), shop_ids=_shop_ids(args.shop_ids),
                        kind=_kind(args),  # type: ignore[arg-type]
                        images_before_feed=config.images_before_feed)
        print_plan(conn, plan, all_shops=args.all_shops)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    config = _config(args)
    queue, definition = config.require_batch()
    with _connect(config) as conn:
        plan = plan_run(conn, _date(args.date), shop_ids=_shop_ids(args.shop_ids),
                        kind=_kind(args),  # type: ignore[arg-type]
                        images_before_feed=config.images_before_feed)
        result = submit_plan(conn, plan, _batch_api(config), job_queue=queue,
                             job_definition=definition)
    print(json.dumps(result.summary(), indent=2))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    api = _batch_api(config) if args.batch else None
    with _connect(config) as conn:
        state = run_status(conn, args.run_id, api)
        print(format_status(state))
        rows = shop_rows(conn, args.run_id, problems_only=not args.all)
        header = False
        for row in rows:
            if not header:
                print(f"  {'#':>6} {'shop':<24} {'collect':<10} {'feed':<10} {'images':<10} error")
                header = True
            error = (row["error"] or "").splitlines()[0][:80] if row["error"] else ""
            print(f"  {row['index']:>6} {row['shop_id']:<24} {row['collect']:<10} "
                  f"{row['feed']:<10} {row['images']:<10} {error}")
        if args.reasons:
            print("feed: top reasons per shop and channel (excluded items, dropped attributes)")
            print(format_reasons(feed_reasons(conn, args.run_id, shop_id=args.shop, top=args.top)))
    return state.exit_code


def cmd_retry(args: argparse.Namespace) -> int:
    if not args.failed:
        raise ConfigError("retry needs --failed (the only selection so far)")
    config = _config(args)
    with _connect(config) as conn:
        also: set[int] = set()
        if not args.local:
            # Batch also knows the children that failed without ever writing a task row.
            state = run_status(conn, args.run_id, _batch_api(config))
            also = set().union(*state.batch_failed.values())
        plan = plan_retry(conn, args.run_id, also_positions=also)
        if plan is None:
            print(f"run {args.run_id}: no failed shops, nothing to retry")
            return EXIT_OK
        print_plan(conn, plan)
        if args.local:
            return _run_locally(conn, config, plan, args)
        queue, definition = config.require_batch()
        result = submit_plan(conn, plan, _batch_api(config), job_queue=queue,
                             job_definition=definition)
    print(json.dumps(result.summary(), indent=2))
    return EXIT_OK


def _run_locally(conn: psycopg.Connection, config: SubmitterConfig, plan: Plan,
                 args: argparse.Namespace, *, extra_env: dict[str, str] | None = None) -> int:
    database_url = resolve_database_url(config)
    base_env = local_base_env(config, database_url)
    base_env.update(extra_env or {})
    for item in args.env or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE")
        base_env[name] = value
    command = shlex.split(args.worker_command) if args.worker_command else None
    if getattr(args, "docker", None):
        if shutil.which("docker") is None:
            raise ConfigError("--docker needs a Docker engine and no `docker` is on PATH: "
                              "leave --docker out to run `python -m worker` here")
        command = list(docker_command(args.docker, [*base_env, *BATCH_VARIABLES]))
    executor = LocalExecutor(
        plan, base_env=base_env, log_dir=Path(args.log_dir), command=command,
        parallel=args.parallel, retry=RetryStrategy(attempts=args.attempts),
        progress=progress_printer(),
    )
    summary = executor.run()
    names = shop_names(conn, plan.run_id, [f.position for f in summary.failures])
    print(format_summary(summary, names))
    return summary.exit_code


def cmd_local(args: argparse.Namespace) -> int:
    config = _config(args)
    with _connect(config) as conn:
        plan = plan_run(conn, _date(args.date), shop_ids=_shop_ids(args.shop_ids), kind="local",
                        images_before_feed=config.images_before_feed)
        print_plan(conn, plan)
        if not plan.jobs:
            return EXIT_OK
        return _run_locally(conn, config, plan, args)


def cmd_demo(args: argparse.Namespace) -> int:
    from submitter.demo import run_demo

    return run_demo(
        SubmitterConfig.from_env(), home=Path(args.dir), output=Path(args.out),
        parallel=args.parallel,
        attempts=args.attempts,
    )


def _add_night_options(p: argparse.ArgumentParser, *, rerun: bool = True) -> None:
    p.add_argument("--date", help="the night, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--shop-ids", help="only these shops, a comma list (default: every active shop)")
    p.add_argument("--images-before-feed", action="store_true",
                   help="chain feed after images, so the feed carries tonight's processed images")
    if rerun:
        p.add_argument("--rerun", action="store_true",
                       help="make a new run even though the night already has one")


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--job-queue", help="the AWS Batch job queue (default: JOB_QUEUE)")
    p.add_argument("--job-definition", help="the worker's job definition (default: JOB_DEFINITION)")


def _add_local_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parallel", type=int, default=None,
                   help="children at once (default: the number of cores)")
    p.add_argument("--attempts", type=int, default=3,
                   help="attempts per child, as the job definition's retry strategy (default 3)")
    p.add_argument("--log-dir", default=".catalog-batch/logs",
                   help="where each child's output goes (default .catalog-batch/logs)")
    p.add_argument("--docker", metavar="IMAGE",
                   help="run each child as `docker run IMAGE TASK` instead of python -m worker")
    p.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="one more variable for every child (repeatable), e.g. CATALOG_FORCE=1")
    p.add_argument("--worker-command", metavar="CMD",
                   help="the command each child runs before its TASK (default: this Python's "
                        "`-m worker`)")


def add_night_commands(sub: Any) -> None:
    p = sub.add_parser("plan", help="freeze the night's shop list and print its jobs (no submit)")
    _add_night_options(p)
    p.add_argument("--all-shops", action="store_true", help="list every frozen shop")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("submit", help="plan the night and submit its jobs to AWS Batch (idempotent)")
    _add_night_options(p)
    _add_batch_options(p)
    p.set_defaults(func=cmd_submit)
    p = sub.add_parser(
        "status", help="a run's state per task and shop; exit 0 done, 2 failed, 3 running"
    )
    p.add_argument("run_id")
    p.add_argument("--batch", action="store_true", help="also ask AWS Batch (describe_jobs)")
    p.add_argument("--all", action="store_true", help="list every shop, not only the unfinished")
    p.add_argument("--reasons", action="store_true",
                   help="the feed's top reasons per shop and channel: items excluded, attributes dropped")
    p.add_argument("--shop", help="with --reasons: this shop only")
    p.add_argument("--top", type=int, default=5, help="with --reasons: reasons per channel (5)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("retry", help="resubmit a run's failed shops as a new small run")
    p.add_argument("run_id")
    p.add_argument("--failed", action="store_true", help="the shops whose latest attempt failed")
    p.add_argument("--local", action="store_true", help="run the retry here, not on AWS Batch")
    _add_batch_options(p)
    _add_local_options(p)
    p.set_defaults(func=cmd_retry)
    p = sub.add_parser("local", help="run a night on this machine with AWS Batch's semantics")
    _add_night_options(p, rerun=False)
    _add_local_options(p)
    p.set_defaults(func=cmd_local)
    p = sub.add_parser("demo", help="the whole night on bundled sample shops, nothing to set up")
    p.add_argument("--dir", default=".catalog-batch",
                   help="the demo's home: database, served samples, logs (default .catalog-batch)")
    p.add_argument("--out", default="out",
                   help="where the night's feeds and images go (default ./out)")
    p.add_argument("--parallel", type=int, default=None)
    p.add_argument("--attempts", type=int, default=3)
    p.set_defaults(func=cmd_demo)


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
    add_night_commands(sub)
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
    except KeyboardInterrupt:
        # The local executor has stopped its children; a submission resumes on the next call.
        print(f"catalog-submit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = exit_code_for(exc)
        if code == 1:
            raise
        print(f"catalog-submit {args.command}: {exc}", file=sys.stderr)
        return code if code else EXIT_DATAERR
