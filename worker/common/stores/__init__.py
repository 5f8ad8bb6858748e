"""Stores publish finished files (feeds, images) whole or not at all: a local folder or S3."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from worker.common.errors import ConfigError, FatalError


@runtime_checkable
class Store(Protocol):
    """Where finished files go; keys are '/'-separated relative paths such as feeds/7/google.xml."""

    def publish_file(
        self, key: str, path: Path, *, content_type: str, content_encoding: str | None = None
    ) -> None:
        """Publish the file at ``path`` under ``key``: readers see the old object or the new one."""
        ...

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        """Publish ``data`` under ``key``, atomically like ``publish_file``."""
        ...

    def get_bytes(self, key: str) -> bytes | None:
        """The object's content, or None when there is none (for small objects: manifests)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is published under ``key``."""
        ...

    def url_for(self, key: str) -> str:
        """Where ``key`` lives, for logs and manifests: s3://bucket/key or an absolute path."""
        ...


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative '/'-separated key, else raise ``FatalError``."""
    problem: str | None = None
    if not isinstance(key, str) or not key:
        problem = "is empty"
    elif key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        problem = "is absolute"
    elif "\\" in key or "\x00" in key or any(ord(ch) < 32 for ch in key):
        problem = "contains a backslash or a control character"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        problem = "has an empty, '.' or '..' segment"
    if problem is not None:
        raise FatalError(
            f"store key {key!r} {problem}: keys are '/'-separated relative paths such as "
            "feeds/{shop_id}/{channel}.xml.gz (check the shop id and channel name)"
        )
    return key


def open_store(output_url: str, *, endpoint_url: str | None = None) -> Store:
    """The store for ``OUTPUT_URL``: s3://bucket/prefix, file:///abs/path or a local folder."""
    if output_url.startswith("s3://"):
        from worker.common.stores.s3 import S3Store

        parts = urlsplit(output_url)
        if not parts.netloc:
            raise ConfigError(f"OUTPUT_URL={output_url!r} names no bucket: expected s3://bucket/prefix")
        return S3Store(parts.netloc, parts.path, endpoint_url=endpoint_url)

    from worker.common.stores.local import LocalStore

    if output_url.startswith("file://"):
        parts = urlsplit(output_url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"OUTPUT_URL={output_url!r} names a remote host: expected file:///absolute/path"
            )
        return LocalStore(Path(unquote(parts.path)))
    if "://" in output_url:
        raise ConfigError(
            f"OUTPUT_URL={output_url!r} has an unsupported scheme: expected s3://bucket/prefix, "
            "file:///path or a local folder"
        )
    return LocalStore(Path(output_url))


__all__ = ["Store", "check_key", "open_store"]
