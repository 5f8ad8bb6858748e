"""The database: connections, the ordered SQL migrations and their advisory lock, per-shop locks.

Migrations are the ``migrations/NNNN_name.sql`` files of this package, applied in order, each in its
own transaction, recorded in ``schema_migrations``. A session-level advisory lock makes hundreds of
array children that start at once migrate exactly once: the first applies, the others wait, then
find nothing left to do.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
import structlog
from psycopg import sql

from worker.common.errors import (
    CatalogError,
    ConfigError,
    FatalError,
    TransientError,
    backoff_delay,
)
from worker.common.redact import scrub

# An arbitrary, fixed key: "catalog-batch migrations".
MIGRATION_LOCK_KEY = 0x63617462_6D696772 & 0x7FFFFFFFFFFFFFFF
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The package's migrations in order (a short list, by construction)."""
    found = []
    for entry in resources.files("worker.common.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


def latest_version() -> int:
    return migrations()[-1].version


# A connection attempt that hangs (a silent network, a server too busy to answer) ends after this.
CONNECT_TIMEOUT_S = 10
# Hundreds of array children starting at once may meet a full server: they wait, jittered, this long.
CONNECT_RETRY_S = 300.0
_BACKOFF_BASE_S = 0.25
_BACKOFF_CAP_S = 15.0

# libpq's words for a connection that cannot succeed however often it is retried: the credentials,
# the database or role, the host name, the URI itself. Matched on the message: a failed connection
# start carries no SQLSTATE in psycopg.
_PERMANENT = (
    ("password authentication failed", "the password was refused (authentication failed)"),
    ("authentication failed", "authentication failed"),
    ("no password supplied", "the server wants a password and DATABASE_URL gives none"),
    ("no pg_hba.conf entry", "the server's pg_hba.conf has no entry for this client"),
    ("does not exist", "the role or the database does not exist"),
    ("could not translate host name", "the host name is unknown"),
    ("name or service not known", "the host name is unknown"),
    ("nodename nor servname", "the host name is unknown"),
    ("invalid port number", "the port is not a valid port number"),
    ("invalid integer value", "a numeric option (port, connect_timeout) is not a number"),
    ("invalid sslmode", "sslmode is not valid"),
    ("certificate", "the server's TLS certificate was refused"),
)
# Worth waiting for: a full server, one starting or stopping, a refused or silent port.
_TRANSIENT_HINTS = (
    ("too many clients", "the server has too many connections"),
    ("too many connections", "the server has too many connections"),
    ("remaining connection slots", "the server has no free connection slots"),
    ("the database system is starting up", "the server is starting up"),
    ("the database system is shutting down", "the server is shutting down"),
    ("the database system is in recovery", "the server is in recovery"),
    ("temporary failure in name resolution", "name resolution failed for now"),
    ("connection refused", "the connection was refused"),
    ("timeout expired", "the connection timed out"),
    ("timed out", "the connection timed out"),
    ("server closed the connection", "the server closed the connection"),
)


def describe_target(database_url: str) -> str:
    """``host:port/dbname as user`` of a DSN, for messages; never its password."""
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(database_url)
    except psycopg.ProgrammingError:
        return "the database in DATABASE_URL (which libpq cannot parse)"
    host = params.get("host") or "local socket"
    port = params.get("port") or "5432"
    shown = f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"
    if params.get("user"):
        shown += f" as {params['user']}"
    return scrub(str(shown), database_url)


def classify_connect_error(exc: BaseException, database_url: str) -> CatalogError:
    """A failed connection as our error: a ``ConfigError`` (65) when retrying cannot help, else a
    ``TransientError`` (75); its message names the target and the cause, never the password."""
    text = str(exc).lower()
    target = describe_target(database_url)
    if isinstance(exc, psycopg.ProgrammingError):
        return ConfigError(
            f"DATABASE_URL is not a valid libpq URI ({scrub(str(exc), database_url).strip()}): "
            "percent-encode reserved characters of the password (@ → %40, : → %3A, % → %25)"
        )
    for needle, reason in _PERMANENT:
        if needle in text:
            return ConfigError(
                f"cannot connect to the database at {target}: {reason}; check DATABASE_URL "
                "(retrying cannot help)"
            )
    for needle, reason in _TRANSIENT_HINTS:
        if needle in text:
            return TransientError(f"cannot connect to the database at {target}: {reason}")
    detail = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                   database_url)
    return TransientError(f"cannot connect to the database at {target}: {detail}")


def connect(
    database_url: str,
    *,
    autocommit: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    retry_for: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    **kwargs: Any,
) -> psycopg.Connection:
    """Connect with ``connect_timeout`` always set; a transient failure (a full server, a refused
    port, a timeout) is retried with full-jitter exponential back-off for ``retry_for`` seconds,
    then ``TransientError`` (75). A failure retrying cannot mend (credentials, unknown host or
    database, a malformed URI) is a ``ConfigError`` (65) at once. No message echoes the DSN."""
    deadline = time.monotonic() + retry_for
    attempt = 0
    while True:
        attempt += 1
        try:
            return psycopg.connect(
                database_url, autocommit=autocommit, application_name="catalog-batch",
                connect_timeout=max(1, round(connect_timeout)), **kwargs,
            )
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
            error = classify_connect_error(exc, database_url)
        remaining = deadline - time.monotonic()
        if isinstance(error, ConfigError) or remaining <= 0:
            if attempt > 1 and isinstance(error, TransientError):
                error = TransientError(f"{error} (still, after {attempt} attempts in "
                                       f"{retry_for:g}s); a later attempt will retry")
            raise error from None
        delay = min(remaining, backoff_delay(attempt, base=_BACKOFF_BASE_S, cap=_BACKOFF_CAP_S,
                                             jitter=jitter))
        structlog.get_logger(__name__).info(
            "db.connect_retry", attempt=attempt, delay_s=round(delay, 3), error=str(error)
        )
        sleep(delay)


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    """version → checksum of what this database has applied (empty for a new database)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(v): str(c) for v, c in rows}


# hash_record_extended (collect's content hash, migration 0006) came with PostgreSQL 14.
MIN_SERVER_VERSION = 140000


def require_server_version(version: int) -> None:
    """Refuse a server older than MIN_SERVER_VERSION (libpq's number: 150018 is 15.18), exit 65."""
    if version >= MIN_SERVER_VERSION:
        return
    shown = (f"{version // 10000}.{version % 10000}" if version >= 100000
             else f"{version // 10000}.{version // 100 % 100}.{version % 100}")
    raise FatalError(
        f"the database runs PostgreSQL {shown}; catalog-batch needs PostgreSQL 14 or newer "
        "(collect hashes rows with hash_record_extended): upgrade the server"
    )


def migrate(database_url: str) -> list[Migration]:
    """Apply the migrations this database lacks; return those this call applied."""
    applied_now: list[Migration] = []
    with connect(database_url, autocommit=True) as conn:
        require_server_version(conn.info.server_version)
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            _ensure_table(conn)
            done = applied_versions(conn)
            for migration in migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise FatalError(
                            f"migration {migration.version:04d}_{migration.name} was changed after "
                            "it was applied: add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())  # type: ignore[call-overload]
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def check_schema(conn: psycopg.Connection) -> None:
    """Refuse to work on a database whose schema is behind this code (exit 65, with the fix)."""
    applied = applied_versions(conn)
    missing = [m for m in migrations() if m.version not in applied]
    if missing:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
        raise FatalError(
            f"the database schema is at version {max(applied, default=0)}, this code needs "
            f"{latest_version()} (missing: {names}): run `catalog-submit migrate` against "
            "DATABASE_URL first"
        )


def shop_lock_key(shop_id: str, task: str) -> int:
    """A stable 63-bit advisory-lock key for one shop's task."""
    digest = hashlib.blake2b(f"{task}:{shop_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFFFFFFFFFF


@contextmanager
def shop_lock(
    conn: psycopg.Connection, shop_id: str, task: str, *, timeout_s: float
) -> Iterator[None]:
    """Hold the shop's per-task advisory lock: a second attempt waits up to ``timeout_s``, then 75.

    Only the same shop's same task contends; different shops never block each other.
    """
    key = shop_lock_key(shop_id, task)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.commit()
        if row and row[0]:
            break
        if time.monotonic() >= deadline:
            raise TransientError(
                f"shop {shop_id}: another {task} attempt holds the shop's lock after waiting "
                f"{timeout_s:g}s; a later attempt will retry"
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    try:
        yield
    finally:
        if not conn.closed:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.commit()


def ident(name: str) -> sql.Identifier:
    """An identifier for ``psycopg.sql`` composition (never string formatting)."""
    return sql.Identifier(name)
