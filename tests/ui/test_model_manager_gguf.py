"""The model manager shows each model's converted GGUF copies with their sizes and removes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.converted import cache_total
from gptdesk.models.locate import resolve
from gptdesk.ui.model_manager import _COL, ModelManagerDialog
from tests.models.test_manage import _cache_model


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    from gptdesk.i18n import set_language

    set_language("en")
    yield
    set_language(None)


def _dialog(qtbot: Any) -> ModelManagerDialog:
    dialog = ModelManagerDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _cell(dialog: ModelManagerDialog, name: str, column: str) -> str:
    item = dialog.table.item(dialog.row_index(name), _COL[column])
    assert item is not None
    return item.text()


def test_gguf_copies_are_listed_and_removed(qtbot: Any, tmp_path: Path, tiny_model_dir: Path) -> None:
    hub = tmp_path / "hf" / "hub"
    _cache_model(hub, "ai-forever/rugpt3small_based_on_gpt2", tiny_model_dir)
    small = resolve("rugpt3small")
    q8 = ensure_gguf(small, "q8_0").path

    dialog = _dialog(qtbot)
    shown = _cell(dialog, "rugpt3small", "converted")
    assert shown.startswith("q8_0 ") and "MB" in shown
    assert dialog.table.item(dialog.row_index("rugpt3small"), _COL["converted"]).toolTip() == str(q8)
    assert _cell(dialog, "rugpt3medium", "converted") == "—"
    assert "GGUF copies for the llama.cpp engine" in dialog.machine_label.text()

    dialog.select("rugpt3medium")
    assert not dialog.delete_converted_button.isEnabled()
    dialog.select("rugpt3small")
    assert dialog.delete_converted_button.isEnabled()
    qtbot.mouseClick(dialog.delete_converted_button, Qt.MouseButton.LeftButton)
    assert not q8.exists() and cache_total() == 0
    assert "Deleted the GGUF copies of" in dialog.message_label.text()
    assert _cell(dialog, "rugpt3small", "converted") == "—"
    assert dialog.rows()[dialog.row_index("rugpt3small")].status == "ready"  # the download stays
    assert not dialog.delete_converted_button.isEnabled()


def test_deleting_a_model_removes_its_gguf_too(
    qtbot: Any, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hf" / "hub"
    _cache_model(hub, "ai-forever/rugpt3small_based_on_gpt2", tiny_model_dir)
    q8 = ensure_gguf(resolve("rugpt3small"), "q8_0").path
    asked: list[str] = []

    def answer(_parent: object, _title: str, text: str, *_args: object) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    dialog = _dialog(qtbot)
    dialog.select("rugpt3small")
    qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)
    assert asked and "GGUF copies included" in asked[0]
    assert not q8.exists() and not any(hub.glob("models--*"))
    assert dialog.rows()[dialog.row_index("rugpt3small")].status == "absent"
