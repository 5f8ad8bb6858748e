"""The three kinds of failure, named once (singer-sdk's habit) and mapped to exit codes in one place.

- ``FatalError``: this shop cannot be done with this input or configuration; retrying cannot help
  (exit 65, EX_DATAERR; the job definition's retry strategy EXITs).
- ``TransientError``: the database, the network or a throttle hiccuped; a later attempt may succeed
  (exit 75, EX_TEMPFAIL; the retry strategy RETRYs).
- ``RejectedRecord``: one bad row; it is recorded with its reason and the task goes on.

Anything else that escapes a task is a bug: exit 1, its traceback logged as one event.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def backoff_delay(
    attempt: int, *, base: float, cap: float, jitter: Callable[[], float] = random.random
) -> float:
    """The pause before retry ``attempt`` (0 for the first retry) of something transient.

    Exponential with full jitter (the AWS Architecture Blog's "Exponential Backoff And Jitter"):
    ``jitter() × min(cap, base × 2^attempt)``, so that many array children that failed together
    do not retry together. The one back-off of the project (fetches, AWS Batch calls, connecting
    to the database).
    """
    return float(jitter()) * min(cap, base * 2.0 ** max(0, attempt))


# errno values a later attempt may not meet: a full or failing disk, a busy resource.
_TRANSIENT_ERRNOS = frozenset(
    code for code in (
        errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY, errno.EINTR,
        errno.ENOMEM, errno.EDQUOT, errno.ETIMEDOUT, errno.ENFILE, errno.EMFILE,
        getattr(errno, "ESTALE", None),
    ) if code is not None
)


_ADVICE = {
    errno.ENOENT: "it does not exist",
    errno.EACCES: "permission denied: check the permissions of OUTPUT_URL and the user running",
    errno.EPERM: "not permitted: check the permissions of OUTPUT_URL and the user running",
    errno.ENOTDIR: "a file stands where a folder is needed: point OUTPUT_URL at a folder",
    errno.EISDIR: "a folder stands where a file is needed: remove it or choose another OUTPUT_URL",
    errno.EEXIST: "a file stands where a folder is needed: point OUTPUT_URL at a folder",
    errno.EROFS: "the file system is read-only: point OUTPUT_URL at a writable folder",
}


def os_error(exc: OSError, doing: str, path: Path | str | None = None) -> FatalError | TransientError:
    """An unexpected ``OSError`` of a store or a file as ours, by its errno, naming the path.

    A full disk, I/O errors and busy resources are transient (75): another attempt, maybe on
    another host, may pass. Permissions, a file where a folder should be (and the reverse), a
    read-only file system and every other errno are fatal (65): the configuration must change.
    """
    where = path if path is not None else (exc.filename or "?")
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{exc.strerror or exc}{f' ({name})' if name else ''}"
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"{doing}: {where}: {reason}; a later attempt may succeed")
    advice = _ADVICE.get(exc.errno or 0, "check that OUTPUT_URL names a writable folder")
    return FatalError(f"{doing}: {where}: {reason}; {advice}")
