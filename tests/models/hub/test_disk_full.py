"""A disk that fills up during a download is named as full, with the room the download still needs."""

from __future__ import annotations

import errno
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gptdesk.errors import DiskSpaceError
from gptdesk.models.cost import format_bytes
from gptdesk.models.hub.download import pull
from gptdesk.models.hub.plan import plan
from tests.models.hub_server import FakeHub, point_at

REPO_ID = "ai-forever/rugpt3small_based_on_gpt2"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as server:
        point_at(server, monkeypatch, tmp_path / "hub")
        yield server


class _FillingDisk(io.RawIOBase):
    """A file on a disk with `room` bytes left: writes past it fail as a full disk does."""

    def __init__(self, real: Any, room: int) -> None:
        self.real, self.room = real, room

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if len(data) > self.room:
            self.real.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return int(self.real.write(data))

    def close(self) -> None:
        self.real.close()
        super().close()


def test_a_disk_that_fills_up_during_a_download_says_how_much_is_needed(
    hub: FakeHub, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    total = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    real_open = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        if self.name.endswith(".incomplete") and ("a" in mode or "w" in mode):
            return _FillingDisk(handle, 100_000)  # the weights do not fit
        return handle

    monkeypatch.setattr(Path, "open", open_)
    with pytest.raises(DiskSpaceError) as caught:
        pull("rugpt3small", free_space=lambda path: 10**12)
    en, ru = caught.value.message("en"), caught.value.message("ru")
    still_needed = plan("rugpt3small").missing_bytes()
    assert 0 < still_needed < total
    assert "disk is full" in en and "No space left on device" in en and f"of {REPO_ID}" in en
    assert f"still needs {format_bytes(still_needed)}" in en and "is kept free" in en
    assert "HF_HUB_CACHE" in en and "resume" in en
    assert "Диск заполнен" in ru and format_bytes(still_needed, "ru") in ru
    assert caught.value.exit_code == 4


def test_no_room_for_the_snapshot_is_a_full_disk_too(
    hub: FakeHub, tiny_model_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files are in; the snapshot (links, or copies where links fail) needs room as well."""
    import os
    import shutil

    hub.add_repo(REPO_ID, tiny_model_dir)

    def no_room(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "symlink", no_room)
    monkeypatch.setattr(shutil, "copy2", no_room)
    with pytest.raises(DiskSpaceError) as caught:
        pull("rugpt3small", free_space=lambda path: 10**12)
    en = caught.value.message("en")
    assert "disk is full" in en and "No space left on device" in en and "run the download again" in en
    blobs = cache / ("models--" + REPO_ID.replace("/", "--")) / "blobs"
    assert len(list(blobs.iterdir())) == len(list(tiny_model_dir.iterdir()))  # what was downloaded is kept
