"""Story mode: the current path's text shaded by probability, alternatives to branch from, N continuations, the tree."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QHelpEvent, QKeySequence, QMouseEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenuBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextEdit,
    QToolTip,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptdesk.engine.base import Engine
from gptdesk.errors import GptDeskError
from gptdesk.story import Story, StoryStore, StoryToken, branch, edit, export, grow, import_story
from gptdesk.story.grow import Grown
from gptdesk.ui.inspector import percent, shade, visible
from gptdesk.ui.workers import CallWorker, WorkerThreads

_ROLE_ID = Qt.ItemDataRole.UserRole


class _TokenBridge(QObject):
    """Carries a growing node's tokens from the worker thread to the panel (a queued signal)."""

    tokens_changed = Signal(int, object)


class StoryPanel(QWidget):
    """A story's current path as text, its tree, and the operations on it.

    Signals:
        story_changed(int): the story shown was reloaded (after an operation or a move).
        failed(str): an operation failed; the message says why.
    """

    story_changed = Signal(int)
    failed = Signal(str)

    def __init__(
        self,
        threads: WorkerThreads,
        stories: StoryStore,
        engine: Callable[[], Engine | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("story_panel")
        self.threads = threads
        self.stories = stories
        self.engine = engine
        self.story: Story | None = None
        self.cancel = threading.Event()
        self.busy = False
        self._spans: list[tuple[int, int, int, int]] = []  # (start, end, node id, token index) in the text
        self._shown_text = ""
        self._bridge = _TokenBridge(self)
        self._bridge.tokens_changed.connect(self._on_tokens_changed)

        self.menu_bar = QMenuBar(self)
        self.menu = self.menu_bar.addMenu("")
        self.text = QTextEdit()
        self.text.setObjectName("story_text")
        self.text.setMouseTracking(True)
        self.text.viewport().installEventFilter(self)
        self.alternatives = QListWidget()
        self.alternatives.setObjectName("story_alternatives")
        self.alternatives.itemActivated.connect(self._on_alternative_chosen)
        self.alternatives.itemClicked.connect(self._on_alternative_chosen)
        self.alternatives_title = QLabel()
        self.children_list = QListWidget()
        self.children_list.setObjectName("story_children")
        self.children_list.setFlow(QListWidget.Flow.LeftToRight)
        self.children_list.setWrapping(True)
        self.children_list.setWordWrap(True)
        self.children_list.itemClicked.connect(self._on_child_clicked)
        self.tree = QTreeWidget()
        self.tree.setObjectName("story_tree")
        self.tree.setColumnCount(3)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the opening words
        self.tree.itemClicked.connect(self._on_tree_clicked)
        self.count = QSpinBox()
        self.count.setObjectName("story_count")
        self.count.setRange(1, 16)
        self.count.setValue(3)
        self.grow_button = QPushButton()
        self.grow_button.setObjectName("story_grow")
        self.grow_button.clicked.connect(lambda: self.grow(self.count.value()))
        self.status = QLabel()
        self.status.setObjectName("story_status")

        self.act_grow = self._action(lambda: self.grow(1), "Ctrl+Return", "Ctrl+Enter")
        self.act_grow_n = self._action(lambda: self.grow(self.count.value()))
        self.act_stop = self._action(self.stop, "Esc")
        self.act_prev = self._action(lambda: self.move_sibling(-1), "Alt+Left")
        self.act_next = self._action(lambda: self.move_sibling(1), "Alt+Right")
        self.act_parent = self._action(self.move_parent, "Alt+Up")
        self.act_child = self._action(self.move_child, "Alt+Down")
        self.act_edit = self._action(self.apply_edit)
        self.act_bookmark = self._action(self.toggle_bookmark)
        self.act_export_txt = self._action(lambda: self._export_dialog("txt"))
        self.act_export_md = self._action(lambda: self._export_dialog("md"))
        self.act_export_json = self._action(lambda: self._export_dialog("json"))
        self.act_import = self._action(self._import_dialog)

        controls = QHBoxLayout()
        controls.addWidget(self.count)
        controls.addWidget(self.grow_button)
        controls.addWidget(self.status, 1)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.alternatives_title)
        side_layout.addWidget(self.alternatives)
        side_layout.addWidget(self.tree, 2)
        splitter = QSplitter()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.text, 3)
        left_layout.addLayout(controls)
        left_layout.addWidget(self.children_list, 1)
        splitter.addWidget(left)
        splitter.addWidget(side)
        layout = QVBoxLayout(self)
        layout.setMenuBar(self.menu_bar)
        layout.addWidget(splitter)
        self.retranslate()

    def _action(self, slot: Callable[[], Any], *shortcuts: str) -> QAction:
        action = QAction(self)
        action.triggered.connect(slot)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(action)
        self.menu.addAction(action)
        return action

    # -- showing ---------------------------------------------------------------------------------

    def open_story(self, story_id: int) -> None:
        self.story = self.stories.load(story_id)
        self._refresh()

    def _reload(self) -> None:
        if self.story is not None:
            self.story = self.stories.load(self.story.id)
            self._refresh()

    def _refresh(self, live: dict[int, Sequence[StoryToken]] | None = None) -> None:
        story = self.story
        if story is None:
            return
        self._show_path(story, live or {})
        self._fill_tree(story)
        self._fill_children(story)
        self.story_changed.emit(story.id)

    def _show_path(self, story: Story, live: dict[int, Sequence[StoryToken]]) -> None:
        self._spans = []
        cursor_at = 0
        doc_text = ""
        formats: list[tuple[int, int, float | None]] = []
        for node in story.path(story.current.id):
            tokens = live.get(node.id, node.tokens)
            if node.parent_id is None:
                doc_text += node.text
                continue
            for index, token in enumerate(tokens):
                start = len(doc_text)
                doc_text += token.text
                self._spans.append((start, len(doc_text), node.id, index))
                formats.append((start, len(doc_text), token.logprob))
        self._shown_text = doc_text
        self.text.blockSignals(True)
        self.text.setPlainText(doc_text)
        cursor = QTextCursor(self.text.document())
        for start, end, logprob in formats:
            if logprob is None or end <= start:
                continue
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            fmt = QTextCharFormat()
            fmt.setBackground(shade(math.exp(logprob)))
            fmt.setForeground(Qt.GlobalColor.black)
            cursor.mergeCharFormat(fmt)
        cursor_at = len(doc_text)
        end_cursor = self.text.textCursor()
        end_cursor.setPosition(cursor_at)
        self.text.setTextCursor(end_cursor)
        self.text.blockSignals(False)

    def _fill_tree(self, story: Story) -> None:
        self.tree.clear()
        items: dict[int, QTreeWidgetItem] = {}
        for _depth, node in story.walk():
            mean = f"{node.mean_logprob:.2f}" if node.mean_logprob is not None else "—"
            marks = ("★" if node.bookmark else "") + ("⊘" if node.hidden else "")
            if node.status not in ("finished", "running"):
                marks += f" [{node.status}]"
            item = QTreeWidgetItem([node.opening(), mean, marks])
            item.setData(0, _ROLE_ID, node.id)
            parent = items.get(node.parent_id) if node.parent_id is not None else None
            if parent is None:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
            items[node.id] = item
        self.tree.expandAll()
        current = items.get(story.current.id)
        if current is not None:
            self.tree.setCurrentItem(current)

    def _fill_children(self, story: Story) -> None:
        self.children_list.clear()
        for child in story.children(story.current.id):
            item = QListWidgetItem(child.text.strip() or "∅")
            item.setData(_ROLE_ID, child.id)
            item.setSizeHint(item.sizeHint().expandedTo(self.children_list.sizeHint() / 4))
            self.children_list.addItem(item)
        # Siblings of the current node, when it has no children yet: the N continuations just made.
        if not story.children(story.current.id) and story.current.parent_id is not None:
            for sibling in story.siblings(story.current.id):
                item = QListWidgetItem(sibling.text.strip() or "∅")
                item.setData(_ROLE_ID, sibling.id)
                self.children_list.addItem(item)
                if sibling.id == story.current.id:
                    item.setSelected(True)

    def token_at(self, position: int) -> tuple[int, int] | None:
        """(node id, token index) of the generated token at a character position of the text."""
        for start, end, node_id, index in self._spans:
            if start <= position < end:
                return node_id, index
        return None

    def show_alternatives(self, node_id: int, index: int) -> None:
        """List the alternatives of a token; choosing one makes a branch."""
        assert self.story is not None
        token = self.story.nodes[node_id].tokens[index]
        self.alternatives.clear()
        self.alternatives_title.setText(self.tr("Alternatives for “{piece}”").format(piece=visible(token.text)))
        for alt in token.alternatives:
            item = QListWidgetItem(f"{visible(alt.text)}   {percent(math.exp(alt.logprob))}")
            item.setData(_ROLE_ID, (node_id, index, alt.id))
            item.setBackground(shade(math.exp(alt.logprob)))
            item.setForeground(Qt.GlobalColor.black)
            self.alternatives.addItem(item)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.text.viewport() or self.story is None:
            return super().eventFilter(watched, event)
        if isinstance(event, QHelpEvent) and event.type() == QEvent.Type.ToolTip:
            found = self.token_at(self.text.cursorForPosition(event.pos()).position())
            if found is not None:
                self.show_alternatives(*found)
                token = self.story.nodes[found[0]].tokens[found[1]]
                lines = [f"{visible(a.text)}  {percent(math.exp(a.logprob))}" for a in token.alternatives]
                QToolTip.showText(event.globalPos(), "\n".join(lines), self.text)
                return True
        elif isinstance(event, QMouseEvent) and event.type() == QEvent.Type.MouseButtonRelease:
            found = self.token_at(self.text.cursorForPosition(event.position().toPoint()).position())
            if found is not None:
                self.show_alternatives(*found)
        return super().eventFilter(watched, event)

    # -- moving ----------------------------------------------------------------------------------

    def go_to(self, node_id: int) -> None:
        if self.story is None or self.busy:
            return
        self.stories.set_current(self.story.id, node_id)
        self._reload()

    def move_sibling(self, step: int) -> None:
        if self.story is None:
            return
        siblings = self.story.siblings(self.story.current.id)
        at = [n.id for n in siblings].index(self.story.current.id)
        self.go_to(siblings[(at + step) % len(siblings)].id)

    def move_parent(self) -> None:
        if self.story is not None and self.story.current.parent_id is not None:
            self.go_to(self.story.current.parent_id)

    def move_child(self) -> None:
        if self.story is not None:
            children = self.story.children(self.story.current.id)
            if children:
                self.go_to(children[0].id)

    def toggle_bookmark(self) -> None:
        if self.story is not None:
            node = self.story.current
            self.stories.set_marks(node.id, bookmark=not node.bookmark)
            self._reload()

    def _on_tree_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.go_to(int(item.data(0, _ROLE_ID)))

    def _on_child_clicked(self, item: QListWidgetItem) -> None:
        self.go_to(int(item.data(_ROLE_ID)))

    # -- operations ------------------------------------------------------------------------------

    def grow(self, n: int) -> None:
        """Ctrl+Enter: grow the current node by `n` children in one batch (an edited text first branches)."""
        if self.story is None:
            return
        if self.text.toPlainText() != self._shown_text:
            self.apply_edit()
        story_id, node_id = self.story.id, self.story.current.id
        self._start(
            lambda engine, cancel: grow(
                self.stories, engine, story_id, node_id, n=n, cancel=cancel, on_tokens=self._emit
            )
        )

    def branch_from(self, node_id: int, index: int, token_id: int) -> None:
        """A new branch that takes another token at `index` of a node and continues from it."""
        if self.story is None:
            return
        story_id = self.story.id
        self._start(
            lambda engine, cancel: branch(
                self.stories, engine, story_id, node_id, index, token_id, cancel=cancel, on_tokens=self._emit
            )
        )

    def apply_edit(self) -> None:
        """The edited text becomes a new branch from the first changed character; the original stays."""
        if self.story is None:
            return
        edited, shown = self.text.toPlainText(), self._shown_text
        if edited == shown:
            return
        at = next(
            (i for i, (a, b) in enumerate(zip(edited, shown, strict=False)) if a != b), min(len(edited), len(shown))
        )
        start = 0
        for node in self.story.path(self.story.current.id):
            end = start + len(node.text)
            # An edit right after the prompt belongs to the node that follows it: the prompt stays.
            inside = at < end if node.parent_id is None else at <= end
            if inside or node.id == self.story.current.id:
                try:
                    edit(self.stories, self.story.id, node.id, at - start, edited[at:])
                except GptDeskError as exc:
                    self._show_path(self.story, {})  # the original text comes back
                    self.failed.emit(exc.text.get())
                    return
                break
            start = end
        self._reload()

    def stop(self) -> None:
        self.cancel.set()

    def _emit(self, node_id: int, tokens: Sequence[StoryToken]) -> None:
        self._bridge.tokens_changed.emit(node_id, list(tokens))

    def _start(self, operation: Callable[[Engine, threading.Event], Grown]) -> None:
        engine = self.engine()
        if self.busy or engine is None:
            if engine is None:
                self.failed.emit(self.tr("Load a model first."))
            return
        self.busy = True
        self.cancel = threading.Event()
        cancel = self.cancel
        self.status.setText(self.tr("Generating… (Esc stops)"))
        worker = CallWorker(lambda _progress: operation(engine, cancel))
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self.threads.start("story", worker)

    def _on_tokens_changed(self, node_id: int, tokens: Sequence[StoryToken]) -> None:
        # A growing node is shown as it comes: reload once when a new node appears, then patch its tokens.
        if self.story is None:
            return
        if node_id not in self.story.nodes:
            self.story = self.stories.load(self.story.id)
        node = self.story.nodes.get(node_id)
        if node is None or node.sequence != 0:
            return  # of N continuations the first is shown as it grows; all of them side by side at the end
        self.story.current_node = node_id
        self._show_path(self.story, {node_id: tokens})

    def _on_finished(self, grown: Grown) -> None:
        self.busy = False
        self.status.setText(
            self.tr("Stopped.") if grown.cancelled else self.tr("Made {n} node(s).").format(n=len(grown.node_ids))
        )
        self._reload()

    def _on_failed(self, exc: BaseException) -> None:
        self.busy = False
        message = exc.text.get() if isinstance(exc, GptDeskError) else f"{type(exc).__name__}: {exc}"
        self.status.setText(message)
        self.failed.emit(message)
        self._reload()

    def _on_alternative_chosen(self, item: QListWidgetItem) -> None:
        node_id, index, token_id = item.data(_ROLE_ID)
        self.branch_from(int(node_id), int(index), int(token_id))

    # -- export and import ----------------------------------------------------------------------

    def export_to(self, path: Path, fmt: str) -> None:
        if self.story is not None:
            path.write_text(export(self.story, fmt), encoding="utf-8")

    def import_from(self, path: Path) -> int:
        story_id = import_story(self.stories, path.read_text(encoding="utf-8"))
        self.open_story(story_id)
        return story_id

    def _export_dialog(self, fmt: str) -> None:
        name, _ = QFileDialog.getSaveFileName(self, self.tr("Export the story"), f"story.{fmt}")
        if name:
            self.export_to(Path(name), fmt)

    def _import_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, self.tr("Import a story"), "", "JSON (*.json)")
        if name:
            try:
                self.import_from(Path(name))
            except GptDeskError as exc:
                self.failed.emit(exc.text.get())

    # -- language --------------------------------------------------------------------------------

    def retranslate(self) -> None:
        self.menu.setTitle(self.tr("&Story"))
        self.act_grow.setText(self.tr("&Grow the current node"))
        self.act_grow_n.setText(self.tr("Generate &N continuations"))
        self.act_stop.setText(self.tr("&Stop"))
        self.act_prev.setText(self.tr("&Previous sibling"))
        self.act_next.setText(self.tr("Ne&xt sibling"))
        self.act_parent.setText(self.tr("&Parent"))
        self.act_child.setText(self.tr("&Child"))
        self.act_edit.setText(self.tr("Make the &edit a branch"))
        self.act_bookmark.setText(self.tr("&Bookmark the node"))
        self.act_export_txt.setText(self.tr("Export the path as &text…"))
        self.act_export_md.setText(self.tr("Export the path as &Markdown…"))
        self.act_export_json.setText(self.tr("Export the tree as &JSON…"))
        self.act_import.setText(self.tr("&Import a story…"))
        self.grow_button.setText(self.tr("Generate N continuations"))
        self.tree.setHeaderLabels([self.tr("Opening"), self.tr("Mean log-prob"), self.tr("Marks")])
        if not self.alternatives.count():
            self.alternatives_title.setText(self.tr("Alternatives (hover or click a generated token)"))
        self.text.setAccessibleName(self.tr("Story text"))
        self.text.setAccessibleDescription(
            self.tr("The current path; generated tokens are shaded by probability; edit to branch")
        )
        self.alternatives.setAccessibleName(self.tr("Alternatives of a token; choose one to branch"))
        self.children_list.setAccessibleName(self.tr("Continuations side by side"))
        self.tree.setAccessibleName(self.tr("Story tree"))
        self.count.setAccessibleName(self.tr("Number of continuations"))
        self.grow_button.setAccessibleName(self.tr("Generate N continuations"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
