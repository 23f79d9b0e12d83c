"""The embedded model end to end: what a new user does on the first day, and a screenshot."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QTextDocument

from gptdesk.engine.base import run_to_end
from gptdesk.settings.help import FIELD_HELP
from tests.ui.conftest import SCREENSHOTS
from tests.ui.helpers import type_text


def _plain(html: str) -> str:
    doc = QTextDocument()
    doc.setHtml(html)
    return " ".join(doc.toPlainText().split())


def test_first_day_with_the_embedded_model(qtbot: Any, make_window: Any) -> None:
    """Type a Russian prompt, Ctrl+Enter, watch it stream, stop, change preset, read a Russian
    tooltip, inspect tokens, close, reopen, find the generation in history."""
    window = make_window(lang="ru")
    assert window.generate_button.text().replace("&", "") == "Сгенерировать"
    assert not window.generate_button.isEnabled()  # usable at once, generating once the model is in
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.start(None)
    engine = window.engine
    assert engine is not None and engine.info.model_id == "embedded"
    assert window.status_labels["model"].text() == "Модель: embedded"
    assert window.status_labels["device"].text() == "Устройство: cpu"
    assert window.status_labels["ram"].text().startswith("ОЗУ: ")

    # 1. A Russian prompt, Ctrl+Enter, tokens stream with live tokens per second.
    prompt = "Жили-были старик со старухой у самого синего моря"
    type_text(qtbot, window.prompt_edit, prompt)
    assert window.prompt_edit.toPlainText() == prompt
    window.params.set_values({"do_sample": True, "seed": 5, "max_new_tokens": 300, "min_new_tokens": 300})
    window.inspector_dock.raise_()
    speeds: list[str] = []
    window.token_received.connect(lambda _e: speeds.append(window.status_labels["speed"].text()))
    with qtbot.waitSignal(window.generation_finished, timeout=180_000) as blocker:
        qtbot.keyClick(window.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(
            lambda: window.generation.current is not None and window.generation.current.tokens >= 20, timeout=180_000
        )
        qtbot.wait(300)
        live = window.status_labels["speed"].text()
        assert live.endswith("ток/с") and float(live.split()[0].replace(",", ".")) > 0  # live, while generating
        # 2. Stop (Esc).
        qtbot.keyClick(window.prompt_edit, Qt.Key.Key_Escape)
    finished = blocker.args[0]
    assert finished.finish_reason == "cancelled"
    assert 20 <= finished.generated_tokens[0] < 300
    shown = window.output.text(0)
    assert shown == finished.text and shown.strip()

    # The stopped text is what the engine gives for these settings and seed, token for token.
    settings = window.params.settings().updated(seed=finished.seed)
    direct = run_to_end(
        engine.stream(prompt, settings.updated(max_new_tokens=finished.generated_tokens[0], min_new_tokens=None))
    )
    assert direct.text == shown

    # 3. Inspect the tokens: Cyrillic pieces with ids, probabilities, alternatives.
    prompt_items = window.inspector.prompt_model.items
    assert "".join(item.piece for item in prompt_items) == prompt
    assert [item.token_id for item in prompt_items] == [p.id for p in engine.tokenize(prompt)]
    assert not any(mark in item.piece for item in prompt_items for mark in ("Ð", "Ñ", "Ġ"))
    generated = window.inspector.generated_items()
    assert len(generated) == finished.generated_tokens[0]
    assert all(item.probability is not None and 0 < item.probability <= 1 for item in generated)
    assert all(len(item.alternatives) == 5 for item in generated)
    view = window.inspector.generated_view
    index = window.inspector.generated_model.index(3, 0)
    view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    assert window.inspector.alternatives.rowCount() == 5
    tooltip = _plain(str(window.inspector.generated_model.data(index, Qt.ItemDataRole.ToolTipRole)))
    assert "вероятность" in tooltip and "альтернативы" in tooltip

    SCREENSHOTS.mkdir(exist_ok=True)
    window.resize(1400, 900)
    qtbot.wait(200)
    assert window.grab().save(str(SCREENSHOTS / "main_window_tokens.png"))

    # 4. Change the preset and read a tooltip in Russian.
    window.params_dock.raise_()
    combo = window.params.preset_combo
    precise = combo.findData("precise")
    combo.setCurrentIndex(precise)
    combo.activated.emit(precise)
    assert combo.currentText() == "Точный"
    temperature_tip = _plain(window.params.editor("temperature").toolTip())
    assert " ".join(FIELD_HELP["temperature"].help.ru.split()) in temperature_tip
    qtbot.wait(300)
    assert window.grab().save(str(SCREENSHOTS / "main_window.png"))

    # 5. Close the app, reopen it, find the generation in history.
    window.close()
    reopened = make_window(lang="ru")
    records = reopened.history.records
    assert records and records[0].prompt == prompt
    assert records[0].output == shown
    assert records[0].status == "cancelled" and records[0].seed == finished.seed
    assert reopened.history.list.item(0).text().startswith(prompt)
    reopened.open_record(records[0].id)
    assert reopened.prompt_edit.toPlainText() == prompt
    assert reopened.output.text(0) == shown
