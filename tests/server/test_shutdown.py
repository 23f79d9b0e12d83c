"""Stopping the server with streams open: every open request is told, generation stops, the log stays clean."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gptdesk.server.app import create_app
from gptdesk.server.config import ServerConfig
from gptdesk.server.runner import BackgroundServer
from tests.server.conftest import ScriptedEngine, listening_url, queue_of, wait_for


def _read_stream(url: str, body: dict[str, Any], lines: list[str], first: threading.Event) -> None:
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                lines.append(line)
            if line.startswith("data: {"):
                first.set()


def _last_error(lines: list[str]) -> dict[str, Any]:
    """The error event a stream ended with (before its [DONE])."""
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert events and "error" in events[-1], lines[-3:]
    return dict(events[-1]["error"])


def test_stopping_fails_open_streams_and_cancels_the_generation(caplog: pytest.LogCaptureFixture) -> None:
    engine = ScriptedEngine(gated=True)  # its generation waits for a release that never comes
    config = ServerConfig(port=0)
    server = BackgroundServer(create_app(engine, config), config).start()
    queue = queue_of(server)
    running: list[str] = []
    queued: list[str] = []
    started = threading.Event()
    threads = [
        threading.Thread(target=_read_stream, args=(server.url, {"prompt": "one", "stream": True}, running, started)),
        threading.Thread(
            target=_read_stream, args=(server.url, {"prompt": "two", "stream": True}, queued, threading.Event())
        ),
    ]
    threads[0].start()
    wait_for(lambda: engine.started == ["one"])
    threads[1].start()
    wait_for(lambda: queue.stats()["waiting"] == 1)
    collected: list[httpx.Response] = []
    whole = threading.Thread(
        target=lambda: collected.append(httpx.post(server.url + "/v1/completions", json={"prompt": "x"}, timeout=60))
    )
    whole.start()
    wait_for(lambda: queue.stats()["waiting"] == 2)
    with caplog.at_level(logging.INFO):
        server.stop()
    for thread in [*threads, whole]:
        thread.join(30)
        assert not thread.is_alive()
    for lines in (running, queued):
        error = _last_error(lines)
        assert error["code"] == "shutting_down" and error["type"] == "server_error"
        assert lines[-1] == "data: [DONE]"
    assert collected[0].status_code == 503 and collected[0].json()["error"]["code"] == "shutting_down"
    assert engine.cancelled == ["one"] and engine.started == ["one"]  # stopped, and the queued ones never ran
    assert engine.active == 0
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "timeout graceful shutdown exceeded" not in logged and "CancelledError" not in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


# Requests long enough for the signal to find them running: 16 variants of 1000 tokens on the default engine (about
# the most a request may ask for), one text of 1000 tokens with alternatives on the reference engine (which sends a
# multi-sequence result only at its end).
LONG_REQUESTS = {
    "auto": {"prompt": "Жили-были", "n": 16, "max_tokens": 1000, "seed": 1, "stream": True},
    "transformers": {"prompt": "Жили-были", "max_tokens": 1000, "stream": True, "logprobs": 5},
}


@pytest.mark.parametrize("engine", list(LONG_REQUESTS))
def test_sigterm_with_open_streams_in_a_real_process(long_model_dir: Path, engine: str) -> None:
    command = [sys.executable, "-m", "gptdesk", "--lang", "en", "serve", "--model", str(long_model_dir), "--port", "0"]
    command += ["--engine", engine]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "GPTDESK_API_KEY": ""})
    try:
        assert process.stderr is not None
        url = listening_url(process)
        running: list[str] = []
        queued: list[str] = []
        first = threading.Event()
        body = LONG_REQUESTS[engine]
        threads = [
            threading.Thread(target=_read_stream, args=(url, body, running, first)),
            threading.Thread(
                target=_read_stream, args=(url, {**body, "n": 1, "max_tokens": 10}, queued, threading.Event())
            ),
        ]
        threads[0].start()
        assert first.wait(60)
        threads[1].start()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/health", timeout=30).json()["queue"]["waiting"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        assert process.stderr is not None
        process.stderr.close()
    for thread in threads:
        thread.join(30)
    print(f"\n[sigterm, {engine}] the process exited {took:.2f} s after SIGTERM (noisy: shared CPUs)")
    assert process.returncode == 0, log
    for lines in (running, queued):
        assert _last_error(lines)["code"] == "shutting_down"
    chunks = [json.loads(line[6:]) for line in running if line.startswith('data: {"id"')]
    assert chunks  # it was generating…
    assert not [c for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]  # …and did not run to its end
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "timeout graceful shutdown exceeded" not in log and "Server stopped." in log
