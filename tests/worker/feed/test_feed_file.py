"""FeedFile: the writer thread's gzip, hash and size, and a full disk reported, not hidden."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from worker.common.errors import TransientError
from worker.feed.publish import FeedFile


def write(path: Path, pieces: list[str], level: int | None) -> FeedFile:
    file = FeedFile(path, gzip_level=level)
    for piece in pieces:
        file.write(piece)
    file.close()
    return file


PIECES = [f"<item>{i} 한글 🎉</item>\n" for i in range(30_000)]  # several chunks


@pytest.mark.parametrize("level", [None, 1, 6])
def test_the_file_holds_the_text_and_its_size_and_hash(tmp_path: Path, level: int | None) -> None:
    file = write(tmp_path / "f", PIECES, level)
    data = file.path.read_bytes()
    assert file.bytes == len(data) and file.sha256 == hashlib.sha256(data).hexdigest()
    text = gzip.decompress(data) if level is not None else data
    assert text.decode() == "".join(PIECES)


def test_equal_content_gives_equal_gzip_bytes(tmp_path: Path) -> None:
    # No mtime or name in the gzip header: an unchanged feed keeps its hash (and is not re-sent).
    assert write(tmp_path / "a", PIECES, 1).sha256 == write(tmp_path / "b", PIECES, 1).sha256


def test_a_full_disk_fails_with_a_transient_error_naming_the_file() -> None:
    file = FeedFile(Path("/dev/full"), gzip_level=None)
    with pytest.raises(TransientError, match=r"/dev/full.*previous feed stays"):
        for piece in PIECES * 4:
            file.write(piece)
        file.close()
    file.abort()
