"""The three kinds of failure, named once (singer-sdk's habit) and mapped to exit codes in one place.

- ``FatalError``: this shop cannot be done with this input or configuration; retrying cannot help
  (exit 65, EX_DATAERR; the job definition's retry strategy EXITs).
- ``TransientError``: the database, the network or a throttle hiccuped; a later attempt may succeed
  (exit 75, EX_TEMPFAIL; the retry strategy RETRYs).
- ``RejectedRecord``: one bad row; it is recorded with its reason and the task goes on.

Anything else that escapes a task is a bug: exit 1, its traceback logged as one event.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 64  # EX_USAGE: the command line itself is wrong
EXIT_DATAERR = 65  # EX_DATAERR
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL


class CatalogError(Exception):
    """Base of the failures this project names; ``exit_code`` is what the router exits with."""

    exit_code: int = EXIT_BUG


class FatalError(CatalogError):
    """Bad data or configuration for this shop: stop it, exit 65, do not retry."""

    exit_code = EXIT_DATAERR


class ConfigError(FatalError):
    """The process's own configuration (environment, shop row, mapping) is invalid."""


class TransientError(CatalogError):
    """A hiccup a later attempt may not meet: exit 75 so that AWS Batch retries."""

    exit_code = EXIT_TEMPFAIL


@dataclass
class RejectedRecord(Exception):
    """One bad record: rejected with its reason, where it was, and an excerpt; the task goes on."""

    reason: str
    field: str | None = None
    excerpt: str | None = None

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"{self.reason}{where}"


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that escaped a task: the one mapping of failures to codes."""
    if isinstance(exc, CatalogError):
        return exc.exit_code
    # Imported here so that the submitter's Lambda can import this module cheaply.
    import psycopg

    if isinstance(exc, psycopg.OperationalError | psycopg.errors.QueryCanceled):
        # A lost connection, a refused connection, a statement or lock timeout.
        return EXIT_TEMPFAIL
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return EXIT_TEMPFAIL
    if isinstance(exc, TimeoutError | ConnectionError):
        return EXIT_TEMPFAIL
    return EXIT_BUG
