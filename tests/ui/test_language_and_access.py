"""Russian and English through Qt's translators, switchable at run time; keyboard and accessibility."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QTabWidget,
    QWidget,
)

from gptdesk.settings.help import FIELD_HELP
from gptdesk.ui import translations
from tests.ui.fake_engine import FakeEngine


def _plain(html: str) -> str:
    doc = QTextDocument()
    doc.setHtml(html)
    return " ".join(doc.toPlainText().split())


def test_switching_language_in_the_app(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(), lang="en")
    assert window.generate_button.text() == "&Generate"
    assert window.params_dock.windowTitle() == "Parameters"
    assert window.params.preset_combo.currentText() == "Balanced"
    with qtbot.waitSignal(window.language_changed):
        window.act_languages["ru"].trigger()
    assert window.generate_button.text() == "&Сгенерировать"
    assert window.continue_button.text() == "Пр&одолжить"
    assert window.params_dock.windowTitle() == "Параметры"
    assert window.history_dock.windowTitle() == "История"
    assert window.file_menu.title() == "&Файл"
    assert window.params.preset_combo.currentText() == "Сбалансированный"
    assert window.params.editor("top_k").accessibleName() == "Топ-k"
    tip = _plain(window.params.editor("top_p").toolTip())
    assert " ".join(FIELD_HELP["top_p"].help.ru.split()) in tip
    assert window.status_labels["tokens"].toolTip() == "Сгенерировано токенов"
    assert window.output.editor(0).placeholderText().startswith("Здесь появляется текст")
    # Messages from the core follow too.
    window.prompt_edit.clear()
    window.generate()
    assert window.message_bar.text.startswith("Затравка пуста.")
    window.set_language("en")
    assert window.message_bar.text.startswith("The prompt is empty.")
    assert window.generate_button.text() == "&Generate"
    assert window.saved_language == "en"


def test_the_language_choice_is_remembered(qtbot: Any, make_window: Any) -> None:
    window = make_window(lang="ru")
    assert window.saved_language == "ru"
    window.close()
    again = make_window(lang="en")
    assert again.saved_language == "en"


@pytest.mark.parametrize(
    ("env", "explicit", "expected"),
    [
        ({"GPTDESK_LANG": "ru"}, None, "ru"),
        ({"GPTDESK_LANG": "", "LANG": "ru_RU.UTF-8"}, None, "ru"),
        ({"GPTDESK_LANG": "", "LANG": "en_US.UTF-8"}, None, "en"),
        ({"GPTDESK_LANG": "", "LANG": "ru_RU.UTF-8"}, "en", "en"),
    ],
)
def test_the_language_follows_the_system_locale(
    monkeypatch: Any, env: dict[str, str], explicit: str | None, expected: str
) -> None:
    for var in ("GPTDESK_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert translations.detect_language(explicit) == expected


def test_every_user_facing_string_is_translated_and_the_catalog_is_current(tmp_path: Path) -> None:
    # Extract the strings from the sources as they are now, merged with the committed Russian.
    fresh = tmp_path / "gptdesk_ru.ts"
    fresh.write_bytes(translations.TS_FILE.read_bytes())
    translations.extract(fresh)
    assert translations.untranslated(fresh) == []
    assert fresh.read_text(encoding="utf-8") == translations.TS_FILE.read_text(encoding="utf-8"), (
        "gptdesk_ru.ts is out of date: run python -m gptdesk.ui.translations"
    )
    compiled = tmp_path / "gptdesk_ru.qm"
    translations.compile_catalog(translations.TS_FILE, compiled)
    assert compiled.read_bytes() == translations.QM_FILE.read_bytes(), "gptdesk_ru.qm is stale"


INTERACTIVE = (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QAbstractSpinBox, QAbstractItemView, QTabWidget)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_control_has_an_accessible_name(qtbot: Any, make_window: Any, lang: str) -> None:
    window = make_window(FakeEngine(), lang=lang)
    missing = []
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, INTERACTIVE) or not widget.isVisibleTo(window):
            continue
        if type(widget).__name__ == "QToolButton" and type(widget.parent()).__name__ in ("QDockWidget", "QLineEdit"):
            continue  # Qt's own dock title buttons (close, float) and a line edit's clear button
        if widget.objectName().startswith("qt_") or isinstance(widget, QHeaderView):
            continue  # Qt's own parts (a spin box's inner editor, a table's header with its labels)
        if isinstance(widget, QAbstractButton) and widget.text().strip():
            continue  # a button's text is its accessible name
        if not widget.accessibleName().strip():
            missing.append(f"{type(widget).__name__} {widget.objectName()!r}")
    assert missing == [], "\n".join(missing)


def test_everything_is_reachable_from_the_keyboard(qtbot: Any, make_window: Any) -> None:
    from PySide6.QtCore import Qt

    window = make_window(FakeEngine())
    # Shortcuts for the main actions.
    shortcuts = {a.text(): [s.toString() for s in a.shortcuts()] for a in window.actions() if a.shortcuts()}
    assert shortcuts["&Generate"] == ["Ctrl+Return", "Ctrl+Enter"]
    assert shortcuts["&Stop"] == ["Esc"]
    assert shortcuts["Co&ntinue"][0] == "Ctrl+Shift+Return"
    # Menu mnemonics and buddy labels let Alt+letter reach every field.
    assert window.prompt_label.buddy() is window.prompt_edit
    assert all(window.params._labels[name].buddy() is window.params.editor(name) for name in FIELD_HELP)
    # Ctrl+M reaches the model list, Ctrl+L the prompt.
    qtbot.keyClick(window.prompt_edit, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert window.model_picker.combo.hasFocus()
    qtbot.keyClick(window.model_picker.combo, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.prompt_edit.hasFocus()
    # Tab leaves the prompt (it does not insert a tab) and reaches the Generate button.
    seen = []
    for _ in range(6):
        qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Tab)
        seen.append(window.focusWidget())
    assert window.generate_button in seen
    assert "\t" not in window.prompt_edit.toPlainText()


def test_a_closed_window_follows_a_language_switch_without_touching_its_closed_engine(
    qtbot: Any, make_window: Any
) -> None:
    from tests.ui.fake_engine import FakeEngine

    class Strict(FakeEngine):
        def tokenize(self, text: str) -> Any:
            assert not self.closed, "tokenize() on a closed engine"
            return super().tokenize(text)

    engine = Strict()
    closed = make_window(engine)
    closed.prompt_edit.setPlainText("Текст")
    closed.close()
    assert engine.closed
    other = make_window(FakeEngine())
    other.set_language("ru")  # every top-level widget retranslates, the closed window too
    assert closed.params.estimate_label.text() == "Загрузите модель, чтобы увидеть стоимость."
