"""Settings: read from the environment once, at start, into one frozen, validated object.

Nothing else in the project reads ``os.environ``. Every problem is reported at once, each naming the
variable, what is wrong with its value and what is expected.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from worker.common.errors import ConfigError
from worker.common.redact import redact

TASKS = ("collect", "feed", "images")
# Tasks outside the night's array jobs: one process, no shop (`catalog-submit migrate --on-batch`).
MAINTENANCE_TASKS = ("migrate",)
# The kernel's and devices' own files: never a catalog, whatever SOURCE_FILE_ROOT says.
SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    database_url: str | None = field(repr=False)
    output_url: str = "./out"
    aws_endpoint_url: str | None = None
    log_format: Literal["json", "console"] = "json"
    # Which shop: DESIGN.md's order, SHOP_ID, then SHOP_IDS + index, then RUN_ID + index (+ offset).
    shop_id: str | None = None
    shop_ids: tuple[str, ...] | None = None
    run_id: str | None = None
    array_index: int = 0
    array_size: int | None = None
    shop_index_offset: int = 0
    job_id: str | None = None
    attempt: int = 1
    # Networks a shop-supplied URL may reach although they are private or loopback (tests, the demo).
    # Empty, the default, means none: the address guard refuses every non-public address.
    fetch_allow_networks: tuple[Network, ...] = field(default_factory=tuple)
    # Push through the shrink and publish gates for this run (a human decision, never a default).
    force: bool = False
    # Seconds a second attempt for the same shop waits for the first before exiting 75.
    shop_lock_timeout: float = 600.0
    database_secret_arn: str | None = None
    # The public http(s) address of OUTPUT_URL's root (a CDN or the bucket's website), for the image
    # URLs written into feeds: the platforms cannot fetch s3:// or a local path.
    public_base_url: str | None = None
    # images (docs/net-and-stores.md, "Images: time and memory"): the whole time one image's
    # download may take, body included (a server dripping a byte every few seconds is cut here)...
    image_total_timeout: float = 60.0
    # ...the time one images attempt takes new images for (then it records what it did and exits
    # 75, so that the next attempt continues: below the job definition's attempt timeout)...
    images_time_budget: float = 3 * 3600.0
    # ...the bytes of decoded pixels (width × height × 4 of each image being decoded) in flight...
    image_decode_memory: int = 1 << 30
    # ...and how often, at the latest, the images recorded so far are committed.
    images_commit_seconds: float = 30.0
    # Seconds one connection attempt may take, and how long a child keeps retrying a full or
    # unreachable database (jittered back-off) before exiting 75.
    database_connect_timeout: float = 10.0
    database_connect_retry_s: float = 300.0
    # The one folder local catalog files (file:// or a path) may be read from; None, the default,
    # allows none: a shop's source is then http(s) or s3 only.
    source_file_root: Path | None = None
    # FEED_LINE_CACHE: reuse each channel's line for a product nothing of which changed since the
    # last build (worker/feed/linecache.py); 0 builds every line and leaves the cache untouched.
    feed_line_cache: bool = True

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, require_database: bool = True
    ) -> Settings:
        """Parse and validate; raise ``ConfigError`` listing every problem found."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        def integer(name: str, default: int, minimum: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a whole number: expected an integer ≥ {minimum}")
                return default
            if value < minimum:
                problems.append(f"{name}={value} is below {minimum}: expected an integer ≥ {minimum}")
                return default
            return value

        database_url = get("DATABASE_URL")
        if database_url is not None and database_url.startswith("{"):
            # A Secrets Manager secret injected whole by the job definition: RDS's JSON shape.
            try:
                database_url = database_url_from_secret(database_url)
            except ConfigError as exc:
                problems.append(f"DATABASE_URL holds JSON that is not a usable RDS secret: {exc}")
                database_url = None
        if database_url is None and get("DATABASE_SECRET_ARN") is None and require_database:
            problems.append(
                "DATABASE_URL is not set: give a libpq URI such as postgresql://user@host:5432/db"
            )
        elif database_url is not None and not database_url.startswith(
            ("postgresql://", "postgres://")
        ) and "=" not in database_url:
            problems.append(
                "DATABASE_URL is not a libpq URI (its value is not shown: it may hold a "
                "password): expected postgresql://user@host:5432/db or 'host=… dbname=…'"
            )

        output_url = get("OUTPUT_URL") or "./out"
        if output_url.startswith("s3://"):
            bucket = output_url[5:].split("/", 1)[0]
            if not bucket:
                problems.append(f"OUTPUT_URL={redact(output_url)!r} names no bucket: expected s3://bucket/prefix")
        elif "://" in output_url and not output_url.startswith("file://"):
            problems.append(
                f"OUTPUT_URL={redact(output_url)!r} has an unsupported scheme: expected s3://bucket/prefix "
                "or a local folder"
            )
        else:
            blocker = _not_a_folder(output_url)
            if blocker is not None:
                problems.append(
                    f"OUTPUT_URL={redact(output_url)!r} cannot be a folder: {blocker} is an existing file; "
                    "point OUTPUT_URL at a folder (it is created if missing) or at s3://bucket/prefix"
                )

        public_base_url = get("PUBLIC_BASE_URL")
        if public_base_url is not None and not public_base_url.startswith(("https://", "http://")):
            problems.append(
                f"PUBLIC_BASE_URL={redact(public_base_url)!r} is not an http(s) address: expected the public "
                "address of OUTPUT_URL's root, such as https://cdn.example.com/nightly"
            )

        log_format = get("LOG_FORMAT")
        if log_format is None:
            log_format = "console" if _stdout_is_tty() else "json"
        elif log_format not in ("json", "console"):
            problems.append(f"LOG_FORMAT={log_format!r} is not known: expected json or console")
            log_format = "json"

        shop_ids: tuple[str, ...] | None = None
        raw_ids = get("SHOP_IDS")
        if raw_ids is not None:
            shop_ids = tuple(part.strip() for part in raw_ids.split(","))
            if any(not part for part in shop_ids):
                problems.append(
                    f"SHOP_IDS={raw_ids!r} has an empty entry: expected a comma list such as 5,6,7"
                )

        networks: list[Network] = []
        raw_networks = get("FETCH_ALLOW_NETWORKS")
        if raw_networks is not None:
            for part in raw_networks.split(","):
                try:
                    networks.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError:
                    problems.append(
                        f"FETCH_ALLOW_NETWORKS has {part.strip()!r}, not a network: expected CIDRs "
                        "such as 127.0.0.0/8,::1/128"
                    )

        source_file_root: Path | None = None
        raw_root = get("SOURCE_FILE_ROOT")
        if raw_root is not None:
            root = Path(raw_root)
            resolved = Path(os.path.realpath(root))
            if not root.is_absolute():
                problems.append(f"SOURCE_FILE_ROOT={raw_root!r} is not an absolute path: expected "
                                "the folder local catalogs may be read from, e.g. /srv/catalogs")
            elif not resolved.is_dir():
                problems.append(f"SOURCE_FILE_ROOT={raw_root!r} is not an existing folder")
            elif resolved == Path("/") or any(
                resolved == d or resolved.is_relative_to(d) for d in SYSTEM_DIRS
            ):
                problems.append(f"SOURCE_FILE_ROOT={raw_root!r} would expose the system's own "
                                "files: name a folder that holds only catalogs")
            else:
                source_file_root = resolved

        def flag(name: str, default: bool) -> bool:
            raw = (get(name) or ("1" if default else "0")).lower()
            if raw not in ("0", "1", "true", "false", "yes", "no"):
                problems.append(f"{name}={raw!r} is not a boolean: expected 1 or 0")
                return default
            return raw in ("1", "true", "yes")

        force = flag("CATALOG_FORCE", False)
        feed_line_cache = flag("FEED_LINE_CACHE", True)

        def seconds(name: str, default: float, minimum: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a number of seconds: expected ≥ {minimum:g}")
                return default
            if not value >= minimum or value == float("inf"):
                problems.append(f"{name}={raw} is out of range: expected seconds ≥ {minimum:g}")
                return default
            return value

        from worker.common.shops import is_shop_id

        shop_id = get("SHOP_ID")
        if shop_id is not None and not is_shop_id(shop_id):
            problems.append(
                f"SHOP_ID={shop_id!r} is not a shop id: expected 1–64 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        for position, part in enumerate(shop_ids or ()):
            if part and not is_shop_id(part):
                problems.append(
                    f"SHOP_IDS entry {position} ({part!r}) is not a shop id: expected 1–64 "
                    "letters, digits, '-' or '_', starting with a letter or digit"
                )

        image_total_timeout = seconds("IMAGE_TOTAL_TIMEOUT", 60.0, 1.0)
        images_time_budget = seconds("IMAGES_TIME_BUDGET", 3 * 3600.0, 1.0)
        images_commit_seconds = seconds("IMAGES_COMMIT_SECONDS", 30.0, 0.1)
        image_decode_memory = integer("IMAGE_DECODE_MEMORY", 1 << 30, 1 << 20)

        lock_timeout = integer("SHOP_LOCK_TIMEOUT", 600, 0)
        array_index = integer("AWS_BATCH_JOB_ARRAY_INDEX", 0, 0)
        array_size_raw = get("AWS_BATCH_JOB_ARRAY_SIZE")
        array_size = integer("AWS_BATCH_JOB_ARRAY_SIZE", 0, 0) if array_size_raw else None
        offset = integer("SHOP_INDEX_OFFSET", 0, 0)
        attempt = integer("AWS_BATCH_JOB_ATTEMPT", 1, 1)
        connect_timeout = integer("DATABASE_CONNECT_TIMEOUT", 10, 1)
        connect_retry = integer("DATABASE_CONNECT_RETRY_SECONDS", 300, 0)

        if problems:
            raise ConfigError(
                "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return cls(
            database_url=database_url,
            output_url=output_url,
            aws_endpoint_url=get("AWS_ENDPOINT_URL"),
            log_format=log_format,  # type: ignore[arg-type]
            shop_id=shop_id,
            shop_ids=shop_ids,
            run_id=get("RUN_ID"),
            array_index=array_index,
            array_size=array_size,
            shop_index_offset=offset,
            job_id=get("AWS_BATCH_JOB_ID"),
            attempt=attempt,
            fetch_allow_networks=tuple(networks),
            force=force,
            shop_lock_timeout=float(lock_timeout),
            database_secret_arn=get("DATABASE_SECRET_ARN"),
            public_base_url=public_base_url.rstrip("/") if public_base_url else None,
            image_total_timeout=image_total_timeout,
            images_time_budget=images_time_budget,
            image_decode_memory=image_decode_memory,
            images_commit_seconds=images_commit_seconds,
            database_connect_timeout=float(connect_timeout),
            database_connect_retry_s=float(connect_retry),
            source_file_root=source_file_root,
            feed_line_cache=feed_line_cache,
        )


def database_url_from_secret(secret: str) -> str:
    """A libpq connection string from a Secrets Manager secret: a URI itself, or RDS's JSON shape.

    The one place both the workers (whose job definition injects the secret whole as DATABASE_URL)
    and the submitter Lambda (which reads it by ARN) turn a secret into a connection string.
    """
    import json

    import psycopg.conninfo

    text = secret.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(
            "the database secret is neither a postgresql:// URI nor JSON with username, password, "
            "host, port and dbname"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("the database secret's JSON is not an object")
    missing = [k for k in ("username", "password", "host") if not data.get(k)]
    if missing:
        raise ConfigError(f"the database secret lacks {', '.join(missing)}")
    # make_conninfo quotes every value, so a password with any character, or a host that is a
    # socket folder, survives (neither fits a URI's authority as written).
    return psycopg.conninfo.make_conninfo(
        user=str(data["username"]),
        password=str(data["password"]),
        host=str(data["host"]),
        port=str(data.get("port") or 5432),
        dbname=str(data.get("dbname") or data.get("database") or data.get("dbName") or "postgres"),
    )


def _stdout_is_tty() -> bool:
    try:
        return os.isatty(1)
    except OSError:
        return False


def _not_a_folder(output_url: str) -> str | None:
    """The existing non-folder on the way to a local OUTPUT_URL (itself or a parent), if any."""
    from pathlib import Path
    from urllib.parse import unquote, urlsplit

    path = Path(unquote(urlsplit(output_url).path)) if output_url.startswith("file://") else Path(
        output_url
    )
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return None if candidate.is_dir() else str(candidate)
        except OSError:
            return None
    return None
