"""The story window (a picker of stories above the story panel) and its menu in the main window."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QDialog, QMenu, QVBoxLayout, QWidget

from gptdesk.engine.base import Engine
from gptdesk.errors import GptDeskError
from gptdesk.history.store import HistoryStore
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings
from gptdesk.story import StoryStore, StoryToken
from gptdesk.ui.story.panel import StoryPanel
from gptdesk.ui.workers import WorkerThreads


class StoryWindow(QDialog):
    """Story mode beside the main window: choose a story, write in it."""

    def __init__(
        self, threads: WorkerThreads, stories: StoryStore, current: Callable[[], Engine | None], parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("story_window")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.stories = stories
        self.picker = QComboBox()
        self.picker.setObjectName("story_picker")
        self.picker.activated.connect(self._on_picked)
        self.panel = StoryPanel(threads, stories, current)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addWidget(self.panel)
        self.panel.story_changed.connect(lambda _id: self.fill_picker())
        self.resize(1150, 760)
        self.retranslate()

    def fill_picker(self) -> None:
        shown = self.panel.story.id if self.panel.story is not None else None
        self.picker.blockSignals(True)
        self.picker.clear()
        for story_id, title, nodes, _updated in self.stories.list():
            self.picker.addItem(f"{story_id}: {title} ({nodes})", story_id)
            if story_id == shown:
                self.picker.setCurrentIndex(self.picker.count() - 1)
        self.picker.blockSignals(False)

    def _on_picked(self, index: int) -> None:
        self.panel.open_story(int(self.picker.itemData(index)))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Story — GPT Desk"))
        self.picker.setAccessibleName(self.tr("Story"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class StoryFeature(QObject):
    """The Story menu: a new story from the window's prompt and settings, or the stories kept."""

    def __init__(
        self,
        window: QWidget,
        threads: WorkerThreads,
        *,
        current: Callable[[], Engine | None],
        store: HistoryStore | None,
        settings: Callable[[], GenerationSettings | None],
        prompt: Callable[[], str],
        show_message: Callable[[Text, str], None],
    ) -> None:
        super().__init__(window)
        self._window = window
        self._threads = threads
        self._current = current
        self._stories = StoryStore(store) if store is not None else None
        self._settings = settings
        self._prompt = prompt
        self._show_message = show_message
        self.story_window: StoryWindow | None = None
        self.menu = QMenu(window)
        self.act_new = self._action(self.new_from_prompt, "Ctrl+Shift+W")
        self.act_open = self._action(self.open_stories, "")
        self.retranslate()

    def _action(self, slot: Callable[[], object], shortcut: str) -> QAction:
        action = QAction(self._window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        self._window.addAction(action)
        self.menu.addAction(action)
        return action

    def open_stories(self) -> StoryWindow | None:
        if self._stories is None:
            self._show_message(
                Text(
                    "Stories are kept in the history, which is not available.",
                    "Истории хранятся в истории генераций, а она недоступна.",
                ),
                "warning",
            )
            return None
        if self.story_window is None:
            self.story_window = StoryWindow(self._threads, self._stories, self._current, self._window)
            self.story_window.panel.failed.connect(lambda message: self._show_message(Text(message, message), "error"))
            rows = self._stories.list()
            if rows:
                self.story_window.panel.open_story(rows[0][0])
        self.story_window.fill_picker()
        self.story_window.show()
        self.story_window.raise_()
        self.story_window.activateWindow()
        return self.story_window

    def new_from_prompt(self) -> StoryWindow | None:
        """A story whose root is the window's prompt; its first continuation starts at once."""
        engine, settings, prompt = self._current(), self._settings(), self._prompt()
        if engine is None or settings is None:
            self._show_message(Text("Load a model first.", "Сначала загрузите модель."), "warning")
            return None
        window = self.open_stories()
        if window is None or self._stories is None:
            return None
        if not prompt.strip():
            self._show_message(
                Text("Type a prompt to start a story from.", "Введите затравку, с которой начнётся история."), "warning"
            )
            return window
        try:
            stored = settings.updated(seed=None, num_return_sequences=1).model_dump()
            tokens = [StoryToken(p.id, p.text) for p in engine.tokenize(prompt)]
            info = engine.info
            story_id, _root = self._stories.create(prompt, tokens, stored, model_id=info.model_id, engine=info.engine)
        except GptDeskError as exc:
            self._show_message(exc.text, "error")
            return window
        window.panel.open_story(story_id)
        window.panel.grow(1)
        return window

    def stop(self) -> None:
        """Stop a story's generation (the window is closing)."""
        if self.story_window is not None:
            self.story_window.panel.stop()

    def retranslate(self) -> None:
        self.menu.setTitle(self.tr("St&ory"))
        self.act_new.setText(self.tr("&New story from the prompt"))
        self.act_open.setText(self.tr("&Stories…"))
        if self.story_window is not None:
            self.story_window.retranslate()
