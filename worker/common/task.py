"""What a task receives and what it reports: the contract between the router and the three stages.

It lives on the common floor so that a stage never imports its dispatcher (``worker.router``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from worker.common import accounting
from worker.common.settings import Settings
from worker.common.shops import Shop


@dataclass
class TaskResult:
    """What a task reports; the router turns it into the task row and the summary event."""

    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    bytes: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass
class TaskContext:
    """One attempt of one task for one shop: its settings, connection, shop, rejects and logger."""

    settings: Settings
    conn: psycopg.Connection
    shop: Shop
    run_id: str | None
    task_run_id: int
    rejects: accounting.RejectSink
    log: Any
    task: str = ""
    array_index: int = 0
