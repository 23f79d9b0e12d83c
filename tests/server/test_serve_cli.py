"""`gptdesk serve` as a user runs it: a real process, a real port, Ctrl+C to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from gptdesk.models.gguf.library import is_available as llamacpp_available
from gptdesk.server.runner import bind_socket
from tests.server.conftest import listening_url


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gptdesk", "--lang", "en", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GPTDESK_API_KEY": ""},
    )


def test_serve_answers_requests_and_stops_on_ctrl_c(tiny_model_dir: Path) -> None:
    process = _serve("--model", str(tiny_model_dir), "--port", "0", "--api-key", "cli-key-1")
    try:
        assert process.stderr is not None
        url = listening_url(process)
        headers = {"Authorization": "Bearer cli-key-1"}
        models = httpx.get(url + "/v1/models", headers=headers, timeout=60).json()
        assert models["data"][0]["id"] == str(tiny_model_dir)
        # The same default engine as gptdesk generate and the window: llama.cpp where it is installed.
        assert models["data"][0]["gptdesk"]["engine"] == ("llamacpp" if llamacpp_available() else "transformers")
        result = httpx.post(
            url + "/v1/completions",
            json={"prompt": "Москва", "max_tokens": 5, "temperature": 0},
            headers=headers,
            timeout=60,
        ).json()
        assert result["choices"][0]["finish_reason"] in ("stop", "length")
        assert httpx.get(url + "/v1/models", timeout=60).status_code == 401
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, rest
    assert "Server stopped." in rest


def test_serve_refuses_to_listen_on_the_network_without_a_key() -> None:
    process = _serve("--host", "0.0.0.0", "--allow-remote")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "needs an API key" in err and "--api-key" in err
    assert "Loading the model" not in err  # refused before any model was loaded


def test_serve_reports_a_port_in_use() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        process = _serve("--port", str(port))
        _, err = process.communicate(timeout=120)
    finally:
        taken.close()
    assert process.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in err and "--port" in err


def test_server_and_remote_engine_keep_qt_out() -> None:
    modules = "gptdesk.server.app, gptdesk.server.runner, gptdesk.cli.serve, gptdesk.engine.remote.engine"
    code = f"import sys, {modules}; print('PySide6' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
