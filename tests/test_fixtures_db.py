"""The database provider chain picks what the issue says, in order."""

from pathlib import Path

import psycopg

from tests import fixtures_db


def _never(env):
    return False


def _always(env):
    return True


def _no_binaries(env):
    return None


def _binaries(env):
    return Path("/opt/pg/bin")


def test_test_database_url_wins_over_everything():
    choice = fixtures_db.choose(
        {"TEST_DATABASE_URL": "postgresql://x@h/db"}, docker_ping=_always, find_binaries=_binaries
    )
    assert choice.provider == "url"


def test_docker_comes_second():
    assert fixtures_db.choose({}, docker_ping=_always, find_binaries=_binaries).provider == "testcontainers"


def test_machine_binaries_come_third():
    choice = fixtures_db.choose({}, docker_ping=_never, find_binaries=_binaries)
    assert choice == fixtures_db.Choice("binaries", "/opt/pg/bin")


def test_binaries_can_be_skipped_for_the_embedded_server():
    env = {"CATALOG_TEST_SKIP_PG_BINARIES": "1"}
    assert fixtures_db.choose(env, docker_ping=_never, find_binaries=_binaries).provider == "embedded"


def test_embedded_is_last():
    assert fixtures_db.choose({}, docker_ping=_never, find_binaries=_no_binaries).provider == "embedded"


def test_docker_probe_does_not_hang_on_a_dead_socket(tmp_path):
    # A DOCKER_HOST nobody listens on: the probe answers False quickly instead of raising or hanging.
    assert fixtures_db.docker_answers({"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}, timeout=1) is False


def test_binaries_are_found_on_path(tmp_path):
    for name in ("initdb", "pg_ctl"):
        exe = tmp_path / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert fixtures_db.find_pg_binaries({"PATH": str(tmp_path)}) == tmp_path


def test_every_test_gets_a_clean_migrated_database(conn):
    # Writes here must not leak into the next test's database (see the next test).
    conn.execute(
        "INSERT INTO shops (id, name, source_url, format, currency) VALUES ('leak', 'x', 'f', 'json', 'KRW')"
    )
    conn.commit()
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1


def test_the_previous_test_left_nothing_behind(conn):
    assert conn.execute("SELECT count(*) FROM shops").fetchone()[0] == 0


def test_with_database_keeps_the_server(database_url):
    other = fixtures_db.with_database(database_url, "postgres")
    with psycopg.connect(other) as c:
        assert c.info.dbname == "postgres"


def test_docker_probe_reads_a_real_ping_answer(tmp_path):
    import socket
    import threading

    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer():
        client, _ = server.accept()
        with client:
            client.recv(1024)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    t = threading.Thread(target=answer)
    t.start()
    try:
        assert fixtures_db.docker_answers({"DOCKER_HOST": f"unix://{path}"}, timeout=2) is True
    finally:
        t.join(5)
        server.close()
