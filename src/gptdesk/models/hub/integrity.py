"""Checksums: a downloaded file against the sha256 or git sha1 the hub published."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from gptdesk.models.hub.plan import HubFile


class Digest:
    """sha256 of the content (LFS files) or git's sha1 of "blob <size>\\0" + content (small files)."""

    def __init__(self, kind: str, size: int) -> None:
        self.kind = kind
        if kind == "git-sha1":
            self.h = hashlib.sha1(usedforsecurity=False)
            self.h.update(f"blob {size}\0".encode())
        else:
            self.h = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self.h.update(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def file_matches(path: Path, f: HubFile, progress: Callable[[int], None] | None = None) -> bool:
    """True when the file on disk has the size and checksum the hub published for `f`."""
    try:
        if path.stat().st_size != f.size:
            return False
    except OSError:
        return False
    check = f.digest
    if check is None:
        return True
    digest = Digest(check[0], f.size)
    hash_into(path, digest, f.size, progress)
    return digest.hexdigest() == check[1]


def hash_into(path: Path, digest: Digest, limit: int, progress: Callable[[int], None] | None = None) -> None:
    read = 0
    with path.open("rb") as fh:
        while read < limit:
            block = fh.read(min(4 << 20, limit - read))
            if not block:
                break
            digest.update(block)
            read += len(block)
            if progress is not None:
                progress(read)
