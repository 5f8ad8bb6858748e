"""A store in a local folder: each file is written beside its final name, then renamed over it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import structlog

from worker.common.errors import os_error
from worker.common.stores import check_key

log = structlog.get_logger(__name__)

_CHUNK = 1024 * 1024


class LocalStore:
    """Files under ``root``; a published file is complete or absent, never half-written."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def publish_file(
        self, key: str, path: Path, *, content_type: str, content_encoding: str | None = None
    ) -> None:
        """Copy ``path`` to ``key`` atomically (content type and encoding are not kept locally)."""
        source = Path(path)
        try:
            handle = source.open("rb")
        except OSError as exc:
            raise os_error(exc, f"cannot publish {key!r}: its source file cannot be read", source) from exc
        with handle:
            self._write(key, lambda out: shutil.copyfileobj(handle, out, _CHUNK))

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write ``data`` to ``key`` atomically."""
        self._write(key, lambda out: out.write(data))

    def _write(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        final = self._path(key)
        folder = final.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Same folder as the final name, so that os.replace is a rename on one file system.
            fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{final.name}.", suffix=".tmp")
        except OSError as exc:
            raise os_error(
                exc, f"cannot write {key!r} under {self.root}", exc.filename or folder
            ) from exc
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            # mkstemp creates 0600; published files are for others (web servers, fetchers) to read.
            temp.chmod(0o644)
            os.replace(temp, final)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
                raise os_error(
                    exc, f"cannot write {key!r} (the previous file, if any, is unchanged)", final
                ) from exc
            raise
        _fsync_folder(folder)
        log.debug("store.published", key=key, path=str(final))

    def get_bytes(self, key: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(exc, f"reading {key!r}", path) from exc

    def exists(self, key: str) -> bool:
        """Whether a file is published under ``key``."""
        path = self._path(key)
        try:
            return path.is_file()
        except OSError as exc:
            raise os_error(exc, f"checking {key!r}", path) from exc

    def url_for(self, key: str) -> str:
        """The absolute path of ``key``."""
        return str(self._path(key))


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some file systems (and Windows) cannot fsync a folder; the rename is still atomic.
        pass
    finally:
        os.close(fd)
