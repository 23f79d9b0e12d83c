"""Run the window on a real X server and drive it with real key events (xdotool): a child of test_real_x.py.

Usage: python x11_driver.py RESULT.json SCREENSHOT.png  (DISPLAY and QT_QPA_PLATFORM=xcb set by the test).
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


def main(result_path: Path, screenshot: Path) -> int:
    # A Russian user's keyboard: Cyrillic letters on their own keys. (Without the layout, xdotool rebinds
    # a spare keycode for every letter, and letters typed faster than the rebinding are lost.)
    setxkbmap = shutil.which("setxkbmap")
    assert setxkbmap is not None, "setxkbmap is missing (Debian: x11-xkb-utils)"
    subprocess.run([setxkbmap, "-layout", "ru"], check=True, timeout=30)
    from gptdesk.ui.desktop.qt_platform import ensure_platform_loadable

    chosen = ensure_platform_loadable()  # what `gptdesk` does before Qt

    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication

    from gptdesk.ui.app import app_icon, create_window

    app = QApplication(["gptdesk"])
    app.setWindowIcon(app_icon())
    result: dict[str, Any] = {"platform": app.platformName(), "checked_platform": chosen}
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
        # Real input: xdotool sends key and mouse events through the X server (XTEST), as a keyboard does.
        proc = subprocess.Popen([xdotool, *args])
        wait_until(lambda: proc.poll() is not None, 60, f"xdotool {' '.join(args)}")
        assert proc.returncode == 0, f"xdotool {args} failed with {proc.returncode}"

    window = create_window(app, lang="ru")
    window.show()
    loaded: list[object] = []
    window.model_loaded.connect(loaded.append)
    window.start(None)
    wait_until(lambda: bool(loaded) or window.engine is not None, 300, "the embedded model to load")
    assert window.engine is not None
    result["engine"] = window.engine.info.engine

    wait_until(window.isVisible, 10, "the window to be mapped")
    # No window manager on Xvfb: give the window the X input focus, then click into the prompt.
    xdo("windowfocus", "--sync", str(int(window.winId())))
    centre = window.prompt_edit.mapToGlobal(QPoint(window.prompt_edit.width() // 2, 20))
    xdo("mousemove", "--sync", str(centre.x()), str(centre.y()))
    xdo("click", "1")
    wait_until(window.prompt_edit.hasFocus, 10, "the prompt to take the focus")
    xdo("type", "--delay", "40", PROMPT)
    try:
        wait_until(lambda: window.prompt_edit.toPlainText() == PROMPT, 30, "the typed prompt")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: got {window.prompt_edit.toPlainText()!r}") from None
    result["typed"] = window.prompt_edit.toPlainText()

    # Enough tokens that Stop lands mid-generation on the fast engine too.
    window.params.set_values({"do_sample": True, "seed": 7, "max_new_tokens": 400, "min_new_tokens": 400})
    tokens: list[object] = []
    finished: list[Any] = []
    window.token_received.connect(tokens.append)
    window.generation_finished.connect(finished.append)
    xdo("key", "--clearmodifiers", "ctrl+Return")
    wait_until(lambda: len(tokens) >= 10, 120, "tokens after Ctrl+Enter")
    xdo("key", "Escape")
    wait_until(lambda: bool(finished), 60, "the generation to stop")
    done = finished[0]
    result.update(
        finish_reason=done.finish_reason,
        generated_tokens=done.generated_tokens[0],
        finished_text=done.text,
        shown_text=window.output.text(0),
        status_speed=window.status_labels["speed"].text(),
        title=window.windowTitle(),
        icon_sizes=sorted({(s.width(), s.height()) for s in app.windowIcon().availableSizes()}),
    )
    app.processEvents()
    time.sleep(0.3)
    app.processEvents()
    # The X server's own pixels: what a person would see on this screen.
    screen = window.screen()
    grabbed = screen.grabWindow(0)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    result["screenshot_saved"] = grabbed.save(str(screenshot))
    result["screenshot_size"] = [grabbed.width(), grabbed.height()]
    window.close()
    app.processEvents()
    result_path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
