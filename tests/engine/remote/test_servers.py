"""The servers people run, recognised and sent the names each reads: real HTTP fakes on 127.0.0.1 (fakes.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gptdesk.cli.main import main
from gptdesk.engine import Finished, Notice, run_to_end
from gptdesk.engine.remote.engine import RemoteEngine
from gptdesk.errors import EmptyPromptError
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset
from tests.engine.remote.fakes import KINDS, FakeServer, greedy_text
from tests.server.conftest import listening_url

PROMPT = "Москва — столица"
GREEDY = get_preset("greedy").settings(max_new_tokens=6)


@pytest.fixture
def fake() -> Iterator[Any]:
    servers: list[FakeServer] = []

    def start(name: str) -> FakeServer:
        servers.append(FakeServer(KINDS[name]))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def generate(url: str, *args: str) -> tuple[dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", PROMPT, "--remote", url, "--max-new-tokens", "6", "--json", *args], out, err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


# -- the findings of issue 21 --------------------------------------------------------------------------------


def test_greedy_on_llama_cpp_python_is_greedy(fake: Any) -> None:
    # Found: --preset greedy against llama-cpp-python's server gave another text than the local run, with no
    # notice: it applied its own repeat_penalty 1.1 (and top_k 40, min_p 0.05) because none was sent in its names.
    server = fake("llama-cpp-python")
    result, err = generate(server.url, "--preset", "greedy")
    assert greedy_text(6) != greedy_text(6, 1.1)  # the toy model tells the two apart
    assert result["text"] == greedy_text(6)
    sent = server.bodies[0]
    assert (sent["temperature"], sent["repeat_penalty"], sent["top_k"], sent["min_p"]) == (0, 1.0, 0, 0.0)
    assert "remote_unverified" not in err and "not one GPT Desk recognises" not in err


def test_repetition_penalty_reaches_llama_cpp_python(fake: Any) -> None:
    # Found: --repetition-penalty 1.0 and 3.0 gave the same text there (it reads repeat_penalty).
    server = fake("llama-cpp-python")
    plain, _ = generate(server.url, "--preset", "greedy", "--repetition-penalty", "1.0")
    strong, _ = generate(server.url, "--preset", "greedy", "--repetition-penalty", "3.0")
    assert plain["text"] == greedy_text(6)
    assert strong["text"] == greedy_text(6, 3.0) != plain["text"]
    assert [b["repeat_penalty"] for b in server.bodies] == [1.0, 3.0]


def test_an_unknown_server_is_told_which_of_its_defaults_may_change_the_text(fake: Any) -> None:
    # Found: an unrecognised server's own defaults changed greedy text and nothing said so before the run.
    server = fake("unknown")
    with RemoteEngine.connect(server.url) as remote:
        assert remote.kind == "openai-compatible"
        events = list(remote.stream(PROMPT, GREEDY))
        for empty in (lambda: remote.check(" \n", GREEDY), lambda: list(remote.stream("", GREEDY))):
            with pytest.raises(EmptyPromptError) as refused:  # the core's prompt check, its words
                empty()
            assert "«Москва — столица»" in refused.value.text.en and "Затравка пуста" in refused.value.text.ru
    notices = [e for e in events if isinstance(e, Notice)]
    unverified = next(n for n in notices if n.code == "remote_unverified")
    assert events.index(unverified) < next(i for i, e in enumerate(events) if not isinstance(e, Notice))
    assert "repetition_penalty (GPT Desk: 1)" in unverified.text.en and "owned_by 'acme'" in unverified.text.en
    assert "repetition_penalty (GPT Desk: 1)" in unverified.text.ru and "жадный текст" in unverified.text.ru
    assert "top_k (" not in unverified.text.en  # greedy: top_k and min_p cannot change it
    sampled = list(RemoteEngine.connect(server.url).stream(PROMPT, get_preset("balanced").settings(max_new_tokens=3)))
    text = next(e for e in sampled if isinstance(e, Notice) and e.code == "remote_unverified").text.en
    assert "top_k = 10" in text and "min_p (GPT Desk: off)" in text  # top_k sent unverified; min_p left to it


def test_token_counts_a_server_did_not_send_are_counted_or_unknown(fake: Any) -> None:
    # Found: with --json, "prompt_tokens": 0 when the server streams no usage.
    counted = fake("llama-cpp-python")  # no usage in its stream, but /extras/tokenize
    result, _ = generate(counted.url, "--preset", "greedy")
    assert result["prompt_tokens"] == len(PROMPT.split()) and "/extras/tokenize" in counted.paths
    unknown = fake("unknown")  # neither usage nor a tokenizer
    result, err = generate(unknown.url, "--preset", "greedy")
    assert result["prompt_tokens"] is None
    assert any("prompt's token count is unknown" in n for n in result["notices"]) and "null" in err
    with RemoteEngine.connect(unknown.url) as remote:
        events = list(remote.stream(PROMPT, GREEDY))
    assert [e.code for e in events if isinstance(e, Notice)][-1] == "remote_tokens_unknown"
    assert "токенов затравки неизвестно" in next(
        e.text.ru for e in events if isinstance(e, Notice) and e.code == "remote_tokens_unknown"
    )


# -- each server recognised from what it reports, and sent the names it reads ----------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "names"),
    [
        ("llama-cpp-python", "llama-cpp-python", {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0}),
        ("llama.cpp", "llama.cpp", {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0, "dry_multiplier": 0.0}),
        ("vllm", "vllm", {"repetition_penalty": 1.0, "top_k": -1, "min_p": 0.0, "return_token_ids": True}),
        ("tgi", "tgi", {"repetition_penalty": 1.0}),
    ],
)
def test_each_server_is_recognised_and_greedy_is_greedy(
    fake: Any, name: str, kind: str, names: dict[str, object]
) -> None:
    server = fake(name)
    with RemoteEngine.connect(server.url) as remote:
        assert remote.kind == kind
        events = list(remote.stream(PROMPT, GREEDY))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.text == greedy_text(6)
    assert finished.prompt_tokens == len(PROMPT.split())  # from usage, or counted by its tokenizer
    sent = server.bodies[0]
    assert {key: sent.get(key) for key in names} == names and sent["temperature"] == 0
    assert not [e for e in events if isinstance(e, Notice)]


def test_a_server_is_recognised_by_its_endpoints_not_only_its_owner(fake: Any) -> None:
    server = fake("llama.cpp")
    server.kind.owned_by = "my-alias"  # llama-server behind a proxy that rewrites owned_by: /props still tells
    with RemoteEngine.connect(server.url) as remote:
        assert remote.kind == "llama.cpp"
        assert run_to_end(remote.stream(PROMPT, GREEDY)).text == greedy_text(6)


def test_tgi_without_v1_models_is_described_by_its_info_and_never_sent_top_p_1(fake: Any) -> None:
    server = fake("tgi")
    with RemoteEngine.connect(server.url) as remote:
        assert remote.model == "ai-forever/rugpt3small_based_on_gpt2" and remote.kind == "tgi"
        settings = GenerationSettings.build(top_p=1.0, top_k=5, temperature=0.7, max_new_tokens=3, seed=1)
        events = list(remote.stream(PROMPT, settings))  # TGI answers 422 to top_p = 1
        assert [t.text for t in remote.tokenize("а бб")] == [" б", " в"]
    assert "top_p" not in server.bodies[0] and "top_k" not in server.bodies[0]
    ignores = next(e for e in events if isinstance(e, Notice) and e.code == "remote_ignores")
    assert "top_k = 5" in ignores.text.en


def test_ollama_is_recognised_and_its_own_defaults_are_named(fake: Any) -> None:
    server = fake("ollama")
    with RemoteEngine.connect(server.url) as remote:
        assert remote.kind == "ollama" and remote.owned_by == "alice"
        events = list(remote.stream(PROMPT, GREEDY))
    notice = next(e for e in events if isinstance(e, Notice) and e.code == "remote_server_defaults")
    assert "repeat_penalty (GPT Desk: 1)" in notice.text.en and "Modelfile" in notice.text.ru
    assert "top_k" not in notice.text.en.split("applies its own")[1].split(":")[0]  # greedy: only the penalty
    assert "repeat_penalty" not in server.bodies[0] and "repetition_penalty" not in server.bodies[0]


def test_a_probe_that_never_answers_does_not_hang_the_connection(fake: Any) -> None:
    server = fake("silent-probe")
    connected: list[RemoteEngine] = []
    worker = threading.Thread(target=lambda: connected.append(RemoteEngine.connect(server.url, timeout=60)))
    worker.start()
    worker.join(120)  # the probes' budget is 5 s, far below the 60 s timeout of a request
    assert not worker.is_alive() and connected[0].kind == "openai-compatible"
    assert "/props" in server.paths
    assert run_to_end(connected[0].stream(PROMPT, GREEDY)).text == greedy_text(6)
    connected[0].close()


def test_generate_remote_against_a_gptdesk_serve_child_matches_the_local_run(tiny_model_dir: Path) -> None:
    """The README's two commands as a user types them: `gptdesk serve` in one process, `gptdesk generate
    --remote` in another, on the default engine; greedy gives the local text and the prompt's real count."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gptdesk", "--lang", "en", "serve", "--model", str(tiny_model_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GPTDESK_API_KEY": ""},
    )
    try:
        url = listening_url(process)
        there, err = generate(url, "--preset", "greedy", "--max-new-tokens", "10")
        out, local_err = io.StringIO(), io.StringIO()
        args = ["generate", PROMPT, "--model", str(tiny_model_dir), "--preset", "greedy", "--max-new-tokens", "10"]
        assert main([*args, "--json"], out, local_err) == 0, local_err.getvalue()
        here = json.loads(out.getvalue())
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert there["engine"] == "remote" and there["text"] == here["text"]
    assert there["prompt_tokens"] == here["prompt_tokens"] > 0
    assert "remote_" not in err and "not one GPT Desk recognises" not in err


def test_banned_words_go_to_the_servers_that_read_them_and_are_named_where_ignored(fake: Any) -> None:
    vllm, llama = fake("vllm"), fake("llama-cpp-python")
    _, vllm_err = generate(vllm.url, "--preset", "greedy", "--ban", "однако", "--ban", "вдруг")
    assert vllm.bodies[-1]["bad_words"] == ["однако", "вдруг"]
    assert "bad_words" not in vllm_err
    _, llama_err = generate(llama.url, "--preset", "greedy", "--ban", "однако")
    assert "bad_words" not in llama.bodies[-1]
    assert "bad_words = ['однако']" in llama_err  # the notice names what that server ignores
