"""GUI tests: Qt's offscreen platform, real widgets, a scripted engine for timing-sensitive tests."""

from __future__ import annotations

import os

# Before pytest-qt creates the QApplication: no display is needed.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.fake_engine import FakeEngine

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output"

# Warnings that Qt's offscreen platform prints about itself, not about our code.
_BENIGN_QT = ("propagateSizeHints", "This plugin does not support")


@pytest.fixture(autouse=True)
def _qt_warnings_fail(qtlog: pytest.FixtureRequest) -> Iterator[None]:
    """Qt warnings (a bad connection, a widget used from the wrong thread) fail the test."""
    yield
    from PySide6.QtCore import QtMsgType

    bad = [
        record.message
        for record in qtlog.records  # type: ignore[attr-defined]
        if record.type in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
        and not any(b in record.message for b in _BENIGN_QT)
    ]
    assert not bad, f"Qt warnings: {bad}"


@pytest.fixture
def make_window(qtbot: object) -> Iterator[object]:
    """Build main windows (English, history in the test's data dir) and close them at the end."""
    from PySide6.QtWidgets import QApplication

    from gptdesk.history.store import HistoryStore
    from gptdesk.ui.main_window import MainWindow
    from gptdesk.ui.translations import Translations

    windows: list[MainWindow] = []

    def make(engine: object | None = None, *, lang: str = "en", store: bool = True) -> MainWindow:
        app = QApplication.instance()
        assert app is not None
        window = MainWindow(store=HistoryStore() if store else None, translations=Translations.instance(app))
        window.set_language(lang)
        qtbot.addWidget(window)  # type: ignore[attr-defined]
        window.show()
        window.activateWindow()
        # Window shortcuts (Ctrl+Enter, Esc) fire only in the active window.
        qtbot.waitUntil(window.isActiveWindow, timeout=5000)  # type: ignore[attr-defined]
        if engine is not None:
            window.set_engine(engine)  # type: ignore[arg-type]
        windows.append(window)
        return window

    yield make
    unsaved: list[int] = []
    for window in windows:
        # A test that leaves generations the history could not take must say what it expects.
        window.keeper.ask_on_close = lambda n: unsaved.append(n) or "discard"
        window.close()
    assert not unsaved, f"generations left unsaved in history: {unsaved}"
    from gptdesk.i18n import set_language

    set_language(None)


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()
