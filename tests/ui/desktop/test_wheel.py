"""The built wheel in a fresh virtual environment without llama-cpp-python: the window, the CLI and the server work.

This is what a user without a C++ compiler gets from `pip install gptdesk-*.whl`. The install takes a few
minutes the first time (torch, PySide6); pip's cache makes it quicker afterwards.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ui.desktop.conftest import REPO, XServer, need_tool


@dataclass(frozen=True)
class FreshInstall:
    root: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(self, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "gptdesk"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No PYTHONPATH (the checkout must not leak in), data and caches in tmp, offline."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        GPTDESK_DATA_DIR=str(tmp / "data"),
        GPTDESK_CACHE_DIR=str(tmp / "cache"),
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
        GPTDESK_LANG="en",
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshInstall]:
    base = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools writes build/ and *.egg-info into the source tree.
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    # No PYTHONPATH: a checkout on it (with an egg-info) would make pip think gptdesk is already installed.
    env = _clean_env(base)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(base / "dist"), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = list((base / "dist").glob("gptdesk-*.whl"))
    assert len(wheels) == 1, wheels
    root = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    installed = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheels[0])],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]
    yield FreshInstall(root, wheels[0])
    shutil.rmtree(root, ignore_errors=True)  # 1.5 GB: not left in /tmp


def test_the_wheel_carries_the_app_data(fresh_install: FreshInstall) -> None:
    import zipfile

    names = set(zipfile.ZipFile(fresh_install.wheel).namelist())
    for needed in (
        "gptdesk/models/embedded/model.safetensors",
        "gptdesk/ui/locale/gptdesk_ru.qm",
        "gptdesk/ui/desktop/data/org.gptdesk.GptDesk.desktop",
        "gptdesk/ui/desktop/data/org.gptdesk.GptDesk.metainfo.xml",
        "gptdesk/ui/desktop/data/icons/org.gptdesk.GptDesk.svg",
        "gptdesk/ui/desktop/data/icons/org.gptdesk.GptDesk-256.png",
    ):
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)


def test_no_compiler_needed_and_no_llama_cpp(fresh_install: FreshInstall, tmp_path: Path) -> None:
    python = str(fresh_install.bin / "python")
    env = _clean_env(tmp_path)
    check = subprocess.run(
        [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('llama_cpp') is not None)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, "llama-cpp-python was installed without the fast extra"
    where = subprocess.run(
        [python, "-c", "import gptdesk; print(gptdesk.__file__)"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert str(fresh_install.root) in where  # the installed package, not the checkout


def test_cli_generates_on_transformers_and_says_so_once(fresh_install: FreshInstall, tmp_path: Path) -> None:
    proc = fresh_install.run("generate", "Жили-были", "--max-new-tokens", "8", "--seed", "1", env=_clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Жили-были") and len(proc.stdout.strip()) > len("Жили-были")
    assert proc.stderr.count("The fast CPU engine (llama.cpp) is not installed") == 1
    assert "5.4× faster" in proc.stderr and "pip install llama-cpp-python==0.3.36" in proc.stderr
    assert "embedded on transformers cpu" in proc.stderr.splitlines()[-1]
    # In Russian too.
    ru = fresh_install.run(
        "--lang", "ru", "generate", "Жили", "--max-new-tokens", "2", "--seed", "1", env=_clean_env(tmp_path)
    )
    assert ru.returncode == 0 and "Быстрый движок для процессора (llama.cpp) не установлен" in ru.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_server_answers_completions(fresh_install: FreshInstall, tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(fresh_install.bin / "gptdesk"), "serve", "--port", str(port)],
        env=_clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/completions",
            json={"prompt": "Жили-были", "max_tokens": 5, "temperature": 0, "model": "embedded"},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["choices"][0]["text"] and body["usage"]["completion_tokens"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


_WINDOW_SCRIPT = """
import json, sys, time
from PySide6.QtWidgets import QApplication
from gptdesk.ui.app import announce_fast_engine, create_window
app = QApplication([])
window = create_window(app, lang="en")
window.show()
window.start(None)
said = announce_fast_engine(window)
message = window.statusBar().currentMessage()
deadline = time.monotonic() + 240
while window.engine is None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
engine = window.engine.info.engine if window.engine is not None else None
window.close()
print(json.dumps({"said": said, "message": message, "engine": engine}))
"""


def test_window_runs_on_transformers_and_shows_the_notice(fresh_install: FreshInstall, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(fresh_install.bin / "python"), "-c", _WINDOW_SCRIPT],
        env=_clean_env(tmp_path, QT_QPA_PLATFORM="offscreen"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["said"] and result["engine"] == "transformers"
    assert "The fast engine (llama.cpp) is not installed" in result["message"]


def test_gptdesk_window_opens_on_x_from_the_wheel(
    fresh_install: FreshInstall, tmp_path: Path, xserver: XServer
) -> None:
    """The installed `gptdesk` command (what the menu entry runs) opens its window on a real X server."""
    xdotool = need_tool("xdotool")
    env = _clean_env(tmp_path, DISPLAY=xserver.display, QT_QPA_PLATFORM="xcb")
    proc = subprocess.Popen(
        [str(fresh_install.bin / "gptdesk")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        found = subprocess.run(
            [xdotool, "search", "--sync", "--onlyvisible", "--name", "^GPT Desk$"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert found.returncode == 0 and found.stdout.split(), proc.poll()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            # A window closed while its first model load runs waits for the load's worker; in a fresh
            # venv that load first compiles torch's and transformers' bytecode (a minute or more on 2 cores).
            _out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()  # closes the pipes, so no unclosed file outlives this test
            pytest.fail(f"the window did not close within 300 s of SIGTERM: {err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]

    entry = fresh_install.run("desktop-entry", "install", "--data-dir", str(tmp_path / "share"), env=env)
    assert entry.returncode == 0, entry.stderr
    desktop = tmp_path / "share" / "applications" / "org.gptdesk.GptDesk.desktop"
    assert f"Exec={fresh_install.bin / 'gptdesk'} gui" in desktop.read_text(encoding="utf-8")
    validated = subprocess.run([need_tool("desktop-file-validate"), str(desktop)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout
