"""Start the window: the Qt application, the translations, the history, and the first model load."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Sequence

from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from gptdesk import __version__
from gptdesk.history.errors import HistoryError
from gptdesk.history.store import HistoryStore, open_history
from gptdesk.ui.desktop.entry import APP_ID, ICON_SIZES, ICON_SVG, icon_png
from gptdesk.ui.desktop.fast_engine import fast_engine_notice, fast_engine_status
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


def app_icon() -> QIcon:
    """The application icon: every rendered PNG size (the SVG needs Qt's svg icon engine, not always there)."""
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addFile(str(icon_png(size)), QSize(size, size))
    if icon.isNull():  # pragma: no cover - the PNGs ship with the package
        icon = QIcon(str(ICON_SVG))
    return icon


def announce_fast_engine(window: MainWindow, installed: bool | None = None) -> bool:
    """Say once, in the status bar, that the fast engine is missing and what it would give; True if said."""
    short = fast_engine_status(installed)
    full = fast_engine_notice(installed)
    if short is None or full is None:
        return False
    bar = window.statusBar()
    said = short.get()
    bar.showMessage(said)
    bar.setToolTip(full.get())

    def _on_message_changed(message: str) -> None:
        if message != said:  # replaced or cleared: the tooltip goes with it
            bar.setToolTip("")
            bar.messageChanged.disconnect(_on_message_changed)

    bar.messageChanged.connect(_on_message_changed)
    return True


def run(model: str | None = None, lang: str | None = None, argv: Sequence[str] | None = None) -> int:
    """Open the window and run until it is closed; the model loads in a worker meanwhile."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("GPT Desk")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("gptdesk")
    # The desktop entry's name: Wayland compositors and task bars match the window to its menu entry and icon.
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
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
    announce_fast_engine(window)
    try:
        return app.exec()
    finally:
        wake.stop()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
