"""Where a shop's catalog bytes come from: http(s), s3://bucket/key, and — only where the
deployment allows it — a local file (file:// or a path) inside ``SOURCE_FILE_ROOT``.

``open_source`` yields a ``Source``: a binary, streaming, already-decompressed reader (gzip is found
by its magic bytes, never by the name), the count of bytes read from the source itself, and the
validators (ETag, Last-Modified) for the next conditional GET. Nothing is downloaded whole, and
what the reader hands out is held to the shop's total limit (``limits.Limits``): a gzip bomb or an
endless body is refused, exit 65, naming the limit, the shop and the byte it got to.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from worker.collect.limits import Limits, size
from worker.common.errors import FatalError, TransientError
from worker.common.redact import redact
from worker.common.settings import SYSTEM_DIRS, Settings

GZIP_MAGIC = b"\x1f\x8b"
READ_SIZE = 1 << 20
HEAD_BYTES = 160


class CountingReader(io.RawIOBase):
    """A raw reader over another file object that counts (and may hash) the bytes it hands out."""

    def __init__(self, inner: Any, *, digest: Any = None) -> None:
        self._inner = inner
        self.count = 0
        self.digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if hasattr(self._inner, "readinto"):
            n = self._inner.readinto(view)
        else:
            data = self._inner.read(len(view))
            n = len(data)
            view[:n] = data
        n = n or 0
        self.count += n
        if self.digest is not None and n:
            self.digest.update(view[:n])
        return n


class _GzipReader(io.RawIOBase):
    """Decompress gzip (concatenated members too), output bounded per call, damage reported."""

    def __init__(self, inner: IO[bytes], where: str) -> None:
        self._inner = inner
        self._where = where
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in = b""
        self._member_open = False
        self._pending = b""
        self.out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if not self._in:
                self._in = self._inner.read(READ_SIZE)
                if not self._in:
                    if self._member_open:
                        raise FatalError(
                            f"{self._where}: the gzip stream ends early (truncated) after "
                            f"{self.out} uncompressed bytes: re-export or re-upload the file"
                        )
                    return 0
            if self._zlib.eof:
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                # max_length bounds what one small input may inflate to at once (a gzip bomb).
                self._pending = self._zlib.decompress(self._in, READ_SIZE)
            except zlib.error as exc:
                raise FatalError(
                    f"{self._where}: the gzip stream is damaged after {self.out} uncompressed "
                    f"bytes ({exc}): re-export or re-upload the file"
                ) from exc
            self._member_open = not self._zlib.eof
            self._in = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.out += n
        return n


@dataclass
class Source:
    """An open catalog: ``stream`` is decompressed bytes; ``bytes_read`` counts the source's own."""

    url: str
    stream: io.BufferedReader
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    compressed: bool = False
    # A local file's bytes are never quoted in a message: only a remote response's may be.
    local: bool = False
    _counter: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        # A traceback or a log may print a Source: never its URL's credentials or query string.
        return f"Source(url={describe(self.url)!r}, status={self.status}, compressed={self.compressed})"

    @property
    def bytes_read(self) -> int:
        return 0 if self._counter is None else _count_of(self._counter)

    @property
    def content_digest(self) -> str | None:
        """sha256 of the bytes read so far, for sources that have no validator of their own."""
        digest = getattr(self._counter, "digest", None)
        return None if digest is None else str(digest.hexdigest())

    @property
    def unchanged(self) -> bool:
        return self.status == 304

    def head(self) -> bytes:
        """The first bytes of the (decompressed) catalog, for error messages; consumes nothing."""
        return self.stream.peek(HEAD_BYTES)[:HEAD_BYTES]


def describe(url: str) -> str:
    """The source as named in messages: the URL without credentials or query string."""
    return redact(url)


@contextmanager
def open_source(
    url: str,
    *,
    settings: Settings,
    etag: str | None = None,
    last_modified: str | None = None,
    where: str = "",
    limits: Limits | None = None,
) -> Iterator[Source]:
    """Open the catalog at ``url`` for streaming; after a 304 the Source is ``unchanged``."""
    where = where or describe(url)
    limits = limits or Limits()
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("http", "https"):
        with _open_http(url, settings, etag, last_modified, where, limits) as source:
            yield source
    elif scheme == "s3":
        with _open_s3(url, settings, etag, last_modified, where, limits) as source:
            yield source
    elif scheme in ("", "file"):
        with _open_file(url, where, settings.source_file_root, limits) as source:
            yield source
    else:
        raise FatalError(f"{where}: unsupported source scheme {scheme!r}: use https, http or s3")


class _Capped(io.RawIOBase):
    """The decompressed bytes, refused past the shop's cap (``max_total_bytes``, and for gzip
    ``max_inflate_ratio`` × the compressed size — its Content-Length or file size, else the
    compressed bytes read so far — but never less than ``limits.INFLATE_FLOOR``)."""

    def __init__(self, inner: Any, where: str, limits: Limits, compressed: bool,
                 compressed_size: int | None, counter: Any) -> None:
        self._inner = inner
        self._where = where
        self._limits = limits
        self._compressed = compressed
        self._size = compressed_size
        self._counter = counter
        self.out = 0

    def readable(self) -> bool:
        return True

    def _cap(self) -> tuple[int, str]:
        limits = self._limits
        if not self._compressed:
            return limits.max_total_bytes, "max_total_bytes"
        return limits.inflated_cap(
            self._size if self._size is not None else _count_of(self._counter))

    def readinto(self, buffer: Any) -> int:
        n = int(self._inner.readinto(buffer) or 0)
        self.out += n
        cap, name = self._cap()
        if self.out > cap:
            what = (f"{self._limits.max_inflate_ratio} × the {self._size or _count_of(self._counter)}"
                    " compressed bytes" if name == "max_inflate_ratio" else size(cap))
            raise FatalError(
                f"{self._where}: the catalog passes format_options.{name} ({what}) at byte "
                f"{self.out} (uncompressed): refused, nothing was changed. A gzip bomb or a "
                f"runaway export? If the catalog really is this large, raise "
                f"format_options.{name} for this shop"
            )
        return n


def _count_of(counter: Any) -> int:
    found = getattr(counter, "count", None)
    if found is None:
        found = getattr(counter, "bytes_read", 0)
    return int(found or 0)


def _wrap(url: str, raw: Any, where: str, counter: Any, limits: Limits,
          compressed_size: int | None, **kw: Any) -> Source:
    """Buffer the raw reader, look at its first two bytes, and decompress gzip when found."""
    buffered = io.BufferedReader(raw, READ_SIZE)
    compressed = buffered.peek(2)[:2] == GZIP_MAGIC
    inner: Any = _GzipReader(buffered, where) if compressed else buffered
    capped = _Capped(inner, where, limits, compressed, compressed_size, counter)
    stream: io.BufferedReader = io.BufferedReader(capped, READ_SIZE)  # type: ignore[arg-type]
    return Source(url=url, stream=stream, compressed=compressed, _counter=counter, **kw)


def file_validator(content_digest: str, config: str) -> str:
    """What collect stores as a local file's "ETag": its content and the shop's configuration."""
    return f"sha256:{content_digest}:{config}"


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path)) if url.lower().startswith("file://") else Path(url)


def local_file_validator(url: str, config: str, root: Path | None) -> str | None:
    """The validator of a local source as it is now (one fast pass of sha256), or None."""
    try:
        with _open_local(url, "", root) as handle:
            digest = hashlib.file_digest(handle, "sha256")
    except (OSError, FatalError):
        return None
    return file_validator(digest.hexdigest(), config)


def _allowed_path(url: str, where: str, root: Path | None) -> Path:
    """The local file ``url`` names, resolved, when the deployment allows it; else exit 65."""
    if root is None:
        raise FatalError(
            f"{where}: a local file is not an allowed source here (SOURCE_FILE_ROOT is not set): "
            "a shop's source_url must be https://, http:// or s3://"
        )
    path = _local_path(url)
    resolved = Path(os.path.realpath(root / path))  # an absolute path replaces root
    if any(resolved == d or resolved.is_relative_to(d) for d in SYSTEM_DIRS):
        raise FatalError(f"{where}: a local source may never be under /proc, /sys or /dev")
    if not resolved.is_relative_to(root):
        raise FatalError(
            f"{where}: a local source must be a file inside SOURCE_FILE_ROOT ({root}), "
            "symbolic links included: this one resolves outside it"
        )
    return resolved


def _open_local(url: str, where: str, root: Path | None) -> io.FileIO:
    """The allowed local file, opened: a regular file inside the root, checked once opened."""
    path = _allowed_path(url, where, root)
    try:
        # O_NOFOLLOW: the last component cannot have become a link since it was resolved;
        # O_NONBLOCK: a pipe put there must not hang the task (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise FatalError(f"{where}: no such file: check the shop's source_url") from exc
    except IsADirectoryError as exc:
        raise FatalError(f"{where}: is a folder, not a catalog file") from exc
    except PermissionError as exc:
        raise FatalError(f"{where}: permission denied reading the catalog file") from exc
    except OSError as exc:
        raise FatalError(f"{where}: cannot open the catalog file ({exc.strerror})") from exc
    handle = io.FileIO(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FatalError(f"{where}: not a regular file (a folder, device or pipe)")
        os.set_blocking(fd, True)
        # What was opened, not what the name said: a folder swapped for a link in between.
        link = f"/proc/self/fd/{fd}"
        if root is not None and os.path.islink(link) and not Path(
            os.path.realpath(link)
        ).is_relative_to(root):
            raise FatalError(f"{where}: a local source must be a file inside SOURCE_FILE_ROOT")
    except BaseException:
        handle.close()
        raise
    return handle


@contextmanager
def _open_file(url: str, where: str, root: Path | None, limits: Limits) -> Iterator[Source]:
    with _open_local(url, where, root) as handle:
        counter = CountingReader(handle, digest=hashlib.sha256())
        size_now = os.fstat(handle.fileno()).st_size
        yield _wrap(url, counter, where, counter, limits, size_now, local=True)


@contextmanager
def _open_s3(
    url: str, settings: Settings, etag: str | None, last_modified: str | None, where: str,
    limits: Limits,
) -> Iterator[Source]:
    import botocore.exceptions

    from worker.common import aws

    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise FatalError(f"{where}: an S3 source must be s3://bucket/key")
    client = aws.s3_client(settings.aws_endpoint_url)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if etag:
        kwargs["IfNoneMatch"] = etag
    try:
        response = client.get_object(**kwargs)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        if aws.http_status(exc) == 304 or aws.error_code(exc) in ("304", "NotModified"):
            yield Source(url=url, stream=io.BufferedReader(io.BytesIO(b"")), status=304,
                         etag=etag, last_modified=last_modified)
            return
        raise aws.as_catalog_error(
            exc, f"{where}: reading the S3 object",
            hint="check the bucket, the key and the job role's s3:GetObject permission",
        ) from exc
    body = response["Body"]
    try:
        counter = CountingReader(_S3Body(body, where))
        length = response.get("ContentLength")
        yield _wrap(
            url, counter, where, counter, limits,
            int(length) if isinstance(length, int) else None,
            etag=response.get("ETag"),
            last_modified=_http_date(response.get("LastModified")),
        )
    finally:
        body.close()


class _S3Body:
    """botocore's StreamingBody, its network failures turned into exit 75."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def read(self, n: int = -1) -> bytes:
        import botocore.exceptions

        try:
            return bytes(self._body.read(n))
        except (botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ResponseStreamingError,
                ConnectionError) as exc:
            raise TransientError(
                f"{self._where}: the S3 download broke off ({exc}); a later attempt will retry"
            ) from exc


def _http_date(value: Any) -> str | None:
    if value is None:
        return None
    from datetime import UTC
    from email.utils import format_datetime

    return format_datetime(value.astimezone(UTC), usegmt=True)


@contextmanager
def _open_http(
    url: str, settings: Settings, etag: str | None, last_modified: str | None, where: str,
    limits: Limits,
) -> Iterator[Source]:
    from worker.common import net

    with net.fetch(
        url, allow=settings.fetch_allow_networks, etag=etag, last_modified=last_modified
    ) as response:
        if response.status == 304:
            yield Source(url=url, stream=io.BufferedReader(io.BytesIO(b"")), status=304,
                         etag=etag, last_modified=last_modified, _counter=response)
            return
        yield _wrap(
            url, _Raw(response), where, response, limits, response.content_length,
            etag=response.etag, last_modified=response.last_modified,
        )


class _Raw(io.RawIOBase):
    """A RawIOBase view of a file-like object with read(n)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        view[: len(data)] = data
        return len(data)


