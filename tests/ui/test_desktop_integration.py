"""The window's desktop integration: its icon, and the one-time notice that the fast engine is missing."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QApplication

from gptdesk.ui.app import announce_fast_engine, app_icon
from gptdesk.ui.desktop.entry import ICON_SIZES


def test_app_icon_has_every_size(qtbot: Any) -> None:
    icon = app_icon()
    assert not icon.isNull()
    assert {(s.width(), s.height()) for s in icon.availableSizes()} == {(n, n) for n in ICON_SIZES}
    assert icon.pixmap(QSize(48, 48)).width() == 48


def test_status_bar_says_once_that_the_fast_engine_is_missing(qtbot: Any, make_window: Any) -> None:
    window = make_window(lang="ru")
    assert announce_fast_engine(window, installed=False)
    bar = window.statusBar()
    assert "llama.cpp" in bar.currentMessage() and "5,4 раза" in bar.currentMessage()
    assert "pip install llama-cpp-python==0.3.36" in bar.currentMessage()
    assert "build-essential" in bar.toolTip()  # the full notice: how to get a compiler
    bar.showMessage("Готово")  # the next status message replaces it: said once, not pinned
    assert bar.toolTip() == ""
    QApplication.processEvents()


def test_nothing_said_when_the_fast_engine_is_installed(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    assert not announce_fast_engine(window, installed=True)
    assert window.statusBar().currentMessage() == ""
