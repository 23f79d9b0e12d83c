"""Start the window: the Qt application, the translations, the history, and the first model load."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Sequence

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gptdesk import __version__
from gptdesk.history.errors import HistoryError
from gptdesk.history.store import HistoryStore, open_history
from gptdesk.ui.main_window import MainWindow
from gptdesk.ui.translations import Translations, detect_language


def create_window(
    app: QApplication, *, lang: str | None = None, translations: Translations | None = None
) -> MainWindow:
    """The main window with the history opened and the language applied (no model loaded yet)."""
    store: HistoryStore | None = None
    store_error: HistoryError | None = None
    try:
        store = open_history()  # read-only when it cannot be written: still browsable
    except HistoryError as exc:  # the window still works; it says why nothing is saved
        store_error = exc
    translations = translations or Translations.instance(app)
    window = MainWindow(store=store, translations=translations, store_error=store_error)
    chosen = lang or window.saved_language
    window.set_language(detect_language(chosen))
    return window


def run(model: str | None = None, lang: str | None = None, argv: Sequence[str] | None = None) -> int:
    """Open the window and run until it is closed; the model loads in a worker meanwhile."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("GPT Desk")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("gptdesk")
    window = create_window(app, lang=lang)
    gc.freeze()  # Qt's and our modules live for the whole run; see MainWindow.set_engine
    window.show()
    window.start(model)

    # Ctrl+C in the terminal closes the window properly (stop, wait, save). Python runs signal
    # handlers only between bytecodes, so a timer gives it a chance while Qt's loop is in C++.
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    previous_term = signal.signal(signal.SIGTERM, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    try:
        return app.exec()
    finally:
        wake.stop()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
