"""The main window's Story menu: a new story from the prompt opens story mode and grows its first node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.engine.hf import TransformersEngine
from gptdesk.history.store import HistoryStore
from gptdesk.story import StoryStore


def test_a_new_story_from_the_prompt_opens_story_mode(qtbot: Any, make_window: Any, tiny_model_dir: Path) -> None:
    # The window closes its engine when it closes: this test loads its own.
    engine = TransformersEngine.load(tiny_model_dir, device="cpu", dtype="float32")
    window = make_window(engine)
    window.params.set_settings(window.params.current.updated(max_new_tokens=4, do_sample=False))
    window.prompt_edit.setPlainText("Однажды весной")
    assert window.stories.menu in [a.menu() for a in window.menuBar().actions()]
    window.stories.act_new.trigger()
    story_window = window.stories.story_window
    assert story_window is not None and story_window.isVisible()
    panel = story_window.panel
    qtbot.waitUntil(lambda: not panel.busy, timeout=60000)
    assert panel.story is not None
    story = panel.story
    assert story.root.text == "Однажды весной" and story.current.parent_id == story.root.id
    assert len(story.current.tokens) == 4
    assert panel.text.toPlainText() == story.text()
    assert story_window.picker.count() == 1 and story_window.picker.currentData() == story.id
    with HistoryStore() as history:
        assert StoryStore(history).list()[0][0] == story.id
