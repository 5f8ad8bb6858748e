"""The submitter as an AWS Lambda: ``handler(event, context)`` plans and submits one night.

Events: EventBridge's scheduled event (its ``time`` gives the night, in UTC) or a manual
``{"run_date": "2026-11-29", "shop_ids": [...], "rerun": false, "images_before_feed": false}``.
Returns a JSON-ready summary. Imports stay light (no Pillow, no ijson) for fast cold starts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from submitter.config import SubmitterConfig, resolve_database_url
from worker.common.errors import ConfigError

log = structlog.get_logger(__name__)

# Read once per container: a warm Lambda reuses the configuration and the database URL.
_CONFIG: SubmitterConfig | None = None
_DATABASE_URL: str | None = None


@dataclass(frozen=True)
class Request:
    run_date: dt.date
    shop_ids: tuple[str, ...] | None
    rerun: bool
    images_before_feed: bool | None
    source: str  # "schedule" or "manual"


def parse_event(event: Mapping[str, Any]) -> Request:
    """The night to submit, from a scheduled event or a manual one; a bad event names its field."""
    if not isinstance(event, Mapping):
        raise ConfigError(f"the event must be a JSON object, got {type(event).__name__}")
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        raw = event.get("time")
        try:
            moment = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"scheduled event: time {raw!r} is not an ISO 8601 timestamp"
            ) from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
        return Request(moment.date(), None, False, None, "schedule")
    raw_date = event.get("run_date")
    if raw_date is None:
        raise ConfigError(
            "manual event: run_date is missing: expected {\"run_date\": \"YYYY-MM-DD\", "
            "\"shop_ids\": [...]} or an EventBridge scheduled event"
        )
    try:
        run_date = dt.date.fromisoformat(str(raw_date))
    except ValueError:
        raise ConfigError(f"manual event: run_date {raw_date!r} is not YYYY-MM-DD") from None
    shop_ids = event.get("shop_ids")
    if shop_ids is not None and (
        not isinstance(shop_ids, list) or not all(isinstance(s, str) and s for s in shop_ids)
    ):
        raise ConfigError("manual event: shop_ids must be a list of shop ids (strings)")
    for name in ("rerun", "images_before_feed"):
        if name in event and not isinstance(event[name], bool):
            raise ConfigError(f"manual event: {name} must be true or false")
    return Request(
        run_date,
        tuple(shop_ids) if shop_ids is not None else None,
        bool(event.get("rerun", False)),
        event.get("images_before_feed"),
        "manual",
    )


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Plan and submit the night the event names; the summary says what was submitted."""
    global _CONFIG, _DATABASE_URL
    if _CONFIG is None:
        _CONFIG = SubmitterConfig.from_env()
        from worker.common.logging import configure

        # One JSON event per line in CloudWatch, like the workers'.
        configure(_CONFIG.log_format or "json")
    config = _CONFIG
    if isinstance(event, Mapping) and "report" in event:
        # The morning schedule's event: the night report (a separate invocation, because the
        # nightly one returns as soon as the jobs are submitted). See docs/operators.md.
        from submitter.nightreport import report_from_event

        _DATABASE_URL = _DATABASE_URL or resolve_database_url(config)
        return report_from_event(event, context, database_url=_DATABASE_URL,
                                 output_url=config.output_url, endpoint_url=config.aws_endpoint_url)
    request = parse_event(event)
    config.require_batch()
    if _DATABASE_URL is None:
        _DATABASE_URL = resolve_database_url(config)
    # Imported here: a malformed event is refused before any connection or client exists.
    from submitter.night import NightRequest, open_database, plan_and_submit
    from submitter.retention import prune

    with open_database(_DATABASE_URL) as conn:
        plan, result = plan_and_submit(conn, config, NightRequest(
            request.run_date, shop_ids=request.shop_ids,
            kind="rerun" if request.rerun else "nightly",
            images_before_feed=request.images_before_feed,
        ))
        # After the night is safely submitted: a failed prune is logged, never the night's.
        try:
            pruned: dict[str, int] | str = prune(conn, keep_days=config.keep_days)
        except Exception as exc:
            conn.rollback()
            log.warning("submitter.prune_failed", error=str(exc))
            pruned = f"failed: {exc}"
    summary = {
        **result.summary(),
        "run_date": request.run_date.isoformat(),
        "source": request.source,
        "jobs": len(plan.jobs),
        "request_id": getattr(context, "aws_request_id", None),
        "pruned": pruned,
    }
    if request.shop_ids is not None and not plan.created:
        summary["note"] = ("the night's run already existed; shop_ids were not applied "
                           "(send rerun: true for a new run of these shops)")
    log.info("submitter.done", **summary)
    return summary


def reset() -> None:
    """Forget the cached configuration (tests; a new environment)."""
    global _CONFIG, _DATABASE_URL
    _CONFIG = None
    _DATABASE_URL = None
