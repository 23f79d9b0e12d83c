"""Typing a prompt, Ctrl+Enter, streamed tokens, Stop, Continue, Copy, Clear, variants."""

from __future__ import annotations

import time
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from gptdesk.engine.base import Finished, TokenEvent
from tests.ui.fake_engine import SCRIPT, FakeEngine
from tests.ui.helpers import type_text


def _type_prompt(qtbot: Any, window: Any, text: str) -> None:
    type_text(qtbot, window.prompt_edit, text)


def _settings(window: Any, **values: object) -> None:
    window.params.set_values(values)


def test_ctrl_enter_streams_tokens_into_the_output(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(delay=0.04)  # slower than the window's 25 ms display batches
    window = make_window(engine)
    _settings(window, do_sample=False, max_new_tokens=8)
    _type_prompt(qtbot, window, "Жили-были")
    assert window.prompt_edit.toPlainText() == "Жили-были"

    seen: list[str] = []
    lengths: list[int] = []

    def on_token(event: TokenEvent) -> None:
        seen.append(event.text)
        lengths.append(len(window.output.text(0)))  # the pane grows token by token, not at the end

    window.token_received.connect(on_token)
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        qtbot.keyClick(window.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert window.generating
        assert window.generate_button.text().replace("&", "") == "Stop"
    finished = blocker.args[0]
    assert isinstance(finished, Finished)
    expected = "".join(SCRIPT[:8])
    assert finished.text == expected
    assert "".join(seen) == expected
    assert window.output.text(0) == expected
    # The pane grew while the model wrote (several steps), not once at the end.
    assert lengths == sorted(lengths) and len(set(lengths)) >= 4, lengths
    # The Ctrl+Enter did not leave a line break in the prompt.
    assert window.prompt_edit.toPlainText() == "Жили-были"
    assert engine.calls[0][0] == "Жили-были"
    assert window.generate_button.text().replace("&", "") == "Generate"
    assert window.status_labels["tokens"].text() == "Tokens: 8"
    assert "tok/s" in window.status_labels["speed"].text()
    assert window.status_labels["first_token"].text().startswith("First token: ")


def test_live_figures_update_while_generating(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(delay=0.03)
    window = make_window(engine)
    _settings(window, do_sample=False, max_new_tokens=40)
    window.prompt_edit.setPlainText("Жили-были")
    window.generate()
    qtbot.waitUntil(
        lambda: window.generation.current is not None and window.generation.current.tokens >= 10, timeout=10_000
    )
    qtbot.wait(250)  # one refresh of the figures
    tokens = int(window.status_labels["tokens"].text().split(": ")[1])
    assert 3 <= tokens < 40
    speed = window.status_labels["speed"].text().split(" ")[0]
    assert float(speed) > 0
    first = window.status_labels["first_token"].text()
    assert first.startswith("First token: ") and "—" not in first
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        window.stop()


def test_stop_button_and_escape_stop_within_one_token(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(delay=0.02)
    window = make_window(engine)
    _settings(window, do_sample=False, max_new_tokens=500)
    window.prompt_edit.setPlainText("Жили-были")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        window.generate()
        qtbot.waitUntil(
            lambda: window.generation.current is not None and window.generation.current.tokens >= 5, timeout=10_000
        )
        qtbot.keyClick(window.prompt_edit, Qt.Key.Key_Escape)
        stop_count = window.generation.current.tokens if window.generation.current else -1
    finished = blocker.args[0]
    assert finished.finish_reason == "cancelled"
    # Tokens shown after Stop: at most the one the model was computing when Stop was pressed.
    generated = finished.generated_tokens[0]
    assert generated - stop_count <= 1, (generated, stop_count)
    assert generated < 500
    assert window.generation.stop_latency is not None
    assert window.generate_button.text().replace("&", "") == "Generate"

    # The button itself stops too.
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: window.generation.current is not None and window.generation.current.tokens >= 3, timeout=10_000
        )
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0].finish_reason == "cancelled"


def test_continue_extends_the_text_from_where_it_stopped(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine()
    window = make_window(engine)
    _settings(window, do_sample=False, max_new_tokens=3)
    window.prompt_edit.setPlainText("Начало")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        window.generate()
    first = window.output.text(0)
    assert first == "".join(SCRIPT[:3])
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        qtbot.keyClick(
            window.prompt_edit,
            Qt.Key.Key_Return,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        )
    # The model was given the prompt plus the text so far, and the new text was appended.
    assert engine.calls[-1][0] == "Начало" + first
    assert window.output.text(0) == first + "".join(SCRIPT[:3])
    record = window.store.find()[0]
    assert record.kind == "continue" and record.parent_id is not None
    assert record.prompt == "Начало" + first


def test_copy_and_clear(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    _settings(window, do_sample=False, max_new_tokens=4)
    window.prompt_edit.setPlainText("Текст")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        window.generate()
    qtbot.mouseClick(window.copy_button, Qt.MouseButton.LeftButton)
    # What is shown: the prompt and the text after it.
    assert QApplication.clipboard().text() == "Текст" + "".join(SCRIPT[:4])
    qtbot.mouseClick(window.clear_button, Qt.MouseButton.LeftButton)
    assert window.output.text(0) == ""
    assert window.inspector.generated_items() == []
    assert not window.continue_button.isEnabled()
    assert window.prompt_edit.toPlainText() == "Текст"  # Clear empties the output, not the prompt


def test_variants_side_by_side_and_any_can_be_continued(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine()
    window = make_window(engine)
    _settings(window, do_sample=True, num_return_sequences=3, max_new_tokens=5, seed=7)
    window.prompt_edit.setPlainText("Однажды")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        window.generate()
    texts = blocker.args[0].texts
    assert len(texts) == 3
    assert window.output.count() == 3
    assert window.output.texts() == texts
    assert len(set(texts)) > 1  # sampled independently
    # Side by side by default; the tabs are one click away.
    assert window.view.showing_columns and window.output.columns.isVisible()
    assert [window.output.columns.titles[i].text() for i in range(3)] == ["Variant 1", "Variant 2", "Variant 3"]
    window.view.side_by_side.setChecked(False)
    assert window.output.tabBar().isVisible()
    assert [window.output.tabText(i) for i in range(3)] == ["Variant 1", "Variant 2", "Variant 3"]
    # Continue the second variant.
    window.output.setCurrentIndex(1)
    assert window.inspector.generated_model.items and window.inspector._variant == 1
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        assert window.continue_generation()
    assert engine.calls[-1][0] == "Однажды" + texts[1]
    assert all(text.startswith(texts[1]) for text in window.output.texts())
    assert window.store.find()[0].texts == [t[len(texts[1]) :] for t in window.output.texts()]


def test_empty_prompt_is_refused_with_a_message(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine()
    window = make_window(engine)
    assert not window.generate()
    assert "The prompt is empty" in window.message_bar.text
    assert window.message_bar.level == "error"
    assert engine.calls == []


def test_engine_failure_is_shown_and_partial_text_kept(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(fail_after=3)
    window = make_window(engine)
    _settings(window, do_sample=False, max_new_tokens=10)
    window.prompt_edit.setPlainText("Сбой")
    with qtbot.waitSignal(window.generation_failed, timeout=10_000):
        window.generate()
    assert "Scripted failure" in window.message_bar.text
    assert window.output.text(0) == "".join(SCRIPT[:3])
    record = window.store.find()[0]
    assert record.status == "failed" and record.output == "".join(SCRIPT[:3])
    assert "Scripted failure" in (record.error or "")
    assert not window.generating


def test_notices_from_the_engine_are_shown(qtbot: Any, make_window: Any) -> None:
    from gptdesk.i18n import Text

    window = make_window(FakeEngine(notice=Text("The prompt was cut.", "Затравка обрезана.")))
    _settings(window, do_sample=False, max_new_tokens=2)
    window.prompt_edit.setPlainText("Текст")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        window.generate()
    assert window.message_bar.text == "The prompt was cut."


@pytest.mark.parametrize("delay", [0.0])
def test_a_fast_engine_does_not_lose_tokens(qtbot: Any, make_window: Any, delay: float) -> None:
    window = make_window(FakeEngine(delay=delay))
    _settings(window, do_sample=False, max_new_tokens=2000)
    window.prompt_edit.setPlainText("Быстро")
    started = time.perf_counter()
    with qtbot.waitSignal(window.generation_finished, timeout=30_000) as blocker:
        window.generate()
    assert window.output.text(0) == blocker.args[0].text
    assert len(window.inspector.generated_items()) == 2000
    print(f"2000 scripted tokens shown in {time.perf_counter() - started:.2f} s")
