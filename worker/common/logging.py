"""structlog, configured in one place: JSON lines in Batch, a console renderer on a terminal.

Context (run_id, shop_id, task, array_index, job_id, attempt) is bound once with contextvars, so
every event of the process carries it. Every event passes through the one redaction function on its
way out, and a traceback is logged without its frames' local variables (a shop's source URL, a
connection string), whatever the renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from worker.common.redact import redact

# Tracebacks as data, without local variables: a frame's locals would carry secrets into the log.
_TRACEBACK_AS_DICT = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False)
)


def redact_event(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: every string in the event (nested ones too) redacted."""
    return {key: _redacted(value) for key, value in event.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    # What a renderer would print of any other object (an exception, a Shop): its text, redacted.
    return redact(str(value) if isinstance(value, BaseException) else repr(value))


class _CurrentStdout:
    """Whatever ``sys.stdout`` is when an event is written (pytest and Lambda swap it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


def configure(log_format: str = "json", *, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Configure structlog (and the stdlib loggers of libraries) for this process."""
    out: Any = stream if stream is not None else _CurrentStdout()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if log_format == "console":
        # Python's plain traceback (never rich's or better-exceptions', which print locals), made
        # a string here so that it is redacted like every other field.
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty() if hasattr(out, "isatty") else False,
            exception_formatter=structlog.dev.plain_traceback,
        )
        tail: list[Any] = [structlog.processors.format_exc_info, redact_event]
    else:
        # A traceback becomes one field of one JSON event, never many lines.
        tail = [_TRACEBACK_AS_DICT, redact_event]
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the stdlib (botocore, urllib3) go through the same renderer.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                *shared, structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail,
                renderer,
            ]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def bind_context(**values: Any) -> None:
    """Bind values into every following event of this process (or this thread's context)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
