"""The stores: a local folder (atomic rename) and S3 (moto's server over HTTP)."""

from __future__ import annotations

import contextlib
import os
import shutil
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError

from tests.fixtures_http import read_body, send, serve
from worker.common.errors import ConfigError, FatalError, TransientError, exit_code_for
from worker.common.stores import Store, check_key, open_store
from worker.common.stores import local as local_module
from worker.common.stores.local import LocalStore
from worker.common.stores.s3 import S3Store
from worker.common.stores.s3 import s3_client as s3_client_for_store

MiB = 1024 * 1024

# ---------------------------------------------------------------------------------------------
# Keys and open_store
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside", "feeds/../../x", "feeds//x", "feeds/./x", "feeds/x/",
     "C:/x", "feeds\\x", "a/\x00b", "a/b\n"],
)
def test_unsafe_keys_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="store key"):
        check_key(key)
    with pytest.raises(FatalError):
        LocalStore(tmp_path).put_bytes(key, b"x", content_type="text/plain")
    assert list(tmp_path.iterdir()) == []


def test_open_store_dispatches_on_the_scheme(tmp_path: Path) -> None:
    local = open_store(str(tmp_path / "out"))
    assert isinstance(local, LocalStore) and isinstance(local, Store)
    assert local.url_for("feeds/1/google.xml") == str(tmp_path / "out" / "feeds/1/google.xml")
    via_file = open_store(f"file://{tmp_path}/out")
    assert isinstance(via_file, LocalStore) and via_file.root == tmp_path / "out"
    s3 = open_store("s3://bucket/night/feeds/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Store) and isinstance(s3, Store)
    assert s3.url_for("feeds/1/google.xml") == "s3://bucket/night/feeds/feeds/1/google.xml"
    assert open_store("s3://bucket").url_for("a/b") == "s3://bucket/a/b"
    for bad in ("ftp://host/x", "file://otherhost/x", "s3:///prefix"):
        with pytest.raises(ConfigError, match="OUTPUT_URL"):
            open_store(bad)


# ---------------------------------------------------------------------------------------------
# LocalStore
# ---------------------------------------------------------------------------------------------


def test_local_publish_get_exists(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "out")
    source = tmp_path / "feed.xml.gz"
    source.write_bytes(b"\x1f\x8b" + os.urandom(3 * MiB))
    assert not store.exists("feeds/7/google.xml.gz")
    assert store.get_bytes("feeds/7/google.xml.gz") is None
    store.publish_file(
        "feeds/7/google.xml.gz", source, content_type="application/xml", content_encoding="gzip"
    )
    assert store.exists("feeds/7/google.xml.gz")
    published = Path(store.url_for("feeds/7/google.xml.gz"))
    assert published.is_absolute() and published.read_bytes() == source.read_bytes()
    assert published.stat().st_mode & 0o777 == 0o644
    store.put_bytes("feeds/7/google.manifest.json", b'{"rows": 3}', content_type="application/json")
    assert store.get_bytes("feeds/7/google.manifest.json") == b'{"rows": 3}'
    store.put_bytes("feeds/7/google.manifest.json", b'{"rows": 4}', content_type="application/json")
    assert store.get_bytes("feeds/7/google.manifest.json") == b'{"rows": 4}'
    assert sorted(p.name for p in published.parent.iterdir()) == [
        "google.manifest.json", "google.xml.gz"
    ]


def test_a_publish_that_fails_midway_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("feeds/1/meta.csv", b"old,complete\n", content_type="text/csv")
    source = tmp_path / "new.csv"
    source.write_bytes(b"new," * 1_000_000)

    def copy_half_then_fail(src: object, dst: object, length: int = 0) -> None:
        dst.write(src.read(1000))  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(TransientError, match="No space left on device") as caught:
        store.publish_file("feeds/1/meta.csv", source, content_type="text/csv")
    assert "feeds/1/meta.csv" in str(caught.value)
    assert store.get_bytes("feeds/1/meta.csv") == b"old,complete\n"
    assert os.listdir(tmp_path / "feeds/1") == ["meta.csv"]


def test_a_bug_midway_propagates_unchanged_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/b.txt", b"before", content_type="text/plain")

    def broken(src: object, dst: object, length: int = 0) -> None:
        dst.write(b"partial")  # type: ignore[attr-defined]
        raise KeyError("a bug")

    monkeypatch.setattr(local_module.shutil, "copyfileobj", broken)
    (tmp_path / "src").write_bytes(b"after")
    with pytest.raises(KeyError):
        store.publish_file("a/b.txt", tmp_path / "src", content_type="text/plain")
    assert store.get_bytes("a/b.txt") == b"before"
    assert os.listdir(tmp_path / "a") == ["b.txt"]


def test_an_unreadable_source_leaves_the_old_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "out")
    store.put_bytes("feeds/1/x.xml", b"<old/>", content_type="application/xml")
    with pytest.raises(FatalError, match="cannot be read"):
        store.publish_file("feeds/1/x.xml", tmp_path / "missing.xml", content_type="text/xml")
    assert store.get_bytes("feeds/1/x.xml") == b"<old/>"
    assert os.listdir(tmp_path / "out/feeds/1") == ["x.xml"]


def test_an_unwritable_root_is_a_fatal_error_naming_the_key(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    store = LocalStore(blocker)
    with pytest.raises(FatalError, match=r"images/1/a\.jpg") as caught:
        store.put_bytes("images/1/a.jpg", b"jpeg", content_type="image/jpeg")
    assert exit_code_for(caught.value) == 65


def test_readers_never_see_a_half_written_file(tmp_path: Path) -> None:
    # The published name only ever points at a complete file: while the copy runs, the old
    # content is what a reader sees.
    store = LocalStore(tmp_path)
    store.put_bytes("f/x.bin", b"A" * 100, content_type="application/octet-stream")
    seen: list[bytes | None] = []
    real_copy = shutil.copyfileobj

    def observing_copy(src: object, dst: object, length: int = 0) -> None:
        dst.write(src.read(50))  # type: ignore[attr-defined]
        dst.flush()  # type: ignore[attr-defined]
        seen.append(store.get_bytes("f/x.bin"))
        real_copy(src, dst, length)  # type: ignore[arg-type]

    source = tmp_path / "new.bin"
    source.write_bytes(b"B" * 200)
    original = local_module.shutil.copyfileobj
    local_module.shutil.copyfileobj = observing_copy  # type: ignore[assignment]
    try:
        store.publish_file("f/x.bin", source, content_type="application/octet-stream")
    finally:
        local_module.shutil.copyfileobj = original
    assert seen == [b"A" * 100]
    assert store.get_bytes("f/x.bin") == b"B" * 200


# ---------------------------------------------------------------------------------------------
# S3Store against moto's server over HTTP
# ---------------------------------------------------------------------------------------------


def s3_client(endpoint: str, **config: object) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**{"retries": {"mode": "standard", "max_attempts": 2}, **config}),  # type: ignore[arg-type]
    )


@pytest.fixture
def bucket(moto_endpoint: str, request: pytest.FixtureRequest) -> str:
    name = "feeds-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    s3_client(moto_endpoint).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def test_s3_publish_get_exists(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    client = s3_client(moto_endpoint)
    store = S3Store(bucket, "/night/", client=client)
    source = tmp_path / "google.xml.gz"
    source.write_bytes(b"\x1f\x8b" + os.urandom(100_000))
    assert not store.exists("feeds/7/google.xml.gz")
    assert store.get_bytes("feeds/7/google.xml.gz") is None
    store.publish_file(
        "feeds/7/google.xml.gz", source, content_type="application/xml", content_encoding="gzip"
    )
    assert store.exists("feeds/7/google.xml.gz")
    assert store.url_for("feeds/7/google.xml.gz") == f"s3://{bucket}/night/feeds/7/google.xml.gz"
    head = client.head_object(Bucket=bucket, Key="night/feeds/7/google.xml.gz")  # type: ignore[attr-defined]
    assert head["ContentType"] == "application/xml"
    assert head["ContentEncoding"] == "gzip"
    assert head["ContentLength"] == source.stat().st_size
    store.put_bytes("feeds/7/google.manifest.json", b'{"rows":1}', content_type="application/json")
    assert store.get_bytes("feeds/7/google.manifest.json") == b'{"rows":1}'
    head = client.head_object(Bucket=bucket, Key="night/feeds/7/google.manifest.json")  # type: ignore[attr-defined]
    assert head["ContentType"] == "application/json"


def test_s3_multipart_upload_of_a_large_file(
    moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    client = s3_client(moto_endpoint)
    config = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2
    )
    store = S3Store(bucket, "", client=client, transfer_config=config)
    source = tmp_path / "big.xml.gz"
    data = os.urandom(11 * MiB)
    source.write_bytes(data)
    store.publish_file(
        "feeds/9/meta.xml.gz", source, content_type="application/xml", content_encoding="gzip"
    )
    head = client.head_object(Bucket=bucket, Key="feeds/9/meta.xml.gz")  # type: ignore[attr-defined]
    # A multipart object's ETag ends with the number of parts: 5 + 5 + 1 MiB.
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "application/xml"
    assert head["ContentEncoding"] == "gzip"
    assert store.get_bytes("feeds/9/meta.xml.gz") == data
    uploads = client.list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
    assert uploads.get("Uploads", []) == []


def test_s3_a_failed_multipart_upload_leaves_the_old_object_and_no_upload(
    moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    client = s3_client(moto_endpoint)
    config = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=1,
        use_threads=False,
    )
    store = S3Store(bucket, "", client=client, transfer_config=config)
    store.put_bytes("feeds/1/google.xml", b"<old/>", content_type="application/xml")
    source = tmp_path / "big.xml"
    source.write_bytes(os.urandom(11 * MiB))
    calls = {"parts": 0}

    def fail_the_second_part(**kwargs: object) -> None:
        calls["parts"] += 1
        if calls["parts"] == 2:
            # What botocore raises once its own retries on a dropped connection are spent.
            raise ConnectionClosedError(endpoint_url=moto_endpoint)

    client.meta.events.register("before-call.s3.UploadPart", fail_the_second_part)  # type: ignore[attr-defined]
    with pytest.raises(TransientError, match=r"google\.xml") as caught:
        store.publish_file("feeds/1/google.xml", source, content_type="application/xml")
    assert exit_code_for(caught.value) == 75
    assert store.get_bytes("feeds/1/google.xml") == b"<old/>"
    uploads = client.list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
    assert uploads.get("Uploads", []) == []


def test_s3_a_missing_bucket_is_fatal_and_named(moto_endpoint: str, tmp_path: Path) -> None:
    store = S3Store("no-such-bucket", "p", client=s3_client(moto_endpoint))
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(FatalError, match="s3://no-such-bucket/p/feeds/1/f") as caught:
        store.publish_file("feeds/1/f", source, content_type="text/plain")
    assert "NoSuchBucket" in str(caught.value)
    with pytest.raises(FatalError, match="NoSuchBucket"):
        store.put_bytes("feeds/1/f", b"x", content_type="text/plain")


def test_s3_an_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = s3_client(f"http://127.0.0.1:{port}", connect_timeout=1)
    store = S3Store("bucket", "", client=client)
    with pytest.raises(TransientError, match="s3://bucket/a/b"):
        store.put_bytes("a/b", b"x", content_type="text/plain")
    with pytest.raises(TransientError):
        store.exists("a/b")


class FakeS3:
    """An S3 endpoint on 127.0.0.1 that throttles the first ``throttle`` PUTs with 503 SlowDown."""

    def __init__(self, throttle: int) -> None:
        self.throttle = throttle
        self.puts: list[tuple[str, bytes]] = []
        self._stack = contextlib.ExitStack()
        self.endpoint = self._stack.enter_context(serve(fallback=self._answer)).base

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        if h.command != "PUT":
            send(h, 501)
            return
        self.puts.append((h.path, read_body(h)))
        if len(self.puts) <= self.throttle:
            error = (b"<Error><Code>SlowDown</Code><Message>Please reduce your request "
                     b"rate.</Message></Error>")
            send(h, 503, error, {"Content-Type": "application/xml"})
            return
        send(h, 200, b"", {"ETag": '"0123456789abcdef0123456789abcdef"'})

    def stop(self) -> None:
        self._stack.close()


DUMMY_KEYS = {
    "region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"
}


def test_s3_throttling_is_retried_by_the_store_client() -> None:
    fake = FakeS3(throttle=2)
    try:
        store = S3Store("bucket", "p", client=s3_client_for_store(fake.endpoint, **DUMMY_KEYS))
        store.put_bytes("feeds/1/m.json", b'{"rows":1}', content_type="application/json")
    finally:
        fake.stop()
    assert [path for path, _ in fake.puts] == ["/bucket/p/feeds/1/m.json"] * 3


def test_s3_throttling_past_the_retries_is_transient() -> None:
    fake = FakeS3(throttle=100)
    try:
        client = s3_client(fake.endpoint, retries={"mode": "standard", "total_max_attempts": 1})
        store = S3Store("bucket", "", client=client)
        with pytest.raises(TransientError, match="SlowDown") as caught:
            store.put_bytes("a/b", b"x", content_type="text/plain")
    finally:
        fake.stop()
    assert exit_code_for(caught.value) == 75
    assert len(fake.puts) == 1
