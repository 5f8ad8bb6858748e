"""Clean shutdown: SIGTERM (AWS Batch's job timeout, a Spot reclaim's notice) and SIGINT become an
``Interrupted`` exception in the main thread, so that every ``finally`` and rollback runs, the task
row is recorded ``interrupted`` and the process exits 75 before the SIGKILL that follows 30 s later.

``Interrupted`` is a ``KeyboardInterrupt``: psycopg cancels the statement in flight on one, so the
connection is usable for the rollback and the task row. ``deferred()`` holds a signal for a step
that must finish whole once started (publishing a shop's feeds and their manifests).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


_state = {"deferred": 0, "pending": 0, "stopping": False}


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state["stopping"]:
        return  # already stopping: let the cleanup finish
    if _state["deferred"]:
        _state["pending"] = signum
        return
    _state["stopping"] = True
    raise Interrupted(signum)


def install() -> None:
    """Turn SIGTERM and SIGINT into ``Interrupted`` (the worker's ``main`` only: never a library)."""
    _state.update(deferred=0, pending=0, stopping=False)
    for signum in HANDLED:
        signal.signal(signum, _handle)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal until the block ends, then raise it: for a step that must finish whole."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
        signum = _state["pending"]
        if not _state["deferred"] and signum and not _state["stopping"]:
            _state["pending"] = 0
            _state["stopping"] = True
            raise Interrupted(int(signum))
