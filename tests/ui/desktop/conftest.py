"""Desktop tests: a real X server (Xvfb) for the window, the system's validators, fresh installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "test-output"


def need_tool(name: str) -> str:
    """A system tool the set-up installs (tools/apt-packages.txt); its absence fails the test, never skips it."""
    path = shutil.which(name)
    assert path is not None, f"{name} is missing: run tools/setup.sh as root (it installs tools/apt-packages.txt)"
    return path


@dataclass(frozen=True)
class XServer:
    display: str

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child process on this X server, on Qt's xcb platform (not the suite's offscreen)."""
        env = dict(os.environ)
        for name in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM_PLUGIN_PATH"):
            env.pop(name, None)
        env.update(DISPLAY=self.display, QT_QPA_PLATFORM="xcb", XDG_SESSION_TYPE="x11", **extra)
        return env


@pytest.fixture(scope="session")
def xserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    """An Xvfb server on a free display number (Xvfb picks it and writes it to a pipe)."""
    xvfb = need_tool("Xvfb")
    log = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    read_fd, write_fd = os.pipe()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1400x900x24", "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 30
    with os.fdopen(read_fd, "rb") as pipe:
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            chunk = pipe.read(1)
            if not chunk:
                break
            number += chunk
    if not number.strip():
        proc.kill()
        proc.wait()
        raise AssertionError(f"Xvfb did not start: {log.read_text(errors='replace')}")
    try:
        yield XServer(f":{number.decode().strip()}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python_env(**extra: str) -> dict[str, str]:
    """The environment for `python -m gptdesk` from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PYTHON = sys.executable
