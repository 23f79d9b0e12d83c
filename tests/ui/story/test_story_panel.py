"""Story mode on real widgets: shaded text, alternatives that branch, N continuations, moving, editing, the tree."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from gptdesk.history.store import HistoryStore
from gptdesk.settings.generation import GenerationSettings
from gptdesk.story import StoryStore, new_story
from gptdesk.ui.inspector import shade
from gptdesk.ui.story import StoryPanel
from gptdesk.ui.workers import WorkerThreads

SETTINGS = GenerationSettings.build(do_sample=True, top_k=20, max_new_tokens=5, seed=3)


@pytest.fixture
def panel(qtbot: Any, tiny_engine: Any, tmp_path: Path) -> Iterator[StoryPanel]:
    history = HistoryStore(tmp_path / "history.sqlite3")
    stories = StoryStore(history)
    threads = WorkerThreads()
    made = new_story(stories, tiny_engine, "Однажды весной", SETTINGS)
    widget = StoryPanel(threads, stories, lambda: tiny_engine)
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow, timeout=5000)
    widget.open_story(made.story_id)
    yield widget
    threads.wait_all()
    history.close()


def _wait_done(qtbot: Any, panel: StoryPanel) -> None:
    qtbot.waitUntil(lambda: not panel.busy, timeout=60000)


def test_the_text_is_the_current_path_shaded_by_probability(panel: StoryPanel) -> None:
    story = panel.story
    assert story is not None
    assert panel.text.toPlainText() == story.text()
    node = story.current
    start = len(story.root.text) + len(node.tokens[0].text)
    cursor = QTextCursor(panel.text.document())
    cursor.setPosition(start + 1)  # inside token 1
    background = cursor.charFormat().background().color()
    assert background == shade(math.exp(node.tokens[1].logprob or 0.0))
    assert panel.token_at(start) == (node.id, 1)
    assert panel.token_at(0) is None  # the prompt has no alternatives


def test_clicking_a_token_then_an_alternative_makes_a_branch_that_continues(qtbot: Any, panel: StoryPanel) -> None:
    story = panel.story
    assert story is not None
    node = story.current
    start = len(story.root.text) + len(node.tokens[0].text)
    cursor = QTextCursor(panel.text.document())
    cursor.setPosition(start + 1)
    point = panel.text.cursorRect(cursor).center()
    qtbot.mouseClick(panel.text.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert panel.alternatives.count() == len(node.tokens[1].alternatives) > 1
    row = next(
        i for i, a in enumerate(node.tokens[1].alternatives) if a.id != node.tokens[1].id
    )  # another token than the one taken
    item = panel.alternatives.item(row)
    qtbot.mouseClick(
        panel.alternatives.viewport(), Qt.MouseButton.LeftButton, pos=panel.alternatives.visualItemRect(item).center()
    )
    _wait_done(qtbot, panel)
    story = panel.story
    assert story is not None
    new = story.current
    assert new.kind == "branch" and new.parent_id == node.parent_id and new.id != node.id
    assert new.tokens[1].id == node.tokens[1].alternatives[row].id
    assert len(new.tokens) > 2  # it went on from the taken token
    assert panel.text.toPlainText() == story.text()


def test_n_continuations_side_by_side_and_keyboard_moves(qtbot: Any, panel: StoryPanel) -> None:
    story = panel.story
    assert story is not None
    first = story.current.id
    panel.count.setValue(3)
    qtbot.mouseClick(panel.grow_button, Qt.MouseButton.LeftButton)
    _wait_done(qtbot, panel)
    story = panel.story
    assert story is not None
    children = story.children(first)
    assert len(children) == 3 and story.current.id == children[0].id
    assert panel.children_list.count() == 3  # the three shown side by side
    assert [panel.children_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(3)] == [c.id for c in children]

    panel.text.setFocus()
    qtbot.keyClick(panel.text, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert panel.story is not None and panel.story.current.id == children[1].id
    qtbot.keyClick(panel.text, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    qtbot.keyClick(panel.text, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    assert panel.story.current.id == children[2].id  # round the siblings
    qtbot.keyClick(panel.text, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert panel.story.current.id == first
    qtbot.keyClick(panel.text, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert panel.story.current.id == children[0].id

    qtbot.keyClick(panel.text, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Enter grows
    _wait_done(qtbot, panel)
    assert panel.story.current.parent_id == children[0].id


def test_the_tree_shows_openings_and_means_and_a_click_goes_there(qtbot: Any, panel: StoryPanel) -> None:
    story = panel.story
    assert story is not None
    root_item = panel.tree.topLevelItem(0)
    child_item = root_item.child(0)
    node = story.current
    assert root_item.text(0) == story.root.opening()
    assert child_item.text(0) == node.opening()
    assert child_item.text(1) == f"{node.mean_logprob:.2f}"
    panel.tree.setFocus()
    qtbot.mouseClick(
        panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=panel.tree.visualItemRect(root_item).center()
    )
    assert panel.story is not None and panel.story.current.id == story.root.id
    assert panel.text.toPlainText() == story.root.text
    panel.go_to(node.id)
    panel.toggle_bookmark()
    assert panel.tree.topLevelItem(0).child(0).text(2) == "★"


def test_editing_the_text_makes_a_branch_from_the_edit_point(qtbot: Any, panel: StoryPanel) -> None:
    story = panel.story
    assert story is not None
    original = story.current
    keep = len(story.root.text) + len(original.tokens[0].text)
    panel.text.setPlainText(story.root.text + original.tokens[0].text + " вдруг")
    panel.apply_edit()
    story = panel.story
    assert story is not None
    edited = story.current
    assert edited.kind == "edit" and edited.parent_id == original.parent_id
    assert story.text() == story.root.text + original.tokens[0].text + " вдруг"
    assert story.nodes[original.id].text == original.text  # the original stays
    assert len(story.text()) > keep


def test_export_and_import_from_the_panel(panel: StoryPanel, tmp_path: Path) -> None:
    story = panel.story
    assert story is not None
    panel.export_to(tmp_path / "s.txt", "txt")
    assert (tmp_path / "s.txt").read_text(encoding="utf-8") == story.text() + "\n"
    panel.export_to(tmp_path / "s.json", "json")
    copy = panel.import_from(tmp_path / "s.json")
    assert panel.story is not None and panel.story.id == copy != story.id
    assert panel.text.toPlainText() == story.text()


def test_every_action_is_in_the_menu_with_a_name(panel: StoryPanel) -> None:
    actions = panel.menu.actions()
    assert len(actions) == 13 and all(a.text() for a in actions)
    shortcuts = {a.shortcut().toString() for a in actions if not a.shortcut().isEmpty()}
    assert {"Ctrl+Return", "Esc", "Alt+Left", "Alt+Right", "Alt+Up", "Alt+Down"} <= shortcuts
    for widget in (panel.text, panel.alternatives, panel.children_list, panel.tree, panel.count, panel.grow_button):
        assert widget.accessibleName()


def test_rewriting_everything_after_the_prompt_branches_from_the_first_node(panel: StoryPanel) -> None:
    story = panel.story
    assert story is not None
    first = story.current
    panel.text.setPlainText(story.root.text + " и вдруг")
    panel.apply_edit()
    story = panel.story
    assert story is not None
    assert story.current.kind == "edit" and story.current.parent_id == story.root.id
    assert story.current.text == " и вдруг" and story.nodes[first.id].text == first.text
