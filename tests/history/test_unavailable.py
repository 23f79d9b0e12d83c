"""A history that cannot be written: damaged, locked, read-only file, read-only folder (real SQLite files).

Nothing generated is lost: a generation that cannot be stored is kept in memory (LiveRecorder,
Backlog) and written once the history is back; a read-only history can still be browsed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil  # noqa: F401  (imported before dropping privileges: the store imports it when opening)
import pytest

from gptdesk.engine.base import Finished, ModelInfo, Timings, TokenEvent
from gptdesk.history import Backlog, HistoryStore, HistoryUnavailableError, LiveRecorder, open_history
from gptdesk.history.store import library_versions

INFO = ModelInfo("embedded", "/m", "rev", "transformers", "cpu", "float32", 1, 1, 1, 1, 512, 10)


def _finished(text: str) -> Finished:
    return Finished(
        texts=[text],
        finish_reasons=["length"],
        prompt_tokens=2,
        generated_tokens=[2],
        seed=5,
        timings=Timings(first_token=0.1, total=0.3, generated_tokens=2),
    )


def _generate(recorder: LiveRecorder, *pieces: str) -> None:
    for i, piece in enumerate(pieces):
        recorder.add(TokenEvent(text=piece, token_id=i, piece=piece))
    recorder.finish(_finished("".join(pieces)))


@contextmanager
def permission_folder() -> Iterator[Path]:
    """A folder an ordinary user may write (tmp_path's parents are root's alone when root runs tests)."""
    folder = Path(tempfile.mkdtemp(prefix="gptdesk-perm-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        for path in (folder, *folder.rglob("*")):
            if path.is_dir():
                path.chmod(0o777)
        shutil.rmtree(folder)


@contextmanager
def as_ordinary_user() -> Iterator[None]:
    """File permissions apply inside: root ignores chmod, so root acts as `nobody` in the block."""
    library_versions()  # read now: the interpreter's own files may be unreadable to `nobody`
    root = os.geteuid() == 0
    if root:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        yield
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)


@contextmanager
def _as_ordinary_user() -> Iterator[Path]:
    with permission_folder() as folder, as_ordinary_user():
        yield folder


def test_a_damaged_history_keeps_generations_in_memory_until_a_new_one_takes_them(tmp_path: Path) -> None:
    damaged = tmp_path / "history.sqlite3"
    damaged.write_bytes(b"not a database at all " * 300)
    with pytest.raises(HistoryUnavailableError) as info:
        open_history(damaged)  # nothing to browse in it either
    assert info.value.reason == "corrupt"

    recorder = LiveRecorder.start_or_keep(None, "Жили-были", {"seed": 5}, seed=5, info=INFO, interval=0.01)
    assert recorder.gen_id is None and not recorder.writing
    _generate(recorder, " старик", " со старухой")
    pending = recorder.unsaved()
    assert pending is not None and pending.status == "finished"
    assert pending.record().texts == [" старик со старухой"]  # what an export of it holds
    backlog = Backlog()
    backlog.add(pending)

    damaged.rename(tmp_path / "history.damaged")  # what the message tells the user to do
    with HistoryStore(damaged) as store:
        assert backlog.write_to(store) == 1
        (record,) = store.find()
    assert len(backlog) == 0
    assert record.prompt == "Жили-были" and record.output == " старик со старухой"
    assert record.status == "finished" and record.seed == 5 and record.created_at == pending.created_at


def test_a_locked_history_is_browsable_and_what_could_not_be_written_is_written_later(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as store:
        store.finish(store.begin("Старая запись", {}, seed=1, info=INFO), _finished(" текст"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        # A long timeout: were opening to take the lock, it would wait all of it and then fail.
        store = open_history(path, timeout=60)
        assert store.writable and store.problem is not None and store.problem.reason == "locked"
        assert [r.prompt for r in store.find("старая")] == ["Старая запись"]  # browse and search

        recorder = LiveRecorder.start_or_keep(store, "Новая", {}, seed=2, info=INFO, timeout=0.05)
        assert isinstance(recorder.error, HistoryUnavailableError) and recorder.error.reason == "locked"
        _generate(recorder, " запись")
        pending = recorder.unsaved()
        assert pending is not None
        backlog = Backlog()
        backlog.add(pending)
        with pytest.raises(HistoryUnavailableError):
            backlog.write_to(store, timeout=0.05)
        assert len(backlog) == 1  # kept for the next try
        with pytest.raises(HistoryUnavailableError):
            store.check_writable()
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.check_writable()
    assert store.problem is None
    assert backlog.write_to(store) == 1
    assert [(r.prompt, r.output, r.status) for r in store.find()] == [
        ("Новая", " запись", "finished"),
        ("Старая запись", " текст", "finished"),
    ]
    store.close()


def test_a_lock_taken_mid_generation_keeps_the_rest_in_memory_and_completes_the_same_row(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path, timeout=0.05)
    recorder = LiveRecorder.start_or_keep(store, "Затравка", {}, seed=3, info=INFO, interval=60)
    assert recorder.gen_id is not None and recorder.writing
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        _generate(recorder, " начало", " и конец")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert recorder.error is not None and recorder.error.reason == "locked"
    pending = recorder.unsaved()
    assert pending is not None and pending.gen_id == recorder.gen_id
    assert store.get(recorder.gen_id).status == "running"  # the row the lock interrupted
    backlog = Backlog()
    backlog.add(pending)
    backlog.write_to(store)
    assert [(r.id, r.output, r.status) for r in store.find()] == [(recorder.gen_id, " начало и конец", "finished")]
    store.close()


def test_a_read_only_history_file_is_browsed_and_searched_but_not_written() -> None:
    with _as_ordinary_user() as folder:
        path = folder / "history.sqlite3"
        with HistoryStore(path) as store:
            store.begin("Привет, мир", {}, seed=1, info=INFO)
            store.begin("Другая", {}, seed=1, info=INFO)
        path.chmod(0o444)
        store = open_history(path)
        try:
            assert store.read_only and store.problem is not None and store.problem.reason == "readonly"
            assert [r.prompt for r in store.find("ПРИВЕТ")] == ["Привет, мир"]
            assert store.count() == 2
            with pytest.raises(HistoryUnavailableError) as info:
                store.check_writable()
            assert info.value.reason == "readonly" and "permissions" in str(info.value)
            recorder = LiveRecorder.start_or_keep(store, "Не сохранится", {}, seed=1, info=INFO)
            _generate(recorder, " пока")
            assert recorder.unsaved() is not None and recorder.gen_id is None
        finally:
            store.close()
        path.chmod(0o644)  # the user fixes it: a writable store takes the kept generation
        with open_history(path) as store:
            assert store.writable and store.problem is None
            backlog = Backlog()
            pending = recorder.unsaved()
            assert pending is not None
            backlog.add(pending)
            backlog.write_to(store)
            assert [r.prompt for r in store.find()] == ["Не сохранится", "Другая", "Привет, мир"]


def test_a_history_in_a_read_only_folder_is_browsed_like_on_a_read_only_file_system() -> None:
    with _as_ordinary_user() as folder:
        data = folder / "data"
        data.mkdir()
        path = data / "history.sqlite3"
        with HistoryStore(path) as store:
            store.begin("Ёлочка", {}, seed=1, info=INFO)
        assert sorted(p.name for p in data.iterdir()) == ["history.sqlite3"]  # no -wal or -shm left
        data.chmod(0o555)  # no -wal or -shm can be created: as on a read-only file system
        store = open_history(path)
        try:
            assert store.read_only and store.problem is not None
            assert [r.prompt for r in store.find("ёлочка")] == ["Ёлочка"]
            with pytest.raises(HistoryUnavailableError):
                store.begin("x", {}, seed=1, info=INFO)
        finally:
            store.close()
