"""``catalog-submit``: the submitter's command line (migrate, shops, plan, submit, status, retry,
local, prune, demo). Each command parses, calls night/plan/status, and hands results to report."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from submitter import report
from submitter.config import SubmitterConfig, resolve_database_url
from submitter.local import BATCH_VARIABLES, child_labels, docker_command, local_base_env
from submitter.night import (
    LocalRun,
    NightRequest,
    batch_api,
    open_database,
    plan_and_submit,
    plan_failed,
    plan_night,
    run_locally,
    submit_night,
)
from submitter.opscli import add_operator_commands, report_line
from submitter.plan import Plan, RunKind
from submitter.retention import prune
from submitter.shopfile import read_shop_file
from submitter.status import feed_reasons, run_status, shop_rows
from worker.common import db
from worker.common.errors import (
    EXIT_DATAERR,
    EXIT_OK,
    CatalogError,
    ConfigError,
    FatalError,
    exit_code_for,
)
from worker.common.logging import configure
from worker.common.redact import redact
from worker.common.settings import Settings
from worker.common.shops import list_shops, upsert_shops

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _settings() -> Settings:
    return Settings.from_env()


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.on_batch:
        return _migrate_on_batch(args)
    if args.image_tag:
        raise ConfigError("--image-tag names the image of a migrate job: use it with --on-batch")
    settings = _settings()
    assert settings.database_url is not None
    applied = db.migrate(settings.database_url)
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print(f"schema is up to date (version {db.latest_version()})")
    return EXIT_OK


def _migrate_on_batch(args: argparse.Namespace) -> int:
    """Submit `catalog-worker migrate` as a one-off job on the stack's queue (inside the VPC, with
    the job definition's DATABASE_URL) and wait for it. With --image-tag, the job runs that image
    (a release's, before the stack's ImageTag points at it) on a revision registered for it."""
    from submitter.batch import one_off_job_payload

    config = _config(args)
    job_queue, job_definition = config.require_batch()
    api = batch_api(config)
    revision = None
    if args.image_tag:
        revision = api.register_with_image(job_definition, args.image_tag)
        print(f"registered {revision} for image tag {args.image_tag}", flush=True)
    try:
        name = f"catalog-migrate-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
        job_id = api.submit_job(one_off_job_payload(
            "migrate", job_queue=job_queue, job_definition=revision or job_definition, name=name))
        print(f"submitted {name} ({job_id}); waiting up to {args.timeout} s", flush=True)
        job = api.wait_for_job(job_id, timeout_s=args.timeout, poll_s=args.poll)
    finally:
        if revision is not None:
            # A job already submitted keeps its revision; nothing else may use this one.
            api.deregister_job_definition(revision)
    stream = (job.get("container") or {}).get("logStreamName")
    where = f"; its log stream: {stream}" if stream else ""
    if job["status"] != "SUCCEEDED":
        raise FatalError(
            f"the migrate job {job_id} FAILED: {job.get('statusReason') or 'no reason given'}"
            f"{where}. Do not switch ImageTag until it succeeds"
        )
    print(f"migrate job {job_id} SUCCEEDED{where}")
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
    print(report.shops_text(shops))
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
    return open_database(resolve_database_url(config))


def _kind(args: argparse.Namespace) -> RunKind:
    return "rerun" if getattr(args, "rerun", False) else "nightly"


def _request(args: argparse.Namespace, kind: RunKind) -> NightRequest:
    return NightRequest(_date(args.date), shop_ids=_shop_ids(args.shop_ids), kind=kind)


def cmd_plan(args: argparse.Namespace) -> int:
    config = _config(args)
    with _connect(config) as conn:
        plan = plan_night(conn, config, _request(args, _kind(args)))
        print(report.plan_text(conn, plan, all_shops=args.all_shops))
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    config = _config(args)
    with _connect(config) as conn:
        _, result = plan_and_submit(conn, config, _request(args, _kind(args)))
    print(report.submit_text(result.summary()))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    api = batch_api(config) if args.batch else None
    with _connect(config) as conn:
        state = run_status(conn, args.run_id, api)
        print(report.status_text(state))
        print(report_line(config, args.run_id))
        table = report.shop_table(shop_rows(conn, args.run_id, problems_only=not args.all))
        if table:
            print(table)
        if args.reasons:
            print("feed: top reasons per shop and channel (excluded items, dropped attributes)")
            print(report.reasons_text(feed_reasons(conn, args.run_id, shop_id=args.shop, top=args.top)))
    return state.exit_code


def cmd_retry(args: argparse.Namespace) -> int:
    if not args.failed:
        raise ConfigError("retry needs --failed (the only selection so far)")
    config = _config(args)
    with _connect(config) as conn:
        also: set[int] = set()
        if not args.local:
            # Batch also knows the children that failed without ever writing a task row.
            state = run_status(conn, args.run_id, batch_api(config))
            also = set().union(*state.batch_failed.values())
        plan = plan_failed(conn, config, args.run_id, also_positions=sorted(also))
        if plan is None:
            print(f"run {args.run_id}: no failed shops, nothing to retry")
            return EXIT_OK
        print(report.plan_text(conn, plan))
        if args.local:
            return _run_locally(conn, config, plan, args)
        result = submit_night(conn, config, plan)
    print(report.submit_text(result.summary()))
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    config = _config(args)
    keep = args.keep_days if args.keep_days is not None else config.keep_days
    with _connect(config) as conn:
        counts = prune(conn, keep_days=keep)
    print(report.prune_text(counts, keep))
    return EXIT_OK


def _run_locally(conn: psycopg.Connection, config: SubmitterConfig, plan: Plan,
                 args: argparse.Namespace) -> int:
    database_url = resolve_database_url(config)
    extra: dict[str, str] = {}
    for item in args.env or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE")
        extra[name] = value
    command = shlex.split(args.worker_command) if args.worker_command else None
    if getattr(args, "docker", None):
        if shutil.which("docker") is None:
            raise ConfigError("--docker needs a Docker engine and no `docker` is on PATH: "
                              "leave --docker out to run `python -m worker` here")
        names = [*local_base_env(config, database_url), *extra, *BATCH_VARIABLES]
        command = list(docker_command(args.docker, names))
    summary = run_locally(config, database_url, plan, LocalRun(
        log_dir=Path(args.log_dir), command=command, parallel=args.parallel,
        attempts=args.attempts, extra_env=extra, progress=report.progress_printer(),
    ))
    labels = child_labels(conn, plan.run_id, [f.position for f in summary.failures])
    print(report.summary_text(summary, labels))
    table = report.shop_table(shop_rows(conn, plan.run_id, problems_only=True))
    if table:
        print(table)
    return summary.exit_code


def cmd_local(args: argparse.Namespace) -> int:
    config = _config(args)
    with _connect(config) as conn:
        plan = plan_night(conn, config, _request(args, "local"))
        print(report.plan_text(conn, plan))
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
    p = sub.add_parser("prune", help="delete task rows, rejects and runs older than N days")
    p.add_argument("--keep-days", type=int, default=None,
                   help="keep this many days (default: KEEP_DAYS, else 30)")
    p.set_defaults(func=cmd_prune)
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
    p.add_argument("--on-batch", action="store_true",
                   help="run them as a one-off job on the AWS Batch queue (inside the VPC) and wait")
    _add_batch_options(p)
    p.add_argument("--image-tag", metavar="TAG",
                   help="with --on-batch: run the migrations of this tag of the worker image "
                        "(a release not yet deployed), not the job definition's")
    p.add_argument("--timeout", type=int, default=1800,
                   help="seconds to wait for the job with --on-batch (default 1800)")
    p.add_argument("--poll", type=float, default=10.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_migrate)
    shops = sub.add_parser("shops", help="register and list shops")
    shops_sub = shops.add_subparsers(dest="shops_command", required=True)
    p = shops_sub.add_parser("import", help="upsert the shops of a JSON or TOML file")
    p.add_argument("file", help="a shops file, e.g. examples/shops.json")
    p.set_defaults(func=cmd_shops_import)
    p = shops_sub.add_parser("list", help="print the registered shops")
    p.set_defaults(func=cmd_shops_list)
    add_night_commands(sub)
    add_operator_commands(sub, shops_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure("console", stream=sys.stderr)
    try:
        return int(args.func(args))
    except CatalogError as exc:
        print(f"catalog-submit {args.command}: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # The local executor has stopped its children; a submission resumes on the next call.
        print(f"catalog-submit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = exit_code_for(exc)
        if code == 1:
            raise
        print(f"catalog-submit {args.command}: {redact(str(exc))}", file=sys.stderr)
        return code if code else EXIT_DATAERR
