"""Story mode on a real X server: xdotool clicks a generated token, then one of its alternatives (a child of
test_real_x_story.py).

Usage: python x11_story_driver.py HISTORY.sqlite3 RESULT.json SCREENSHOT.png (DISPLAY and QT_QPA_PLATFORM=xcb set).
Writes what it saw as JSON; the test asserts on it. Every wait has a deadline, so a hang fails, never blocks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROMPT = "Жили-были старик со старухой"


def main(history_path: Path, result_path: Path, screenshot: Path) -> int:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    from gptdesk.engine.hf import TransformersEngine
    from gptdesk.history.store import HistoryStore
    from gptdesk.settings.generation import GenerationSettings
    from gptdesk.story import StoryStore, new_story
    from gptdesk.ui.story import StoryPanel
    from gptdesk.ui.workers import WorkerThreads

    app = QApplication(["gptdesk"])
    xdotool = shutil.which("xdotool")
    assert xdotool is not None

    def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
            app.processEvents()
            time.sleep(0.01)

    def xdo(*args: str) -> None:
        proc = subprocess.Popen([xdotool, *args])
        wait_until(lambda: proc.poll() is not None, 60, f"xdotool {' '.join(args)}")
        assert proc.returncode == 0, f"xdotool {args} failed with {proc.returncode}"

    engine = TransformersEngine.load(None, device="cpu", dtype="float32")  # the embedded model
    history = HistoryStore(history_path)
    stories = StoryStore(history)
    made = new_story(stories, engine, PROMPT, GenerationSettings.build(do_sample=True, seed=7, max_new_tokens=16))
    threads = WorkerThreads()
    panel = StoryPanel(threads, stories, lambda: engine)
    panel.resize(1200, 800)
    panel.show()
    panel.open_story(made.story_id)
    wait_until(panel.isVisible, 10, "the panel to be mapped")
    xdo("windowfocus", "--sync", str(int(panel.winId())))
    app.processEvents()

    story = panel.story
    assert story is not None
    node = story.current
    # The middle of a generated word of a few letters, as a person would point at it (the caret's rectangle
    # at a character is its left edge: the middle of the word is well inside the token).
    at = next(i for i, t in enumerate(node.tokens) if i >= 1 and len(t.text.strip()) >= 3)  # seed 7 gives such words
    start = len(story.root.text) + sum(len(t.text) for t in node.tokens[:at])
    cursor = QTextCursor(panel.text.document())
    cursor.setPosition(start + len(node.tokens[at].text) // 2 + 1)
    spot = panel.text.viewport().mapToGlobal(panel.text.cursorRect(cursor).center())
    xdo("mousemove", "--sync", str(spot.x()), str(spot.y()))
    xdo("click", "1")
    wait_until(lambda: panel.alternatives.count() > 1, 10, "the token's alternatives")
    row = next(i for i, a in enumerate(node.tokens[at].alternatives) if a.id != node.tokens[at].id)
    rect = panel.alternatives.visualItemRect(panel.alternatives.item(row))
    target = panel.alternatives.viewport().mapToGlobal(QPoint(rect.center().x(), rect.center().y()))
    xdo("mousemove", "--sync", str(target.x()), str(target.y()))
    xdo("click", "1")
    wait_until(lambda: panel.busy, 10, "the branch to start")
    wait_until(lambda: not panel.busy, 120, "the branch to finish")
    story = panel.story
    assert story is not None
    new = story.current
    result: dict[str, Any] = {
        "platform": app.platformName(),
        "original": node.id,
        "new": new.id,
        "kind": new.kind,
        "same_parent": new.parent_id == node.parent_id,
        "taken": new.tokens[at].id,
        "kept": [t.id for t in new.tokens[:at]] == [t.id for t in node.tokens[:at]],
        "offered": node.tokens[at].alternatives[row].id,
        "new_tokens": len(new.tokens),
        "at": at,
        "shown_text": panel.text.toPlainText(),
        "story_text": story.text(),
        "tree_nodes": panel.tree.topLevelItem(0).child(0).childCount() + 1 if panel.tree.topLevelItem(0) else 0,
    }
    app.processEvents()
    time.sleep(0.3)
    app.processEvents()
    grabbed = panel.screen().grabWindow(0)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    result["screenshot_saved"] = grabbed.save(str(screenshot))
    # The new branch's text on the X server's pixels: the panel's own grab equals the screen there.
    shown = panel.grab()
    result["panel_grab_saved"] = shown.save(str(screenshot.with_name(screenshot.stem + "_panel.png")))
    panel.close()
    threads.wait_all()
    history.close()
    engine.close()
    app.processEvents()
    result_path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
