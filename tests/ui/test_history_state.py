"""History that cannot be written, in the window: said persistently, browsable, nothing dropped silently.

Real SQLite files: a damaged one, one locked by another connection, one in a read-only folder.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QFileDialog

from gptdesk.history.store import HistoryStore, default_path, open_history
from gptdesk.ui import history_state
from tests.history.test_unavailable import as_ordinary_user, permission_folder
from tests.ui.fake_engine import SCRIPT, FakeEngine


@pytest.fixture
def permission_folder_path() -> Iterator[Path]:
    with permission_folder() as folder:
        yield folder


@pytest.fixture
def open_window(qtbot: Any) -> Iterator[Any]:
    """Windows made the way the app makes them (create_window opens the history itself)."""
    from gptdesk.ui.app import create_window

    windows: list[Any] = []

    def make(store: HistoryStore | None = None) -> Any:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        if store is None:
            window = create_window(app, lang="en")
        else:
            from gptdesk.ui.main_window import MainWindow

            window = MainWindow(store=store)
            window.set_language("en")
        qtbot.addWidget(window)
        window.show()
        window.set_engine(FakeEngine())
        window.params.set_values({"do_sample": False, "max_new_tokens": 3})
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.keeper.ask_on_close = lambda _n: "discard"
        window.close()


def _generate(qtbot: Any, window: Any, prompt: str) -> None:
    window.prompt_edit.setPlainText(prompt)
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        assert window.generate()


def _state(window: Any) -> str:
    button = window.keeper.button
    return button.text() if button.isVisible() else ""


def test_a_damaged_history_is_said_until_fixed_and_nothing_generated_is_dropped(
    qtbot: Any, open_window: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage, not SQLite " * 300)
    window = open_window()
    assert window.store is None
    assert _state(window) == "History is off"
    assert "damaged" in window.keeper.button.toolTip()

    _generate(qtbot, window, "Первая")
    _generate(qtbot, window, "Вторая")
    window.clear_output()  # later actions clear messages, not the history's state
    assert _state(window) == "History is off · 2 not saved"

    target = tmp_path / "kept.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (str(target), ""))
    window.keeper.act_export.trigger()
    exported = json.loads(target.read_text(encoding="utf-8"))["generations"]
    assert [g["prompt"] for g in exported] == ["Первая", "Вторая"]
    assert exported[0]["output"] == "".join(SCRIPT[:3]) and exported[0]["status"] == "finished"

    path.rename(path.with_suffix(".damaged"))  # what the message says to do
    with qtbot.waitSignal(window.keeper.store_changed, timeout=10_000):
        window.keeper.act_retry.trigger()
    assert _state(window) == ""
    assert "History is saving again; 2 kept generations were written" in window.message_bar.text
    assert [r.prompt for r in window.history.records] == ["Вторая", "Первая"]
    _generate(qtbot, window, "Третья")  # and new ones are saved directly
    assert [r.prompt for r in window.store.find()] == ["Третья", "Вторая", "Первая"]


def test_a_locked_history_opens_at_once_is_browsable_and_is_retried_in_the_background(
    qtbot: Any, open_window: Any
) -> None:
    path = default_path()
    with HistoryStore(path) as store:
        store.begin("Старая генерация", {}, seed=1, info=None)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        window = open_window()
        assert window.store is not None
        assert _state(window) == "History is locked"
        assert [r.prompt for r in window.history.records] == ["Старая генерация"]
        _generate(qtbot, window, "Новая")
        assert _state(window) == "History is locked · 1 not saved"
        window.keeper.retry()  # the lock is still there: nothing changes, nothing is lost
        qtbot.waitUntil(lambda: not window.keeper._retrying, timeout=10_000)
        assert _state(window) == "History is locked · 1 not saved"
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The retry timer notices on its own (every few seconds).
    qtbot.waitUntil(lambda: _state(window) == "", timeout=15_000)
    window.history.refresh()
    assert [r.prompt for r in window.history.records] == ["Новая", "Старая генерация"]


def test_a_read_only_history_is_browsed_and_searched_and_generations_are_kept(
    qtbot: Any, open_window: Any, monkeypatch: Any, permission_folder_path: Path
) -> None:
    monkeypatch.setattr(history_state, "RETRY_MS", 600_000)  # the user has not fixed it: no retry here
    folder = permission_folder_path
    with as_ordinary_user():
        data = folder / "data"
        data.mkdir()
        path = data / "history.sqlite3"
        with HistoryStore(path) as store:
            store.begin("Москва — столица", {}, seed=1, info=None)
            store.begin("Жили-были", {}, seed=1, info=None)
        data.chmod(0o555)
        store = open_history(path)
    assert store.read_only
    window = open_window(store)
    assert _state(window) == "History is read-only"
    assert "Past generations can still be browsed and searched." in window.keeper.button.toolTip()
    assert [r.prompt for r in window.history.records] == ["Жили-были", "Москва — столица"]
    window.history.search.setText("москва")
    qtbot.waitUntil(lambda: [r.prompt for r in window.history.records] == ["Москва — столица"], timeout=5000)
    window.history.list.setCurrentRow(0)
    window.open_record(window.history.selected_id())
    assert window.prompt_edit.toPlainText() == "Москва — столица"

    _generate(qtbot, window, "Не в историю")
    assert _state(window) == "History is read-only · 1 not saved"

    # Closing asks; Cancel keeps the window (and the generation) ...
    asked: list[int] = []
    monkeypatch.setattr(window.keeper, "ask_on_close", lambda n: asked.append(n) or "cancel")
    assert not window.close()
    assert window.isVisible() and asked == [1]
    # ... Export writes them to a file, then the window closes.
    target = folder / "kept.md"
    monkeypatch.setattr(window.keeper, "ask_on_close", lambda n: "export")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (str(target), ""))
    assert window.close()
    assert "Не в историю" in target.read_text(encoding="utf-8")
