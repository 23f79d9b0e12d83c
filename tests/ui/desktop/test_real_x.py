"""The window on a real X server (Xvfb, Qt's xcb platform): a missing system library fails here, not offscreen."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.ui.desktop.conftest import PYTHON, REPO, SCREENSHOTS, XServer, need_tool, python_env
from tests.ui.desktop.x11_driver import PROMPT


def _distinct_colours(png: Path) -> int:
    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert not image.isNull(), png
    step = 7
    return len({image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)})


def test_type_generate_stop_with_real_key_events(xserver: XServer, tmp_path: Path) -> None:
    """Cyrillic typed through the X server (xdotool), Ctrl+Enter, tokens stream, Esc stops; a screenshot."""
    need_tool("xdotool")
    result_file = tmp_path / "result.json"
    screenshot = SCREENSHOTS / "x11_window_stopped.png"
    screenshot.unlink(missing_ok=True)
    proc = subprocess.run(
        [PYTHON, str(REPO / "tests" / "ui" / "desktop" / "x11_driver.py"), str(result_file), str(screenshot)],
        env=xserver.env(**{k: v for k, v in python_env().items() if k == "PYTHONPATH"}),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["platform"] == "xcb" and result["checked_platform"] == "xcb"
    assert result["typed"] == PROMPT  # every Cyrillic letter arrived as a real key event
    assert result["finish_reason"] == "cancelled"  # Esc stopped it mid-way
    assert 10 <= result["generated_tokens"] < 400
    assert result["shown_text"] == result["finished_text"]
    assert len(result["shown_text"].strip()) > 5  # the continuation, streamed until Stop
    assert result["status_speed"].endswith("ток/с")
    assert result["title"] == "GPT Desk"
    assert [16, 16] in result["icon_sizes"] and [256, 256] in result["icon_sizes"]
    assert result["screenshot_saved"] and result["screenshot_size"] == [1400, 900]
    assert _distinct_colours(screenshot) > 20  # the window's pixels, not a blank screen


def test_gptdesk_command_opens_its_window_on_x(xserver: XServer, tmp_path: Path) -> None:
    """`gptdesk` as a user starts it: the window maps on the X server with its icon, and SIGTERM closes it cleanly."""
    xdotool = need_tool("xdotool")
    env = xserver.env(PYTHONPATH=python_env()["PYTHONPATH"])
    proc = subprocess.Popen(
        [PYTHON, "-m", "gptdesk", "--lang", "en"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        found = subprocess.run(
            [xdotool, "search", "--sync", "--onlyvisible", "--name", "^GPT Desk$"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,  # a loaded machine: the first start imports torch and Qt
            check=False,
        )
        assert found.returncode == 0 and found.stdout.split(), (found.stderr, proc.poll())
        window_id = found.stdout.split()[0]
        geometry = subprocess.run(
            [xdotool, "getwindowgeometry", window_id], env=env, capture_output=True, text=True, check=True
        ).stdout
        assert "Geometry:" in geometry
        time.sleep(1.0)
        shot = SCREENSHOTS / "x11_gptdesk_command.png"
        grab = subprocess.run(
            [
                PYTHON,
                "-c",
                "import sys; from PySide6.QtGui import QGuiApplication; app = QGuiApplication([]); "
                "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)",
                str(shot),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert grab.returncode == 0, grab.stderr
        assert _distinct_colours(shot) > 20
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "Could not load the Qt platform plugin" not in err


def _plugin_with_missing_library(tmp_path: Path) -> tuple[Path, str]:
    """A copy of PySide6's real libqxcb.so whose libxcb-cursor dependency names an ABI version this system lacks."""
    from gptdesk.ui.desktop.qt_platform import find_plugin

    real = find_plugin("xcb", {})
    assert real is not None
    qt = tmp_path / "qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    os.symlink(real.parents[2] / "lib", qt / "lib")  # the plugin finds Qt through $ORIGIN/../../lib
    data = real.read_bytes()
    assert data.count(b"libxcb-cursor.so.0\x00") == 1
    patched = qt / "plugins" / "platforms" / "libqxcb.so"
    patched.write_bytes(data.replace(b"libxcb-cursor.so.0\x00", b"libxcb-cursor.so.7\x00"))
    return patched.parent, "libxcb-cursor.so.7"


def test_missing_xcb_library_is_named_with_the_install_command(xserver: XServer, tmp_path: Path) -> None:
    """Instead of Qt's abort, the app names the missing library and the apt-get command, in Russian."""
    plugins, missing = _plugin_with_missing_library(tmp_path)
    env = xserver.env(PYTHONPATH=python_env()["PYTHONPATH"], QT_QPA_PLATFORM_PLUGIN_PATH=str(plugins))
    proc = subprocess.run(
        [PYTHON, "-m", "gptdesk", "--lang", "ru"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 6, proc.stderr
    assert "Окно не может открыться" in proc.stderr
    assert missing in proc.stderr
    assert "sudo apt-get install libxcb-cursor7" in proc.stderr
    assert "Could not load the Qt platform plugin" not in proc.stderr  # Qt never got as far as aborting

    # The same plugin really is unloadable: Qt itself fails on it (and says nothing about which library).
    if shutil.which("ldd"):
        ldd = subprocess.run(["ldd", str(plugins / "libqxcb.so")], capture_output=True, text=True, check=False)
        assert f"{missing} => not found" in ldd.stdout
