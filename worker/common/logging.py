"""structlog, configured in one place: JSON lines in Batch, a console renderer on a terminal.

Context (run_id, shop_id, task, array_index, job_id, attempt) is bound once with contextvars, so
every event of the process carries it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog


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
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty() if hasattr(out, "isatty") else False)
        tail: list[Any] = []
    else:
        # A traceback becomes one field of one JSON event, never many lines.
        tail = [structlog.processors.dict_tracebacks]
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
            processors=[*shared, structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
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
