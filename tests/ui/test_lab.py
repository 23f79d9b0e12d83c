"""The parameter lab in the window: next-token view, explorer, suggestions; real widgets, the embedded model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from gptdesk.engine.hf import TransformersEngine
from gptdesk.lab.nextview import NextTokenView
from gptdesk.settings.presets import get_preset
from tests.ui.conftest import SCREENSHOTS


@pytest.fixture
def embedded() -> Iterator[TransformersEngine]:
    # One per test: closing the window closes its engine.
    engine = TransformersEngine.load(None, device="cpu", dtype="float32")
    yield engine
    engine.close()


class CallCounter:
    """Counts the model calls the lab makes (next_logits) on a real engine."""

    def __init__(self, engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = engine.next_logits

        def counted(ids: list[int]) -> Any:
            self.calls += 1
            return original(ids)

        monkeypatch.setattr(engine, "next_logits", counted)


def _shot(widget: Any, name: str) -> Path:
    from PySide6.QtWidgets import QApplication

    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / name
    QApplication.processEvents()  # let posted layout requests resize the labels first
    assert widget.grab().save(str(path))
    return path


def test_next_token_view_moves_live_without_model_calls(
    qtbot: Any, make_window: Any, embedded: TransformersEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    window = make_window(embedded)
    counter = CallCounter(embedded, monkeypatch)
    window.prompt_edit.setPlainText("Москва — столица")
    panel = window.lab.window().next_panel
    with qtbot.waitSignal(panel.context_loaded, timeout=30_000):
        window.lab.act_next.trigger()
    assert counter.calls == 1
    lab = window.lab.lab
    assert lab.isVisible() and lab.tabs.currentWidget() is panel
    first: NextTokenView = panel.view
    assert first.mode == "sample" and len(first.candidates) == 30
    assert panel.table.rowCount() == 30 and "«" in panel.table.item(0, 0).text()
    # Keyboard only: lower the temperature step by step; each step redraws from the cached scores.
    box = panel.knobs["temperature"]
    box.setFocus()
    updates: list[NextTokenView] = []
    panel.view_updated.connect(updates.append)
    for _ in range(6):
        qtbot.keyClick(box, Qt.Key.Key_Down)
    assert box.value() == pytest.approx(0.7)
    assert len(updates) == 6 and counter.calls == 1
    assert updates[-1].entropy_bits < first.entropy_bits  # colder: a sharper choice
    top_p = panel.knobs["top_p"]
    top_p.selectAll()
    qtbot.keyClicks(top_p, "0.30")
    assert panel.view.in_play < first.in_play
    assert panel.view.top_p_rank is not None  # the top-p line is drawn
    assert counter.calls == 1
    assert "Tokens in play" in panel.figures.text()
    assert panel.last_update_ms > 0
    # Sampling off: the view says that temperature, top-k and top-p change nothing.
    panel.sample_box.setChecked(False)
    assert panel.view.mode == "greedy" and "change nothing" in panel.notes.text()
    assert not panel.knobs["temperature"].isEnabled()
    panel.sample_box.setChecked(True)
    # Every one of the 30 candidates is labelled, each label within its bar's slot: none dropped, none overlapping.
    from PySide6.QtGui import QFontMetrics

    chart = panel.chart
    metrics = QFontMetrics(chart.tick_font)
    assert len(chart.tick_labels) == 30 and all(chart.tick_labels)
    assert max(metrics.horizontalAdvance(t) for t in chart.tick_labels) <= chart.slot_pixels()
    _shot(lab, "lab-next-token.png")
    png, svg = panel.export(tmp_path / "next.png"), panel.export(tmp_path / "next.svg")
    assert png.read_bytes()[:4] == b"\x89PNG" and b"<svg" in svg.read_bytes()


def test_clicking_a_generated_token_shows_the_choice_made_there(
    qtbot: Any, make_window: Any, embedded: TransformersEngine
) -> None:
    window = make_window(embedded)
    window.params.set_settings(get_preset("greedy").settings(max_new_tokens=6, min_new_tokens=6))
    window.prompt_edit.setPlainText("Жили-были дед и баба")
    with qtbot.waitSignal(window.generation_finished, timeout=60_000):
        assert window.generate()
    inspector = window.inspector
    index = inspector.generated_model.index(3)
    inspector.generated_view.setCurrentIndex(index)  # as a click or the arrow keys select it
    item = inspector.generated_model.items[3]
    panel = window.lab.window().next_panel
    with qtbot.waitSignal(panel.context_loaded, timeout=30_000):
        assert window.lab.act_next_token.trigger() is None
    view = panel.view
    assert panel.context is not None and len(panel.context.generated_ids) == 3
    # Greedy settings as in the run: the view's one choice is the token the run took.
    assert view.mode == "greedy" and view.greedy_id == item.token_id
    assert any("◀" in panel.table.item(r, 0).text() for r in range(panel.table.rowCount()))
    # With the lab open, selecting another token follows it.
    with qtbot.waitSignal(panel.context_loaded, timeout=30_000):
        inspector.generated_view.setCurrentIndex(inspector.generated_model.index(1))
    assert panel.view.greedy_id == inspector.generated_model.items[1].token_id


def test_explorer_runs_a_grid_saves_it_and_reproduces_it(
    qtbot: Any, make_window: Any, embedded: TransformersEngine, tmp_path: Path
) -> None:
    window = make_window(embedded)
    window.prompt_edit.setPlainText("Жили-были дед и баба")
    window.lab.act_explorer.trigger()
    explorer = window.lab.lab.explorer
    assert explorer.prompt_edit.toPlainText() == "Жили-были дед и баба"
    explorer.choose_axis(explorer.axis1, "temperature")
    explorer.values1.setText("0.5,1.2")
    explorer.choose_axis(explorer.axis2, "top_p")
    explorer.values2.setText("0.8,0.95")
    explorer.tokens.setValue(12)
    explorer.seed.setValue(9)
    with qtbot.waitSignal(explorer.grid_finished, timeout=120_000) as finished:
        qtbot.mouseClick(explorer.run_button, Qt.MouseButton.LeftButton)
    results = finished.args[0]
    assert len(results) == 4 and explorer.grid.rowCount() == 2 and explorer.grid.columnCount() == 2
    assert "repeated 3-grams" in explorer.grid.item(1, 1).text()
    explorer.measure.setCurrentIndex(2)  # fluency
    assert explorer.heat.values.shape == (2, 2) and not (explorer.heat.values != explorer.heat.values).any()
    _shot(window.lab.lab, "lab-explorer.png")
    assert explorer.export(tmp_path / "heat.svg").read_bytes().count(b"<svg") == 1
    # Make a cell's settings the current ones.
    explorer.grid.setCurrentCell(1, 0)
    qtbot.mouseClick(explorer.use_button, Qt.MouseButton.LeftButton)
    assert window.params.current.temperature == 1.2 and window.params.current.top_p == 0.8
    # Save as one group, then run it again from the history: the same texts.
    group = explorer.save(cell_only=False)
    assert group is not None and explorer.groups.currentData() == group
    assert [r.group_id for r in window.store.find_group(group)] == [group] * 4
    with qtbot.waitSignal(explorer.grid_finished, timeout=120_000) as again:
        qtbot.mouseClick(explorer.reproduce_button, Qt.MouseButton.LeftButton)
    assert [r.text for r in again.args[0]] == [r.text for r in results]


def test_explorer_stop_keeps_finished_cells(qtbot: Any, make_window: Any, embedded: TransformersEngine) -> None:
    window = make_window(embedded)
    window.prompt_edit.setPlainText("Жили-были дед и баба")
    window.lab.act_explorer.trigger()
    explorer = window.lab.lab.explorer
    explorer.choose_axis(explorer.axis1, "temperature")
    explorer.values1.setText("0.6,0.9,1.2")
    explorer.choose_axis(explorer.axis2, "")
    explorer.tokens.setValue(60)

    def stop_after_first(_result: object) -> None:
        qtbot.mouseClick(explorer.stop_button, Qt.MouseButton.LeftButton)

    explorer._relay.cell_done.connect(stop_after_first)
    with qtbot.waitSignal(explorer.grid_finished, timeout=180_000) as finished:
        assert explorer.run()
    assert len(finished.args[0]) == 1  # the first cell; the one Stop cut is not kept
    assert "1 of 3 cells" in explorer.progress.format()
    assert explorer.results[0].measures.tokens == 60
    assert explorer.grid.item(1, 0).text() == "waiting…"
    assert explorer.run_button.isEnabled() and not explorer.stop_button.isEnabled()


def test_suggest_settings_gives_settings_and_reason(qtbot: Any, make_window: Any, embedded: TransformersEngine) -> None:
    window = make_window(embedded, lang="ru")
    window.prompt_edit.setPlainText("Жили-были дед и баба")
    window.lab.act_suggest.trigger()
    explorer = window.lab.lab.explorer
    qtbot.waitUntil(explorer.goal.hasFocus, timeout=5000)  # keyboard users land on the goal
    assert window.lab.menu.title() == "&Лаборатория"
    explorer.advice_seeds, explorer.advice_tokens = (1,), 16
    explorer.goal.setCurrentIndex(1)  # a story
    with qtbot.waitSignal(explorer.advice_ready, timeout=180_000) as ready:
        qtbot.mouseClick(explorer.suggest_button, Qt.MouseButton.LeftButton)
    advice = ready.args[0]
    assert (
        "Рассказ" in explorer.advice_text.toPlainText() and "Набор по умолчанию" in explorer.advice_text.toPlainText()
    )
    qtbot.mouseClick(explorer.use_advice_button, Qt.MouseButton.LeftButton)
    assert window.params.current.temperature == advice.settings.temperature
    assert window.params.current.repetition_penalty == advice.settings.repetition_penalty
    _shot(window.lab.lab, "lab-suggest-ru.png")


def test_a_failing_cell_is_shown_in_the_lab_window(
    qtbot: Any, make_window: Any, embedded: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptdesk.errors import EngineError
    from gptdesk.i18n import Text

    original = embedded.stream
    calls: list[int] = []

    def second_cell_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise EngineError(Text("llama.cpp has no room for this cell.", "У llama.cpp нет места."))
        return original(*args, **kwargs)

    monkeypatch.setattr(embedded, "stream", second_cell_fails)
    window = make_window(embedded)
    window.prompt_edit.setPlainText("Жили-были дед и баба")
    window.lab.act_explorer.trigger()
    lab = window.lab.lab
    explorer = lab.explorer
    explorer.choose_axis(explorer.axis1, "temperature")
    explorer.values1.setText("0.6,0.9,1.2")
    explorer.choose_axis(explorer.axis2, "")
    explorer.tokens.setValue(6)
    with qtbot.waitSignal(explorer.failed, timeout=120_000):
        assert explorer.run()
    qtbot.waitUntil(lambda: explorer.run_button.isEnabled(), timeout=5000)
    # The lab window says it, the grid says which cell and why, and Run / Stop are usable again.
    assert "no room for this cell" in lab.message_bar.text and lab.message_bar.level == "error"
    assert explorer.progress.format() == "Cell 2 of 3 failed"
    assert explorer.grid.item(1, 0).text() == "Failed: llama.cpp has no room for this cell."
    assert explorer.grid.item(2, 0).text() == "not run"
    assert "repeated 3-grams" in explorer.grid.item(0, 0).text()
    assert not explorer.stop_button.isEnabled()
    _shot(lab, "lab-explorer-failed.png")
    # The next grid that runs clears the stale error.
    with qtbot.waitSignal(explorer.grid_finished, timeout=120_000):
        assert explorer.run()
    assert lab.message_bar.text == ""


def test_explorer_names_settings_in_the_interface_language(qtbot: Any, make_window: Any) -> None:
    window = make_window(lang="ru")
    window.prompt_edit.setPlainText("Жили-были")
    window.lab.act_explorer.trigger()
    explorer = window.lab.lab.explorer
    assert explorer.prompt_edit.toPlainText() == "Жили-были"  # the main window's prompt
    assert explorer.axis1.currentText() == "Температура (temperature)"
    assert explorer.axis2.currentText() == "Топ-p (ядерная выборка) (top_p)"
    assert explorer.axis2.itemText(0) == "(нет)"
    texts = [explorer.axis1.itemText(i) for i in range(explorer.axis1.count())]
    assert "Набор настроек (preset)" in texts and all("(" in t for t in texts)
    window.set_language("en")
    assert explorer.axis1.currentText() == "Temperature (temperature)"
    assert explorer._axes_from_form()[0].name == "temperature"
