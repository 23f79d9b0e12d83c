"""The lab tells its own failures where the user looks (its window, the failed cell), and takes the window's prompt."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from gptdesk.settings.generation import FIELD_HELP
from tests.ui.fake_engine import FakeEngine


def _explorer_on(window: Any, *, rows: str = "0.5,0.8,1.1", columns: str = "0.8,0.95") -> Any:
    window.lab.act_explorer.trigger()
    explorer = window.lab.lab.explorer
    explorer.set_axis(1, "temperature", rows)
    explorer.set_axis(2, "top_p", columns)
    explorer.tokens.setValue(4)
    return explorer


def test_a_failed_grid_says_which_cell_and_why_in_the_lab(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(fail_on_call=2)  # the second cell raises
    window = make_window(engine)
    window.prompt_edit.setPlainText("Жили-были")
    explorer = _explorer_on(window)
    lab = window.lab.lab
    with qtbot.waitSignal(explorer.failed, timeout=30_000):
        qtbot.mouseClick(explorer.run_button, Qt.MouseButton.LeftButton)
    # In the lab window, which is in front: not only in the main window's bar behind it.
    assert lab.message_bar.isVisible() and "Scripted failure." in lab.message_bar.text
    assert lab.message_bar.level == "error"
    assert "Scripted failure." not in window.message_bar.text
    # The grid: cell 1 done, cell 2 failed with its reason, the four after it not run.
    assert "repeated 3-grams" in explorer.grid.item(0, 0).text()
    assert explorer.grid.item(0, 1).text() == "Failed: Scripted failure."
    for r, c in ((1, 0), (1, 1), (2, 0), (2, 1)):
        assert explorer.grid.item(r, c).text() == "not run"
    assert explorer.progress.format() == "Cell 2 of 6 failed"
    assert explorer.failure is not None and explorer.failure[0] == 1
    assert explorer.run_button.isEnabled() and not explorer.stop_button.isEnabled()
    assert explorer.suggest_button.isEnabled()
    # The finished cell can still be used; a new run clears the error and runs every cell.
    engine.fail_on_call = None
    with qtbot.waitSignal(explorer.grid_finished, timeout=30_000) as finished:
        qtbot.mouseClick(explorer.run_button, Qt.MouseButton.LeftButton)
    assert len(finished.args[0]) == 6 and explorer.failure is None
    assert not lab.message_bar.isVisible()
    assert all("repeated 3-grams" in explorer.grid.item(r, c).text() for r in range(3) for c in range(2))


def test_a_failed_grid_in_russian(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(fail_on_call=1), lang="ru")
    window.prompt_edit.setPlainText("Жили-были")
    explorer = _explorer_on(window, rows="0.5,0.8", columns="0.9")
    with qtbot.waitSignal(explorer.failed, timeout=30_000):
        assert explorer.run()
    assert explorer.grid.item(0, 0).text() == "Сбой: Запланированный сбой."
    assert explorer.grid.item(1, 0).text() == "не запускалась"
    assert window.lab.lab.message_bar.text == "Запланированный сбой."
    # A language switch keeps the failure and says it in the other language.
    window.set_language("en")
    assert explorer.grid.item(0, 0).text() == "Failed: Scripted failure."
    assert window.lab.lab.message_bar.text == "Scripted failure."


def test_stopped_grid_says_which_cells_did_not_run(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(delay=0.01))
    window.prompt_edit.setPlainText("Жили-были")
    explorer = _explorer_on(window, rows="0.5,0.8,1.1", columns="0.9")
    explorer.tokens.setValue(30)
    explorer._relay.cell_done.connect(lambda _r: explorer.stop())
    with qtbot.waitSignal(explorer.grid_finished, timeout=30_000):
        assert explorer.run()
    assert "repeated 3-grams" in explorer.grid.item(0, 0).text()
    assert [explorer.grid.item(r, 0).text() for r in (1, 2)] == ["not run", "not run"]
    assert explorer.run_button.isEnabled() and not explorer.stop_button.isEnabled()


def test_failed_advice_and_next_token_view_say_why_in_the_lab(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(fail_on_call=1))
    window.prompt_edit.setPlainText("Жили-были")
    window.lab.act_suggest.trigger()
    lab = window.lab.lab
    explorer = lab.explorer
    explorer.advice_seeds, explorer.advice_tokens = (1,), 4
    with qtbot.waitSignal(explorer.failed, timeout=30_000):
        qtbot.mouseClick(explorer.suggest_button, Qt.MouseButton.LeftButton)
    assert explorer.advice_text.toPlainText() == "The search for settings failed: Scripted failure."
    assert "Scripted failure." in lab.message_bar.text
    assert explorer.suggest_button.isEnabled() and not explorer.stop_button.isEnabled()
    # The scripted engine gives no raw scores: the view says so instead of "Reading…" for ever.
    panel = lab.next_panel
    with qtbot.waitSignal(panel.failed, timeout=30_000):
        assert window.lab.act_next.trigger() is None
    assert panel.context_label.text().startswith("Could not read the model's scores: The engine 'fake'")
    assert "gives no raw next-token scores" in lab.message_bar.text


def test_without_a_model_the_lab_says_so_itself(qtbot: Any, make_window: Any) -> None:
    window = make_window(None)
    window.lab.act_explorer.trigger()
    lab = window.lab.lab
    assert not lab.explorer.run()
    assert lab.message_bar.text == "Load a model first."
    lab.messages.clear()
    assert not window.lab.open_next_for_prompt()
    assert lab.message_bar.text == "Load a model first."


def test_explorer_takes_the_window_prompt_and_keeps_an_edited_one(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    window.prompt_edit.setPlainText("Первая затравка")
    # Opened on the next-token tab, then the user switches to the explorer.
    with qtbot.waitSignal(window.lab.window().next_panel.failed, timeout=30_000):
        window.lab.act_next.trigger()
    lab = window.lab.lab
    lab.tabs.setCurrentWidget(lab.explorer)
    assert lab.explorer.prompt_edit.toPlainText() == "Первая затравка"
    # The window's prompt changes: the explorer follows while its own is untouched.
    window.prompt_edit.setPlainText("Вторая затравка")
    window.lab.act_explorer.trigger()
    assert lab.explorer.prompt_edit.toPlainText() == "Вторая затравка"
    # Edited in the explorer: kept.
    lab.explorer.prompt_edit.setPlainText("Моя затравка")
    window.prompt_edit.setPlainText("Третья затравка")
    window.lab.act_explorer.trigger()
    assert lab.explorer.prompt_edit.toPlainText() == "Моя затравка"


def test_setting_names_are_for_people_in_both_languages(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(), lang="ru")
    window.prompt_edit.setPlainText("Жили-были")
    explorer = _explorer_on(window, rows="0.5,0.8", columns="0.9")
    names = [explorer.axis1.itemText(i) for i in range(explorer.axis1.count())]
    assert names[:3] == ["Температура", "Топ-k", "Топ-p (ядерная выборка)"]
    assert "Набор настроек" in names and not any("_" in n for n in names)
    assert explorer.axis2.itemText(0) == "(нет)"
    assert explorer.axis1.itemData(0, Qt.ItemDataRole.ToolTipRole) == FIELD_HELP["temperature"].help.ru
    with qtbot.waitSignal(explorer.grid_finished, timeout=30_000):
        assert explorer.run()
    assert explorer.grid.verticalHeaderItem(1).text() == "Температура = 0.8"
    assert explorer.grid.horizontalHeaderItem(0).text() == "Топ-p (ядерная выборка) = 0.9"
    window.set_language("en")
    assert explorer.axis1.currentText() == "Temperature" and explorer.axis1.currentData() == "temperature"
    assert explorer.axis2.currentText() == "Top-p (nucleus)"
    assert explorer.grid.verticalHeaderItem(1).text() == "Temperature = 0.8"
