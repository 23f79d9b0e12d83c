"""Story mode on a real X server: a real click on an alternative token makes a branch, seen in a screenshot."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.ui.desktop.conftest import PYTHON, REPO, SCREENSHOTS, XServer, need_tool, python_env


def test_clicking_an_alternative_token_on_x_makes_a_branch(xserver: XServer, tmp_path: Path) -> None:
    need_tool("xdotool")
    result_file = tmp_path / "result.json"
    screenshot = SCREENSHOTS / "x11_story_branch.png"
    screenshot.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            PYTHON,
            str(REPO / "tests" / "ui" / "desktop" / "x11_story_driver.py"),
            str(tmp_path / "history.sqlite3"),
            str(result_file),
            str(screenshot),
        ],
        env=xserver.env(**{k: v for k, v in python_env().items() if k == "PYTHONPATH"}),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["platform"] == "xcb"
    assert result["kind"] == "branch" and result["same_parent"] and result["new"] != result["original"]
    assert result["taken"] == result["offered"]  # the token clicked is the one the branch took
    assert result["kept"]  # the tokens before it are the original's
    assert result["new_tokens"] > result["at"] + 1  # and it went on from there
    assert result["shown_text"] == result["story_text"]
    assert result["screenshot_saved"] and result["panel_grab_saved"]
    from PySide6.QtGui import QImage

    image = QImage(str(screenshot))
    assert not image.isNull()
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20  # the panel's pixels (shaded tokens), not a blank screen
