"""The remote engine: GPT Desk driving GPT Desk over HTTP, and the dialects of vLLM, llama.cpp server and Ollama."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gptdesk.cli.main import main
from gptdesk.engine import Engine, Finished, Notice, TokenEvent, TokenPiece, load_engine, run_to_end
from gptdesk.engine.remote.engine import RemoteEngine, completion_body, normalize_base_url, repeated_ngram
from gptdesk.engine.tokens import _byte_decoder
from gptdesk.errors import (
    EngineError,
    InvalidInputError,
    ModelNotFoundError,
    NetworkError,
    SettingsError,
    UnsupportedModelError,
)
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset
from tests.server import conftest as server_fixtures
from tests.server.conftest import ScriptedEngine, queue_of, wait_for

# The server tests' fixtures: a real server on 127.0.0.1, and a model with a long context.
serve = server_fixtures.serve
long_engine = server_fixtures.long_engine
long_model_dir = server_fixtures.long_model_dir

PROMPT = "Александр Сергеевич Пушкин родился в"


@pytest.fixture
def server(serve: Any, tiny_engine: Any) -> Any:
    return serve(tiny_engine)


@pytest.fixture
def remote(server: Any) -> Iterator[RemoteEngine]:
    with RemoteEngine.connect(server.url) as engine:
        yield engine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- GPT Desk drives GPT Desk ------------------------------------------------------------------------


def test_connect_describes_the_remote_model(server: Any, tiny_engine: Any) -> None:
    with RemoteEngine.connect(server.url + "/v1/", timeout=30) as remote:
        assert isinstance(remote, Engine)
        assert remote.kind == "gptdesk" and remote.model == tiny_engine.info.model_id
        info = remote.info
        assert info.engine == "remote" and info.device == server.url and info.source == server.url
        assert info.model_id == tiny_engine.info.model_id and info.revision == tiny_engine.info.revision
        assert (info.n_positions, info.n_params, info.vocab_size) == (
            tiny_engine.info.n_positions,
            tiny_engine.info.n_params,
            tiny_engine.info.vocab_size,
        )


CASES: dict[str, GenerationSettings] = {
    "greedy": get_preset("greedy").settings(max_new_tokens=20, min_new_tokens=20),
    "balanced-seed": get_preset("balanced").settings(max_new_tokens=20, seed=5),
    "precise-two-variants": get_preset("precise").settings(max_new_tokens=15, seed=9, num_return_sequences=2),
    "sber-demo-beams": get_preset("sber_demo").settings(max_new_tokens=12, num_return_sequences=3, seed=1),
    "greedy-no-repeat": get_preset("greedy").settings(max_new_tokens=20, no_repeat_ngram_size=2, min_new_tokens=5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_remote_generation_equals_the_local_engine(remote: RemoteEngine, tiny_engine: Any, case: str) -> None:
    settings = CASES[case]
    here = run_to_end(tiny_engine.stream(PROMPT, settings, top_alternatives=3))
    events = list(remote.stream(PROMPT, settings, top_alternatives=3))
    there = events[-1]
    assert isinstance(there, Finished)
    assert there.texts == here.texts
    assert there.finish_reasons == here.finish_reasons
    assert there.generated_tokens == here.generated_tokens
    assert there.prompt_tokens == here.prompt_tokens
    if settings.seed is not None:
        assert there.seed == settings.seed
    for mine, theirs in zip(here.tokens, there.tokens, strict=True):
        real = [e for e in mine if e.token_id >= 0]
        assert [e.token_id for e in theirs] == [e.token_id for e in real]
        assert [e.piece for e in theirs] == [e.piece for e in real]
        assert [e.logprob for e in theirs] == pytest.approx([e.logprob for e in real], abs=1e-5)
        for a, b in zip(theirs, real, strict=True):
            assert [x.token_id for x in a.alternatives] == [x.token_id for x in b.alternatives]
    # Streamed pieces add up to the text, sequence by sequence.
    for index, text in enumerate(there.texts):
        assert "".join(e.text for e in events if isinstance(e, TokenEvent) and e.sequence == index) == text


def test_stop_strings_and_seeds_travel(remote: RemoteEngine, tiny_engine: Any) -> None:
    free = run_to_end(tiny_engine.stream(PROMPT, CASES["greedy"]))
    stop = free.text[len(free.text) // 2 :][:3]
    settings = CASES["greedy"].updated(stop=[stop])
    here = run_to_end(tiny_engine.stream(PROMPT, settings))
    there = run_to_end(remote.stream(PROMPT, settings))
    assert there.text == here.text == free.text[: free.text.find(stop)]
    assert there.finish_reason == here.finish_reason == "stop"
    unseeded = run_to_end(remote.stream(PROMPT, get_preset("balanced").settings(max_new_tokens=10)))
    again = run_to_end(remote.stream(PROMPT, get_preset("balanced").settings(max_new_tokens=10, seed=unseeded.seed)))
    assert again.text == unseeded.text  # the seed the client drew reproduces the text


def test_tokenize_uses_the_servers_tokenizer(remote: RemoteEngine, tiny_engine: Any) -> None:
    text = "Москва — столица России.\nЁлка 2024"
    assert remote.tokenize(text) == tiny_engine.tokenize(text)
    assert remote.tokenize("") == []


def test_settings_errors_come_back_typed_and_bilingual(remote: RemoteEngine, tiny_engine: Any) -> None:
    too_long = get_preset("greedy").settings(max_new_tokens=100)  # the tiny model's context is 64
    with pytest.raises(SettingsError) as here:
        run_to_end(tiny_engine.stream(PROMPT, too_long))
    with pytest.raises(SettingsError) as there:
        run_to_end(remote.stream(PROMPT, too_long))
    assert [i.field for i in there.value.issues] == [i.field for i in here.value.issues] == ["max_new_tokens"]
    # The server counts the prompt as well (the engine alone says only the context): both languages come back.
    prompt_tokens = len(tiny_engine.tokenize(PROMPT))
    text = there.value.issues[0].text
    assert f"the prompt has {prompt_tokens} tokens" in text.en and f"at most {64 - prompt_tokens}" in text.en
    assert f"не больше {64 - prompt_tokens} новых токенов" in text.ru


def test_stop_closes_the_stream_and_the_server_stops(serve: Any, long_engine: Any) -> None:
    server = serve(long_engine)
    cancel = threading.Event()
    settings = get_preset("greedy").settings(max_new_tokens=1000, min_new_tokens=1000)
    seen = 0
    with RemoteEngine.connect(server.url) as remote:
        for event in remote.stream("Жили-были", settings, cancel):
            if isinstance(event, TokenEvent):
                seen += 1
                if seen == 3:
                    cancel.set()
            elif isinstance(event, Finished):
                finished = event
    assert finished.finish_reasons == ["cancelled"]
    assert seen <= 4  # at most the token already on its way when Stop was pressed
    queue = queue_of(server)
    assert queue.wait_idle(30)
    assert queue.history[-1].state == "cancelled" and queue.history[-1].generated_tokens < 500


def test_stop_while_queued_returns_at_once(serve: Any) -> None:
    engine = ScriptedEngine(gated=True)
    server = serve(engine, keepalive_s=600)  # nothing at all reaches the waiting client
    queue = queue_of(server)
    cancel = threading.Event()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        body = {"prompt": "busy", "max_tokens": 5, "stream": True}
        with http.stream("POST", "/v1/completions", json=body), RemoteEngine.connect(server.url) as remote:
            wait_for(lambda: engine.started == ["busy"])
            result: list[Finished] = []
            worker = threading.Thread(
                target=lambda: result.append(run_to_end(remote.stream("waits", CASES["greedy"], cancel)))
            )
            worker.start()
            wait_for(lambda: queue.stats()["waiting"] == 1)
            cancel.set()
            worker.join(30)
            # It returned while the server had sent it nothing (the running job is still held):
            # Stop closed the connection instead of waiting for the server.
            assert not worker.is_alive()
            assert engine.started == ["busy"] and not engine.release.is_set()
            assert result[0].finish_reasons == ["cancelled"] and result[0].texts == [""]
            wait_for(lambda: queue.stats()["waiting"] == 0)
        engine.release.set()
    assert queue.wait_idle(30)
    assert engine.started == ["busy"]  # the stopped request never ran
    assert "abandoned" in [r.state for r in queue.history]


# -- errors ------------------------------------------------------------------------------------------


def test_wrong_or_missing_key_is_a_clear_error(serve: Any, tiny_engine: Any) -> None:
    server = serve(tiny_engine, api_key="remote-key-42")
    with pytest.raises(InvalidInputError) as missing:
        RemoteEngine.connect(server.url)
    assert "401" in missing.value.text.en and "needs an API key" in missing.value.text.en
    assert "--api-key" in missing.value.text.ru
    with RemoteEngine.connect(server.url, api_key="remote-key-42") as remote:
        assert run_to_end(remote.stream(PROMPT, CASES["greedy"])).generated_tokens == [20]


def test_unknown_model_lists_what_is_served(server: Any, tiny_engine: Any) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        RemoteEngine.connect(server.url, model="rugpt3large")
    assert tiny_engine.info.model_id in err.value.text.en and "rugpt3large" in err.value.text.ru


def test_connection_refused_is_a_network_error() -> None:
    port = _free_port()
    with pytest.raises(NetworkError) as err:
        RemoteEngine.connect(f"http://127.0.0.1:{port}", timeout=5)
    assert f"127.0.0.1:{port}" in err.value.text.en and "Cannot connect" in err.value.text.en
    assert "gptdesk serve" in err.value.text.ru


def test_a_silent_server_times_out_with_the_timeout_named() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(NetworkError) as err:
            RemoteEngine.connect(url, timeout=0.5)
    assert "did not answer within 0.5 s" in err.value.text.en and "0.5 с" in err.value.text.ru


def test_bad_addresses_and_arguments_are_refused() -> None:
    for bad in ("ftp://host:21", "localhost:8000", "http://", ""):
        with pytest.raises(InvalidInputError, match="http"):
            normalize_base_url(bad)
    assert normalize_base_url(" http://h:8000/v1/ ") == "http://h:8000"
    with pytest.raises(InvalidInputError, match="timeout"):
        RemoteEngine.connect("http://127.0.0.1:9", timeout=0)
    with pytest.raises(InvalidInputError, match="base_url"):
        load_engine("m", engine="remote")


# -- other servers' dialects (recorded as each documents its API) -------------------------------------------


class FakeServer:
    """An httpx transport answering as a given OpenAI-compatible server; it records the bodies it gets."""

    def __init__(self, owned_by: str, chunks: list[dict[str, Any] | str], extra: Callable[..., Any] | None = None):
        self.owned_by = owned_by
        self.chunks = chunks
        self.extra = extra
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/v1/models":
            card = {"id": "ai-forever/rugpt3large_based_on_gpt2", "object": "model", "owned_by": self.owned_by}
            if self.owned_by == "vllm":
                card["max_model_len"] = 2048
            return httpx.Response(200, json={"object": "list", "data": [card]})
        if request.method == "GET":  # the probes of an unknown server: this one has none of those endpoints
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        self.bodies.append(body)
        if request.url.path == "/v1/completions":
            lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in self.chunks]
            return httpx.Response(200, content="".join(lines).encode(), headers={"content-type": "text/event-stream"})
        assert self.extra is not None
        return self.extra(request.url.path, body)  # type: ignore[no-any-return]

    def connect(self, **kwargs: Any) -> RemoteEngine:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return RemoteEngine.connect_client(client, "http://gpu-server:8000", **kwargs)


def _chunk(index: int, text: str, **fields: Any) -> dict[str, Any]:
    choice = {"index": index, "text": text, "logprobs": None, "finish_reason": None, **fields}
    return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [choice]}


def _symbol(text: str) -> str:
    """A text as a byte-level BPE symbol, the way vLLM's token_strs show GPT-2 tokens."""
    encode = {b: ch for ch, b in _byte_decoder().items()}
    return "".join(encode[b] for b in text.encode())


def test_vllm_dialect(tiny_engine: Any) -> None:
    chunks: list[dict[str, Any] | str] = [
        _chunk(
            0,
            " Росси",
            token_ids=[1001],
            logprobs={
                "tokens": [" Росси"],
                "token_logprobs": [-0.5],
                "top_logprobs": [{" Франц": -1.5, " Росси": -0.5}],
            },
        ),
        _chunk(0, "и", token_ids=[1002], logprobs={"tokens": ["и"], "token_logprobs": [-0.1], "top_logprobs": [{}]}),
        _chunk(0, "", finish_reason="length", stop_reason=None),
        {"id": "cmpl-1", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
        "[DONE]",
    ]

    def tokenize(path: str, body: dict[str, Any]) -> httpx.Response:
        assert path == "/tokenize" and body["return_token_strs"] is True
        return httpx.Response(200, json={"count": 2, "tokens": [7, 8], "token_strs": [_symbol("Мос"), _symbol(" ква")]})

    server = FakeServer("vllm", chunks, tokenize)
    remote = server.connect(model="rugpt3large")  # a catalog name finds the hub id the server uses
    assert remote.kind == "vllm" and remote.model == "ai-forever/rugpt3large_based_on_gpt2"
    assert remote.info.n_positions == 2048 and remote.info.n_params > 700_000_000
    settings = GenerationSettings.build(
        num_beams=4, no_repeat_ngram_size=3, repetition_penalty=1.2, top_k=5, min_new_tokens=2, max_new_tokens=9, seed=3
    )
    events = list(remote.stream("Москва — столица", settings, top_alternatives=2))
    notices = [e for e in events if isinstance(e, Notice) and e.code == "remote_ignores"]
    assert len(notices) == 1
    assert "num_beams = 4" in notices[0].text.en and "no_repeat_ngram_size = 3" in notices[0].text.ru
    sent = server.bodies[0]
    assert "num_beams" not in sent and "no_repeat_ngram_size" not in sent
    assert sent["top_k"] == 5 and sent["repetition_penalty"] == 1.2 and sent["min_tokens"] == 2
    assert sent["max_tokens"] == 9 and sent["seed"] == 3 and sent["logprobs"] == 2 and sent["stream"] is True
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert [(t.token_id, t.text, t.logprob) for t in tokens] == [(1001, " Росси", -0.5), (1002, "и", -0.1)]
    assert [(a.text, a.logprob) for a in tokens[0].alternatives] == [(" Росси", -0.5), (" Франц", -1.5)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.texts == [" России"] and finished.finish_reasons == ["length"]
    assert finished.prompt_tokens == 4 and finished.generated_tokens == [2] and finished.seed == 3
    assert remote.tokenize("Москва") == [TokenPiece(7, "Мос"), TokenPiece(8, " ква")]


def test_ollama_dialect() -> None:
    chunks: list[dict[str, Any] | str] = [
        _chunk(0, "Привет"),
        _chunk(0, ", мир"),
        _chunk(0, "", finish_reason="stop"),
        "[DONE]",
    ]
    server = FakeServer("library", chunks)
    remote = server.connect()
    assert remote.kind == "ollama"
    settings = get_preset("balanced").settings(max_new_tokens=5, stop=["\n\n"], num_return_sequences=2)
    events = list(remote.stream("Скажи", settings))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.texts == ["Привет, мир"] and finished.finish_reasons == ["stop"]
    assert [e.token_id for e in events if isinstance(e, TokenEvent)] == [-1, -1]  # Ollama gives no ids
    sent = server.bodies[0]
    assert "top_k" not in sent and "repetition_penalty" not in sent and "n" not in sent
    assert sent["stop"] == ["\n\n"]
    ignored = [e for e in events if isinstance(e, Notice) and e.code == "remote_ignores"]
    assert "top_k = 10" in ignored[0].text.en and "repetition_penalty = 1.1" in ignored[0].text.en
    with pytest.raises(UnsupportedModelError) as err:
        remote.tokenize("Привет")
    assert "max_new_tokens" in err.value.text.en and "/tokenize" in err.value.text.ru
    with pytest.raises(SettingsError) as lengths:
        list(remote.stream("Скажи", GenerationSettings.build(max_length=50)))
    assert lengths.value.issues[0].field == "max_length"
    assert server.paths.count("/v1/completions") == 1  # neither of those reached the server


def test_llamacpp_dialect() -> None:
    def tokenize(path: str, body: dict[str, Any]) -> httpx.Response:
        assert path == "/tokenize" and body == {"content": body["content"], "add_special": False, "with_pieces": True}
        return httpx.Response(200, json={"tokens": [{"id": 5, "piece": "М"}, {"id": 6, "piece": [208]}]})

    server = FakeServer("llamacpp", [_chunk(0, "а", finish_reason="stop"), "[DONE]"], tokenize)
    remote = server.connect()
    assert remote.kind == "llama.cpp"
    assert [(p.id, p.text) for p in remote.tokenize("Мо")] == [(5, "М"), (6, "<0xD0>")]
    finished = run_to_end(remote.stream("x", GenerationSettings.build(repetition_penalty=1.3, max_new_tokens=3)))
    sent = server.bodies[-2]
    assert sent["repeat_penalty"] == 1.3 and "repetition_penalty" not in sent  # llama.cpp's name for it
    # No usage in the stream: the prompt was counted by the server's tokenizer (the last request).
    assert server.bodies[-1]["content"] == "x" and finished.prompt_tokens == 2


def test_an_unknown_server_is_told_what_it_may_ignore_and_caught_ignoring_it() -> None:
    # A server GPT Desk does not recognise (a proxy, say owned_by "acme", with none of the probed endpoints)
    # that streams one choice whatever n is and ignores num_beams and no_repeat_ngram_size: «как в старину»
    # comes twice.
    pieces = [" как", " в", " стар", "ину", ",", " как", " в", " стар", "ину"]
    chunks: list[dict[str, Any] | str] = [_chunk(0, piece) for piece in pieces]
    chunks += [_chunk(0, "", finish_reason="length"), "[DONE]"]
    server = FakeServer("acme", chunks)
    remote = server.connect()
    assert remote.kind == "openai-compatible" and remote.owned_by == "acme"
    assert {"/props", "/info", "/api/version"} <= set(server.paths)  # asked, answered 404, no harm done
    settings = GenerationSettings.build(
        do_sample=False,
        top_k=0,
        top_p=1.0,
        num_beams=2,
        num_return_sequences=2,
        no_repeat_ngram_size=3,
        repetition_penalty=1.0,
    )
    events = list(remote.stream("Москва — столица", settings.updated(max_new_tokens=30)))
    notices = {e.code: e for e in events if isinstance(e, Notice)}
    sent = server.bodies[0]
    assert sent["num_beams"] == 2 and sent["no_repeat_ngram_size"] == 3 and sent["n"] == 2  # all sent, as before
    unverified = notices["remote_unverified"].text
    assert "num_beams = 2" in unverified.en and "no_repeat_ngram_size = 3" in unverified.en
    assert "owned_by 'acme'" in unverified.en
    assert "num_beams = 2" in unverified.ru and "не может узнать" in unverified.ru
    assert "top_k (" not in unverified.en and "temperature" not in unverified.en  # greedy: top_k does not matter
    assert "repetition_penalty (GPT Desk: 1)" in unverified.en  # left to the server, and it changes greedy text
    repeated = notices["remote_not_honoured"].text
    assert "« как в стар»" in repeated.en and "no_repeat_ngram_size = 3" in repeated.en
    assert "« как в стар»" in repeated.ru
    fewer = notices["remote_fewer_choices"].text
    assert "2 texts were asked for" in fewer.en and "returned 1" in fewer.en and "вернул 1" in fewer.ru
    # The first notice comes before the text, the findings after it, all before the result.
    kinds = [type(e).__name__ + (":" + e.code if isinstance(e, Notice) else "") for e in events]
    assert kinds[0] == "Notice:remote_unverified" and kinds[-1] == "Finished"
    assert kinds.index("Notice:remote_not_honoured") > kinds.index("TokenEvent")


def test_a_server_that_applies_the_settings_gets_no_such_notice(remote: RemoteEngine) -> None:
    settings = get_preset("creative").settings(num_return_sequences=2, no_repeat_ngram_size=2, seed=3)
    events = list(remote.stream(PROMPT, settings.updated(max_new_tokens=20)))
    codes = {e.code for e in events if isinstance(e, Notice)}
    assert not codes & {"remote_unverified", "remote_not_honoured", "remote_fewer_choices", "remote_ignores"}
    finished = events[-1]
    assert isinstance(finished, Finished) and len(finished.texts) == 2


def test_repeated_ngrams_are_found_by_id_or_by_text() -> None:
    def tokens(*units: int | str) -> list[TokenEvent]:
        return [TokenEvent(text=str(u), token_id=u if isinstance(u, int) else -1, piece=str(u)) for u in units]

    assert repeated_ngram(tokens(1, 2, 3, 1, 2, 4), 3) is None
    assert repeated_ngram(tokens(1, 2, 3, 1, 2, 3), 3) == "123"
    assert repeated_ngram(tokens(5, 5, 5), 2) == "55"  # overlapping, as transformers forbids too
    assert repeated_ngram(tokens("а", "б", "а", "б"), 2) == "аб"
    assert repeated_ngram(tokens("а", "б"), 3) is None


def test_an_error_event_mid_stream_raises_a_typed_error() -> None:
    chunks: list[dict[str, Any] | str] = [
        _chunk(0, "Мос"),
        {"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}},
    ]
    remote = FakeServer("vllm", chunks).connect()
    with pytest.raises(EngineError) as err:
        list(remote.stream("x", CASES["greedy"]))
    assert "CUDA out of memory" in err.value.text.en and "gpu-server:8000" in err.value.text.ru


def test_a_server_that_is_not_openai_compatible_is_named() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(404, text="Not Found")))
    with pytest.raises(UnsupportedModelError) as err:
        RemoteEngine.connect_client(client, "http://example:5000")
    assert "OpenAI-compatible" in err.value.text.en and "404" in err.value.text.en


def test_completion_body_maps_settings_to_the_openai_protocol() -> None:
    greedy = completion_body(
        get_preset("greedy").settings(), prompt="p", model="m", seed=1, min_new=0, max_new=7, top_alternatives=0
    )
    assert greedy["temperature"] == 0 and "top_p" not in greedy and "top_k" not in greedy
    sampled = completion_body(
        get_preset("creative").settings(num_return_sequences=2),
        prompt="p",
        model="m",
        seed=1,
        min_new=3,
        max_new=7,
        top_alternatives=0,
        kind="gptdesk",
    )
    assert sampled["temperature"] == 1.2 and sampled["top_p"] == 0.95 and sampled["n"] == 2
    assert sampled["min_tokens"] == 3 and sampled["repetition_penalty"] == 1.05 and "top_k" not in sampled


# -- the command line and load_engine -------------------------------------------------------------------


def test_load_engine_remote_and_generate_remote(server: Any, tiny_engine: Any) -> None:
    with load_engine(tiny_engine.info.model_id, engine="remote", base_url=server.url) as engine:
        assert engine.info.engine == "remote"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["generate", PROMPT, "--remote", server.url, "--preset", "greedy", "--max-new-tokens", "10", "--json"], out, err
    )
    assert code == 0, err.getvalue()
    result = json.loads(out.getvalue())
    local = run_to_end(tiny_engine.stream(PROMPT, get_preset("greedy").settings(max_new_tokens=10)))
    assert result["engine"] == "remote" and result["device"] == server.url
    assert result["text"] == local.text and result["generated_tokens"] == local.generated_tokens[0]


def test_generate_remote_reports_an_unreachable_server() -> None:
    port = _free_port()
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", PROMPT, "--remote", f"http://127.0.0.1:{port}"], out, err)
    assert code == NetworkError.exit_code
    assert f"127.0.0.1:{port}" in err.getvalue() and "Cannot connect" in err.getvalue()
