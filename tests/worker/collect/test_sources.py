"""Where bytes come from: local files, S3 (moto's server over HTTP), HTTP (a server on 127.0.0.1);
gzip found by its magic bytes; every failure a clear error with the right exit code."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from tests.fixtures_http import Route, serve
from worker.collect.sources import open_source
from worker.common.errors import ConfigError, FatalError, TransientError
from worker.common.settings import Settings

CATALOG = b'[{"id": "a"}, {"id": "b"}]\n' * 200


def settings(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": "postgresql://x@127.0.0.1/x", **env})


def read_all(url: str, **kw: object) -> tuple[bytes, int, bool]:
    if "settings" not in kw and ("://" not in url or url.startswith("file://")):
        # Local files are allowed from the folder they are in (the tests' tmp_path).
        folder = Path(url.removeprefix("file://")).parent
        kw.setdefault("settings", settings(SOURCE_FILE_ROOT=str(folder)))
    with open_source(url, settings=kw.pop("settings", settings()), **kw) as source:  # type: ignore[arg-type]
        data = source.stream.read()
        return data, source.bytes_read, source.compressed


# ---- local files and gzip ------------------------------------------------------------------


def test_local_path_and_file_url(tmp_path: Path) -> None:
    path = tmp_path / "catalog with space.json"
    path.write_bytes(CATALOG)
    assert read_all(str(path)) == (CATALOG, len(CATALOG), False)
    assert read_all(path.as_uri()) == (CATALOG, len(CATALOG), False)


def test_gzip_is_detected_by_magic_bytes_not_the_name(tmp_path: Path) -> None:
    packed = gzip.compress(CATALOG)
    disguised = tmp_path / "catalog.json"  # gzip without .gz
    disguised.write_bytes(packed)
    data, nbytes, compressed = read_all(str(disguised))
    assert (data, nbytes, compressed) == (CATALOG, len(packed), True)
    plain = tmp_path / "catalog.json.gz"  # .gz that is not gzip
    plain.write_bytes(CATALOG)
    assert read_all(str(plain))[2] is False


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_bytes(gzip.compress(b"first,") + gzip.compress(b"second"))
    assert read_all(str(path))[0] == b"first,second"


def test_gzip_bomb_is_inflated_in_bounded_steps(tmp_path: Path) -> None:
    path = tmp_path / "bomb"
    path.write_bytes(gzip.compress(b"\0" * (64 << 20)))  # 64 MiB of zeros in ~64 KB
    with open_source(str(path), settings=settings(SOURCE_FILE_ROOT=str(tmp_path))) as source:
        assert len(source.stream.read(4096)) == 4096
        assert source.bytes_read < 1 << 20


@pytest.mark.parametrize(("cut", "message"), [(-40, "truncated"), (None, "damaged")])
def test_broken_gzip_fails_clearly(tmp_path: Path, cut: int | None, message: str) -> None:
    packed = gzip.compress(CATALOG * 50)
    path = tmp_path / "c.gz"
    path.write_bytes(packed[:cut] if cut else packed[:30] + b"\x00garbage" * 4 + packed[60:])
    with pytest.raises(FatalError, match=message) as caught:
        read_all(str(path), where="shop s, source c.gz")
    assert "shop s, source c.gz" in str(caught.value)


def test_missing_file_is_a_fatal_error(tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="no such file"):
        read_all(str(tmp_path / "nope.json"))


# ---- S3 --------------------------------------------------------------------------------------


def test_s3_streams_gzip_and_honours_the_endpoint(s3: object, moto_endpoint: str) -> None:
    bucket = f"catalogs-{os.getpid()}"
    packed = gzip.compress(CATALOG)
    s3.put_object(Bucket=bucket, Key="shop/catalog.json", Body=packed)  # type: ignore[attr-defined]
    with open_source(f"s3://{bucket}/shop/catalog.json",
                     settings=settings(AWS_ENDPOINT_URL=moto_endpoint)) as source:
        assert source.stream.read() == CATALOG
        assert source.compressed and source.bytes_read == len(packed)
        etag = source.etag
    assert etag and etag.startswith('"')
    with open_source(f"s3://{bucket}/shop/catalog.json", etag=etag,
                     settings=settings(AWS_ENDPOINT_URL=moto_endpoint)) as source:
        assert source.unchanged and source.stream.read() == b""


def test_s3_missing_object_is_fatal_and_names_the_source(s3: object, moto_endpoint: str) -> None:
    with pytest.raises(FatalError, match=r"reading the S3 object failed: NoSuchKey") as caught:
        read_all(f"s3://catalogs-{os.getpid()}/missing.json", where="shop s, source s3://…",
                 settings=settings(AWS_ENDPOINT_URL=moto_endpoint))
    assert caught.value.exit_code == 65


# ---- HTTP ------------------------------------------------------------------------------------

LOCAL = {"FETCH_ALLOW_NETWORKS": "127.0.0.0/8"}


def test_http_streams_and_conditional_get_answers_304() -> None:
    packed = gzip.compress(CATALOG)
    with serve({"/c.json": Route(packed, etag='"v1"',
                                 headers={"Last-Modified": "Sat, 28 Nov 2026 01:00:00 GMT"})}) as srv:
        with open_source(srv.url("/c.json"), settings=settings(**LOCAL)) as source:
            assert source.stream.read() == CATALOG
            assert (source.etag, source.last_modified) == ('"v1"', "Sat, 28 Nov 2026 01:00:00 GMT")
            assert source.bytes_read == len(packed) and source.compressed
        with open_source(srv.url("/c.json"), settings=settings(**LOCAL), etag='"v1"') as source:
            assert source.unchanged
        assert srv.requests[-1][1].get("If-None-Match") == '"v1"'


def test_http_404_is_fatal_naming_url_and_status() -> None:
    with serve({}) as srv, pytest.raises(FatalError) as caught:
        read_all(srv.url("/missing.json"), settings=settings(**LOCAL))
    assert "404" in str(caught.value) and "/missing.json" in str(caught.value)
    assert caught.value.exit_code == 65


def test_http_body_that_breaks_off_is_transient() -> None:
    with serve({"/c": Route(CATALOG * 100, cut_after=5000)}) as srv, pytest.raises(
        TransientError
    ) as caught:
        read_all(srv.url("/c"), settings=settings(**LOCAL))
    assert caught.value.exit_code == 75


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/c.json",
               "http://[::1]/c.json"],
)
def test_address_guard_refuses_a_redirect_to_a_private_address(target: str) -> None:
    with serve({"/c": Route(status=302, headers={"Location": target})}) as srv, pytest.raises(
        FatalError
    ) as caught:
        read_all(srv.url("/c"), settings=settings(**LOCAL))
    assert caught.value.exit_code == 65
    assert "169.254.169.254" in str(caught.value) or "10.1.2.3" in str(caught.value) or (
        "::1" in str(caught.value))


def test_address_guard_refuses_loopback_unless_allowed() -> None:
    with serve({"/c": Route(CATALOG)}) as srv, pytest.raises(FatalError) as caught:
        read_all(srv.url("/c"), settings=settings())
    assert "127.0.0.1" in str(caught.value) and srv.requests == []


# ---- which local files ---------------------------------------------------------------------


def test_local_files_need_the_deployment_to_name_their_folder(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(CATALOG)
    with pytest.raises(FatalError, match=r"SOURCE_FILE_ROOT is not set\): a shop's source_url "
                                         r"must be https://, http:// or s3://") as caught:
        read_all(str(path), settings=settings(), where="shop s, source c.json")
    assert str(caught.value).startswith("shop s, source c.json: ")


def test_a_relative_path_is_read_from_the_root_and_may_not_climb_out(tmp_path: Path) -> None:
    root = tmp_path / "catalogs"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "c.json").write_bytes(CATALOG)
    (tmp_path / "outside.json").write_bytes(b"SECRET-OUTSIDE")
    allowed = settings(SOURCE_FILE_ROOT=str(root))
    assert read_all("shop/c.json", settings=allowed)[0] == CATALOG
    for escape in ("../outside.json", str(tmp_path / "outside.json"),
                   f"file://{tmp_path}/catalogs/../outside.json"):
        with pytest.raises(FatalError, match="must be a file inside SOURCE_FILE_ROOT") as caught:
            read_all(escape, settings=allowed)
        assert "SECRET-OUTSIDE" not in str(caught.value)


def test_a_symlink_out_of_the_root_is_refused_one_inside_is_read(tmp_path: Path) -> None:
    root = tmp_path / "catalogs"
    root.mkdir()
    (root / "real.json").write_bytes(CATALOG)
    (root / "inside.json").symlink_to(root / "real.json")
    (root / "environ").symlink_to("/proc/self/environ")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "sub").symlink_to("/etc", target_is_directory=True)
    allowed = settings(SOURCE_FILE_ROOT=str(root))
    assert read_all(str(root / "inside.json"), settings=allowed)[0] == CATALOG
    with pytest.raises(FatalError, match="never be under /proc, /sys or /dev"):
        read_all(str(root / "environ"), settings=allowed)
    for name in ("passwd", "sub/passwd"):
        with pytest.raises(FatalError, match="resolves outside it"):
            read_all(str(root / name), settings=allowed)


def test_a_pipe_or_device_in_the_root_is_not_a_catalog(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FatalError, match="not a regular file"):
        read_all(str(tmp_path / "fifo"), settings=settings(SOURCE_FILE_ROOT=str(tmp_path)))


def test_only_https_http_and_s3_are_remote_sources() -> None:
    for url in ("ftp://example.com/c.json", "gopher://example.com/", "sftp://h/c.csv"):
        with pytest.raises(FatalError, match="use https, http or s3"):
            read_all(url, settings=settings())


@pytest.mark.parametrize(
    ("value", "message"),
    [("catalogs", "is not an absolute path"), ("/nonexistent/catalogs", "not an existing folder"),
     ("/", "would expose the system's own files"), ("/proc", "would expose"),
     ("/dev/shm", "would expose")],
)
def test_source_file_root_is_validated_at_start(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"SOURCE_FILE_ROOT='{value}' .*{message}"):
        settings(SOURCE_FILE_ROOT=value)
