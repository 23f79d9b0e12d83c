"""A hub mirror that misbehaves: never answers, answers a web page, answers JSON that is not a model's."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.cli.main import main
from gptdesk.errors import ModelError, NetworkError
from gptdesk.models.hub.download import pull
from gptdesk.models.hub.plan import plan
from gptdesk.models.hub.settings import RetryPolicy
from tests.models.hub_server import FakeHub, point_at

REPO_ID = "ai-forever/rugpt3small_based_on_gpt2"
QUICK = RetryPolicy(attempts=2, first_delay_s=0.05, max_delay_s=0.1, connect_timeout_s=0.5, read_timeout_s=0.5)


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    from gptdesk.i18n import set_language

    set_language("en")
    yield
    set_language(None)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as server:
        point_at(server, monkeypatch, tmp_path / "hub")
        yield server


def test_a_mirror_that_never_answers_the_model_info_times_out(hub: FakeHub, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.stall.add("api")
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        plan("rugpt3small", retry=QUICK)
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert caught.value.message("en").startswith(
        f"The hub at {hub.url} took the request for 'rugpt3small' but did not answer within 0.5 s."
    )
    assert "не ответил за 0.5 с" in caught.value.message("ru")


def test_a_mirror_that_never_answers_a_file_s_metadata_times_out(hub: FakeHub, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.stall.add("config.json")
    started = time.monotonic()
    with pytest.raises(NetworkError):
        pull("rugpt3small", retry=QUICK)
    assert time.monotonic() - started < 10
    heads = hub.requests("HEAD", "config.json")
    assert len(heads) == QUICK.attempts  # retried as the policy says, then given up


def test_the_cli_gives_up_on_a_silent_mirror_after_hf_hub_download_timeout(
    hub: FakeHub, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.stall.add("api")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "1")
    err = io.StringIO()
    started = time.monotonic()
    code = main(["generate", "Привет", "--model", "rugpt3small"], io.StringIO(), err)
    assert code == 3, err.getvalue()
    assert time.monotonic() - started < 20
    assert "downloading it" in err.getvalue() and "did not answer within 1 s" in err.getvalue()


@pytest.mark.parametrize(
    ("kind", "body", "said"),
    [
        ("text/html", b"<!doctype html><html><body>Welcome to our proxy</body></html>", "a web page or text"),
        ("application/json", b'{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": []}', "JSON"),
        ("application/json", b'["not", "a", "model"]', "JSON"),
    ],
)
def test_an_answer_that_is_not_the_hub_s_is_named_and_exits_3(
    hub: FakeHub, tiny_model_dir: Path, kind: str, body: bytes, said: str
) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.api_answer = (kind, body)
    with pytest.raises(ModelError) as caught:
        plan("rugpt3small", retry=QUICK)
    text = caught.value.message("en")
    assert f"answered the request for '{REPO_ID}' with {said}" in text
    assert hub.url in text and "HF_ENDPOINT" in text
    err = io.StringIO()
    assert main(["generate", "Привет", "--model", "rugpt3small"], io.StringIO(), err) == 3
    assert "not the model information" in err.getvalue() and "Internal error" not in err.getvalue()
    ru = io.StringIO()
    assert main(["--lang", "ru", "models", "pull", "rugpt3small"], io.StringIO(), ru) == 3
    assert "а не сведениями о модели" in ru.getvalue()


@pytest.mark.parametrize("command", ["generate", "pull"])
def test_ctrl_c_in_a_stalled_transfer_cancels_at_once_and_keeps_the_bytes(
    hub: FakeHub, tiny_model_dir: Path, command: str
) -> None:
    """The CDN sends the headers of the weights and then nothing: the first Ctrl+C ends it cleanly."""
    import os
    import signal
    import subprocess
    import sys

    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.stall_body.add("model.safetensors")
    args = (
        ["generate", "Привет", "--model", "rugpt3small"] if command == "generate" else ["models", "pull", "rugpt3small"]
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "GPTDESK_LANG": "en"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptdesk", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    deadline = time.monotonic() + 120
    while not [r for r in hub.requests("GET") if r.path.startswith("/blobs/")]:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)  # the client is now inside the read that never completes
    pressed = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    waited = time.monotonic() - pressed
    text = err.decode()
    assert proc.returncode == 130, text
    assert "cancelled" in text.lower() and "Traceback" not in text and "Internal error" not in text
    assert waited < 5, waited  # not the 30 s read timeout
    assert out == b""
