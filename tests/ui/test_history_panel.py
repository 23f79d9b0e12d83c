"""The history sidebar: browse, search, reopen, reproduce with the same seed, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tests.ui.fake_engine import FakeEngine


def _run(qtbot: Any, window: Any, prompt: str, **settings: object) -> Any:
    window.params.set_values(settings)
    window.prompt_edit.setPlainText(prompt)
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        assert window.generate()
    return blocker.args[0]


def test_generations_appear_in_the_sidebar_and_search_filters_them(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    _run(qtbot, window, "Москва — столица", do_sample=False, max_new_tokens=3)
    _run(qtbot, window, "Жили-были", do_sample=False, max_new_tokens=3)
    panel = window.history
    assert panel.list.count() == 2
    assert panel.list.item(0).text().startswith("Жили-были\n")
    assert "fake-model · finished · 3" in panel.list.item(0).text()
    # Ctrl+F goes to the search field; typing filters (case-insensitive, Cyrillic).
    qtbot.keyClick(window.prompt_edit, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert panel.search.hasFocus()
    panel.search.setText("МОСКВА")
    qtbot.waitUntil(lambda: panel.list.count() == 1, timeout=5000)
    assert panel.list.item(0).text().startswith("Москва — столица")
    panel.search.clear()
    qtbot.waitUntil(lambda: panel.list.count() == 2, timeout=5000)


def test_reopening_a_generation_restores_prompt_text_and_settings(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    finished = _run(qtbot, window, "Первая", do_sample=True, temperature=0.7, max_new_tokens=4, seed=3)
    _run(qtbot, window, "Вторая", do_sample=False, max_new_tokens=2, seed=None)
    panel = window.history
    panel.list.setCurrentRow(1)
    qtbot.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)
    assert window.prompt_edit.toPlainText() == "Первая"
    assert window.output.text(0) == finished.text
    assert window.params.current is not None
    assert window.params.current.temperature == 0.7 and window.params.current.do_sample
    # Continue works on a reopened generation.
    assert window.continue_button.isEnabled()


def test_reproduce_runs_again_with_the_same_seed(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine()
    window = make_window(engine)
    original = _run(qtbot, window, "Случайно", do_sample=True, max_new_tokens=8, seed=None)
    _run(qtbot, window, "Другое", do_sample=True, max_new_tokens=8, seed=None)  # the RNG moved on
    panel = window.history
    panel.list.setCurrentRow(1)
    assert panel.reproduce_button.isEnabled()
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.reproduce_button, Qt.MouseButton.LeftButton)
    again = blocker.args[0]
    assert again.seed == original.seed
    assert again.text == original.text
    record = window.store.find()[0]
    assert record.kind == "reproduce" and record.parent_id == window.store.find()[2].id
    assert engine.calls[-1][1].seed == original.seed


def test_reproduce_loads_the_recorded_model_first(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(model_id="fake-model"))
    original = _run(qtbot, window, "Модель", do_sample=True, max_new_tokens=5, seed=None)
    other = FakeEngine(model_id="other-model")
    window.set_engine(other)
    loaded: list[str | None] = []

    def load_model(name: str | None, *, kind: str = "catalog", label: str = "", then: Any = None) -> bool:
        loaded.append(name)
        return bool(
            window.loader.load_engine(
                lambda _p: FakeEngine(model_id=str(name)), kind=kind, key=name, label=label, then=then
            )
        )

    window.loader.load_model = load_model
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        assert window.reproduce(window.store.find()[0].id)
    assert loaded == ["fake-model"]
    assert window.engine is not None and window.engine.info.model_id == "fake-model"
    assert blocker.args[0].text == original.text


def test_export_one_and_all(qtbot: Any, make_window: Any, monkeypatch: Any, tmp_path: Path) -> None:
    window = make_window(FakeEngine())
    _run(qtbot, window, "Экспорт один", do_sample=False, max_new_tokens=3)
    _run(qtbot, window, "Экспорт два", do_sample=False, max_new_tokens=3)
    target = tmp_path / "out"
    asked: list[str] = []

    def save(_parent: object, _title: str, suggested: str, _filter: str) -> tuple[str, str]:
        asked.append(suggested)
        return str(target.with_suffix(Path(suggested).suffix)), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save)
    panel = window.history
    panel.list.setCurrentRow(0)
    panel.export_actions[("one", "markdown")].trigger()
    markdown = target.with_suffix(".md").read_text(encoding="utf-8")
    assert "Экспорт два" in markdown and "Экспорт один" not in markdown
    panel.export_actions[("all", "json")].trigger()
    data = json.loads(target.with_suffix(".json").read_text(encoding="utf-8"))
    assert [g["prompt"] for g in data["generations"]] == ["Экспорт два", "Экспорт один"]
    window.act_export_all["text"].trigger()
    assert "Экспорт один" in target.with_suffix(".txt").read_text(encoding="utf-8")
    assert asked[0].endswith(".md") and asked[1].endswith("gptdesk-history.json")
    assert "Exported 2 generations" in window.statusBar().currentMessage()


def test_export_to_an_unwritable_place_says_so(qtbot: Any, make_window: Any, monkeypatch: Any, tmp_path: Path) -> None:
    window = make_window(FakeEngine())
    _run(qtbot, window, "Текст", do_sample=False, max_new_tokens=2)
    bad = tmp_path / "missing-folder" / "out.md"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (str(bad), ""))
    window.history.list.setCurrentRow(0)
    window.history.export_actions[("one", "markdown")].trigger()
    assert window.message_bar.text.startswith(f"Could not write {bad}: ")
    assert window.message_bar.text.endswith("Choose another folder.")


def test_without_history_the_window_still_generates_and_says_why(qtbot: Any, make_window: Any) -> None:
    from gptdesk.history.errors import HistoryUnavailableError
    from gptdesk.i18n import Text
    from gptdesk.ui.main_window import MainWindow

    error = HistoryUnavailableError(Text("The disk is full.", "Диск заполнен."), "full")
    window = MainWindow(store=None, store_error=error)
    qtbot.addWidget(window)
    window.set_engine(FakeEngine())
    assert window.message_bar.text == "The disk is full."
    window.params.set_values({"do_sample": False, "max_new_tokens": 2})
    window.prompt_edit.setPlainText("Без истории")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        assert window.generate()
    assert window.output.text(0)
    assert window.keeper.button.text() == "History is off · 1 not saved"  # still said after Generate
    asked: list[int] = []
    window.keeper.ask_on_close = lambda n: asked.append(n) or "discard"
    window.close()
    assert asked == [1]  # closing asks before dropping what was not saved
