"""`gptdesk` and `gptdesk gui`: the window opens from the command line; the CLI imports no Qt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gptdesk.cli.main import main


def test_importing_the_cli_and_building_its_parser_imports_no_qt() -> None:
    code = (
        "import sys, gptdesk.cli.main as cli; cli.build_parser(); import gptdesk.ui.command; "
        "print('PySide6' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_gui_help(capsys: object) -> None:
    import pytest

    with pytest.raises(SystemExit) as exited:
        main(["gui", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "--model" in out and "--lang {ru,en}" in out


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(GPTDESK_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.update(extra)
    return env


def test_without_a_display_the_window_explains_instead_of_crashing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gptdesk", "--lang", "en"], capture_output=True, text=True, env=_env(tmp_path)
    )
    assert result.returncode == 6
    assert "No graphical display was found" in result.stderr
    assert "QT_QPA_PLATFORM=offscreen" in result.stderr


def test_bare_gptdesk_opens_the_window_and_ctrl_c_closes_it_cleanly(tmp_path: Path) -> None:
    env = _env(tmp_path, QT_QPA_PLATFORM="offscreen")
    app = subprocess.Popen(
        [sys.executable, "-m", "gptdesk", "gui", "--lang", "ru"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = tmp_path / "data" / "history.sqlite3"
    try:
        deadline = time.monotonic() + 120
        while not history.exists() and app.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert history.exists(), "the window did not open its history"
        time.sleep(1.0)  # the embedded model is loading in its worker meanwhile
        app.send_signal(signal.SIGINT)
        _out, err = app.communicate(timeout=120)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, err
    assert "Traceback" not in err
    assert "language=ru" in (tmp_path / "data" / "gui.ini").read_text()
