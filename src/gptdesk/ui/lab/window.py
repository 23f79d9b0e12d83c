"""The parameter lab's window (next-token view and explorer tabs) and its menu in the main window."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QMenu, QTabWidget, QVBoxLayout, QWidget

from gptdesk.engine.base import Engine
from gptdesk.history.store import HistoryStore
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.inspector import TokenInspector, TokenItem
from gptdesk.ui.lab.explorer_panel import ExplorerPanel
from gptdesk.ui.lab.next_panel import NextTokenPanel
from gptdesk.ui.messages import Messages, error_text
from gptdesk.ui.widgets import MessageBar
from gptdesk.ui.workers import WorkerThreads


class LabWindow(QDialog):
    """Two tabs: the next-token view and the settings explorer (non-modal, beside the main window)."""

    def __init__(
        self,
        threads: WorkerThreads,
        current: Callable[[], Engine | None],
        store: HistoryStore | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("lab_window")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.next_panel = NextTokenPanel(threads)
        self.explorer = ExplorerPanel(threads, current, store)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("lab_tabs")
        self.tabs.addTab(self.next_panel, "")
        self.tabs.addTab(self.explorer, "")
        # The lab's own failures are shown here, where the user is looking, not behind it in the main window.
        self.message_bar = MessageBar()
        self.messages = Messages(self.message_bar)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs)
        self.explorer.grid_finished.connect(lambda _results: self.messages.clear_errors())
        self.resize(1150, 760)
        self.retranslate()

    def retranslate(self) -> None:
        self.messages.retranslate()
        self.setWindowTitle(self.tr("Parameter lab — GPT Desk"))
        self.tabs.setTabText(0, self.tr("&Next token"))
        self.tabs.setTabText(1, self.tr("&Explorer"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class LabFeature(QObject):
    """The Lab menu's actions; opens the lab on the prompt, on a generated token, or on the explorer.

    The lab takes the window's current settings each time it opens, and gives settings back through
    `apply_settings` ("Make current settings", "Use suggested settings").
    """

    def __init__(
        self,
        window: QWidget,
        threads: WorkerThreads,
        *,
        current: Callable[[], Engine | None],
        store: HistoryStore | None,
        settings: Callable[[], GenerationSettings | None],
        apply_settings: Callable[[GenerationSettings], None],
        prompt: Callable[[], str],
        inspector: TokenInspector,
        show_message: Callable[[Text, str], None],
    ) -> None:
        super().__init__(window)
        self._window = window
        self._threads = threads
        self._current = current
        self._store = store
        self._settings = settings
        self._prompt = prompt
        self._inspector = inspector
        self._show_message = show_message
        self._apply_settings = apply_settings
        self.lab: LabWindow | None = None
        self._selected: TokenItem | None = None
        inspector.token_selected.connect(self._on_token_selected)

        self.menu = QMenu(window)
        self.act_next = self._action(self.open_next_for_prompt, "Ctrl+Shift+N")
        self.act_next_token = self._action(self.open_next_for_selected, "Ctrl+Shift+T")
        self.act_explorer = self._action(self.open_explorer, "Ctrl+Shift+E")
        self.act_suggest = self._action(self.open_suggest, "Ctrl+Shift+G")
        for action in (self.act_next, self.act_next_token, self.act_explorer, self.act_suggest):
            self.menu.addAction(action)
        self.retranslate()

    def _action(self, slot: Callable[[], object], shortcut: str) -> QAction:
        action = QAction(self._window)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        self._window.addAction(action)
        return action

    def window(self) -> LabWindow:
        if self.lab is None:
            self.lab = LabWindow(self._threads, self._current, self._store, self._window)
            self.lab.explorer.settings_chosen.connect(self._on_settings_chosen)
            self.lab.explorer.failed.connect(self._on_failed)
            self.lab.next_panel.failed.connect(self._on_failed)
        settings = self._settings()
        if settings is not None:
            self.lab.next_panel.set_settings(settings)
            self.lab.explorer.set_settings(settings)
        self.lab.show()
        self.lab.raise_()
        self.lab.activateWindow()
        return self.lab

    def _engine_or_message(self) -> Engine | None:
        engine = self._current()
        if engine is None:
            self._show_message(Text("Load a model first.", "Сначала загрузите модель."), "warning")
        return engine

    def open_next_for_prompt(self) -> bool:
        engine = self._engine_or_message()
        if engine is None:
            return False
        lab = self.window()
        lab.tabs.setCurrentWidget(lab.next_panel)
        lab.next_panel.load_prompt(engine, self._prompt())
        return True

    def open_next_for_selected(self) -> bool:
        """The view on the step that produced the token selected in the inspector."""
        if self._selected is None:
            self._show_message(
                Text(
                    "Select a generated token in the token inspector first.",
                    "Сначала выберите сгенерированный токен в инспекторе токенов.",
                ),
                "info",
            )
            return False
        return self.open_next_for_token(self._selected)

    def open_next_for_token(self, item: TokenItem) -> bool:
        engine = self._engine_or_message()
        if engine is None:
            return False
        generated = list(self._inspector.generated_model.items)  # the variant shown
        index = next((i for i, g in enumerate(generated) if g is item), None)
        if index is None:
            return False
        prompt_ids = [p.token_id for p in self._inspector.prompt_model.items]
        lab = self.window()
        lab.tabs.setCurrentWidget(lab.next_panel)
        lab.next_panel.load(engine, prompt_ids, [g.token_id for g in generated[:index]], chosen=item.token_id)
        return True

    def open_explorer(self) -> None:
        lab = self.window()
        lab.tabs.setCurrentWidget(lab.explorer)
        if not lab.explorer.prompt_edit.toPlainText().strip():
            lab.explorer.set_prompt(self._prompt())
        lab.explorer.prompt_edit.setFocus()

    def open_suggest(self) -> None:
        self.open_explorer()
        assert self.lab is not None
        self.lab.explorer.goal.setFocus()

    def _on_token_selected(self, item: object) -> None:
        if isinstance(item, TokenItem):
            self._selected = item
            # An open view follows the inspector: clicking a token shows the choice made there.
            if self.lab is not None and self.lab.isVisible() and self.lab.tabs.currentWidget() is self.lab.next_panel:
                self.open_next_for_token(item)

    def _on_settings_chosen(self, settings: object) -> None:
        assert isinstance(settings, GenerationSettings)
        self._apply_settings(settings)
        self._show_message(Text("Settings taken from the lab.", "Настройки взяты из лаборатории."), "info")

    def _on_failed(self, exc: object) -> None:
        text = error_text(exc) if isinstance(exc, BaseException) else Text(str(exc), str(exc))
        if self.lab is not None:
            self.lab.messages.show(text, "error")
        self._show_message(text, "error")

    def stop(self) -> None:
        if self.lab is not None:
            self.lab.explorer.stop()

    def retranslate(self) -> None:
        self.menu.setTitle(self.tr("&Lab"))
        self.act_next.setText(self.tr("&Next-token view of the prompt"))
        self.act_next_token.setText(self.tr("Next-token view of the selected &token"))
        self.act_explorer.setText(self.tr("Settings &explorer"))
        self.act_suggest.setText(self.tr("&Suggest settings"))
