"""Bad requests get the right status and an OpenAI-style JSON error; the server's limits hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gptdesk.errors import InsufficientMemoryError, InvalidInputError, SettingsError
from gptdesk.i18n import Text
from gptdesk.server.config import ServerConfig, is_loopback
from gptdesk.settings.generation import GenerationSettings
from tests.server.conftest import ScriptedEngine, ServeFactory, queue_of, wait_for

PROMPT = "Москва — столица"


@pytest.fixture
def server(serve: ServeFactory, tiny_engine: Any) -> Any:
    return serve(tiny_engine, max_body_bytes=64 * 1024, max_tokens_limit=40)


@pytest.fixture
def http(server: Any) -> Iterator[httpx.Client]:
    # httpx's json= sets the content type itself; raw bodies (content=) get it from here.
    with httpx.Client(base_url=server.url, timeout=60, headers={"Content-Type": "application/json"}) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of an OpenAI-style JSON error with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert error["message"]
    return dict(error)


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    error = _error(http.post("/v1/completions", content=b'{"prompt": "x",'), 400)
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"] and "line 1" in error["message"]
    error = _error(http.post("/v1/completions", content=b'["prompt"]'), 400)
    assert "JSON array, not a JSON object" in error["message"]
    error = _error(http.post("/v1/completions", content=b"\xff\xfe\x00garbage"), 400)
    assert error["code"] == "invalid_json"
    error = _error(http.post("/v1/completions", content=b""), 400)
    assert "empty" in error["message"]
    error = _error(http.post("/v1/completions", content=b"[" * 20_000 + b"]" * 20_000), 400)
    assert error["code"] == "invalid_json"


def test_structural_errors_name_the_parameter(http: httpx.Client) -> None:
    error = _error(http.post("/v1/completions", json={"max_tokens": 5}), 400)
    assert error["param"] == "prompt" and error["code"] == "missing_required_parameter"
    error = _error(http.post("/v1/completions", json={"prompt": [1, 2, 3]}), 400)
    assert error["param"] == "prompt" and "token-id prompts are not supported" in error["message"]
    error = _error(http.post("/v1/completions", json={"prompt": PROMPT, "temprature": 0.5}), 400)
    assert error["param"] == "temprature" and "Did you mean: temperature" in error["message"]
    error = _error(http.post("/v1/completions", json={"prompt": PROMPT, "logprobs": 50}), 400)
    assert error["param"] == "logprobs" and "0–20" in error["message"]
    error = _error(http.post("/v1/completions", content=b'{"prompt": "\\ud83d oops"}'), 400)
    assert error["param"] == "prompt" and "surrogate" in error["message"]
    error = _error(http.post("/v1/completions", json={"prompt": "   "}), 400)
    assert error["param"] == "prompt" and "prompt is empty" in error["message"]


def test_huge_bodies_get_413(http: httpx.Client) -> None:
    big = json.dumps({"prompt": "слово " * 20_000}).encode()  # ~240 kB, the limit here is 64 kB
    error = _error(http.post("/v1/completions", content=big), 413)
    assert error["code"] == "request_too_large" and "65536 bytes" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is counted while reading
        yield b'{"prompt": "'
        for _ in range(100):
            yield b"a" * 4096
        yield b'"}'

    _error(http.post("/v1/completions", content=chunks()), 413)
    _error(http.post("/v1/tokenize", content=big), 413)


@pytest.mark.parametrize(
    ("field", "value", "setting", "param"),
    [
        ("temperature", 7.5, "temperature", "temperature"),
        ("top_p", 0, "top_p", "top_p"),
        ("top_k", -1, "top_k", "top_k"),
        ("num_beams", 64, "num_beams", "num_beams"),
        ("repetition_penalty", 0.1, "repetition_penalty", "repetition_penalty"),
        ("no_repeat_ngram_size", 11, "no_repeat_ngram_size", "no_repeat_ngram_size"),
        ("n", 17, "num_return_sequences", "n"),
        ("seed", -5, "seed", "seed"),
        ("max_tokens", 0, "max_new_tokens", "max_tokens"),
        ("min_tokens", 5000, "min_new_tokens", "min_tokens"),
        ("stop", [""], "stop", "stop"),
    ],
)
def test_out_of_range_settings_get_the_apps_message(
    http: httpx.Client, field: str, value: object, setting: str, param: str
) -> None:
    with pytest.raises(SettingsError) as expected:
        GenerationSettings.build(**{setting: value})
    error = _error(http.post("/v1/completions", json={"prompt": PROMPT, field: value}), 400)
    assert error["message"] == expected.value.issues[0].text.en
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    issues = error["gptdesk"]["issues"]
    assert issues[0]["field"] == setting and issues[0]["ru"] == expected.value.issues[0].text.ru


def test_max_tokens_is_bounded_by_the_server_and_the_context(http: httpx.Client, tiny_engine: Any) -> None:
    error = _error(http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 41}), 400)
    assert error["param"] == "max_tokens"
    assert "max_tokens = 41 is above this server's limit of 40" in error["message"]
    assert "--max-tokens-limit" in error["message"]


def test_context_overflow_is_refused_before_queueing(serve: ServeFactory, tiny_engine: Any) -> None:
    server = serve(tiny_engine)  # the tiny model's context is 64 tokens
    with httpx.Client(base_url=server.url, timeout=60) as http:
        error = _error(http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 64, "stream": True}), 400)
    assert error["param"] == "max_tokens" and "context holds 64 tokens" in error["message"]
    assert queue_of(server).stats()["done"] == 0


def test_api_key_is_required_and_checked(serve: ServeFactory, tiny_engine: Any) -> None:
    server = serve(tiny_engine, api_key="k-123456")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        missing = _error(http.get("/v1/models"), 401)
        assert "needs an API key" in missing["message"] and missing["code"] == "invalid_api_key"
        wrong = _error(
            http.post("/v1/completions", json={"prompt": PROMPT}, headers={"Authorization": "Bearer k"}), 401
        )
        assert "not this server's key" in wrong["message"]
        ru = _error(http.get("/v1/models", headers={"Authorization": "Bearer no", "Accept-Language": "ru"}), 401)
        assert "не подходит" in ru["message"]
        assert http.get("/v1/models", headers={"Authorization": "Bearer k-123456"}).status_code == 200
        # The schema and the health check stay open; the schema says that /v1 needs the key.
        schema = http.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert http.get("/health").json()["status"] == "ok"


def test_unknown_paths_and_methods_get_json_errors(http: httpx.Client) -> None:
    error = _error(http.get("/v1/chat/completions"), 404)
    assert "POST /v1/completions" in error["message"]
    error = _error(http.get("/v1/completions"), 405)
    assert error["code"] == "method_not_allowed"


def test_openapi_schema_documents_the_settings(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    request = schema["components"]["schemas"]["CompletionRequest"]
    props = request["properties"]
    assert props["max_tokens"]["anyOf"][0]["maximum"] == 40  # this server's --max-tokens-limit
    assert props["num_beams"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 32}
    assert "Beam search keeps" in props["num_beams"]["description"]
    assert request["required"] == ["prompt"] and request["additionalProperties"] is False
    post = schema["paths"]["/v1/completions"]["post"]
    assert set(post["responses"]) >= {"200", "400", "403", "404", "413", "415", "429", "503"}
    assert props["use_beam_search"]["anyOf"][0] == {"type": "boolean"}
    assert "prompts × max(n, num_beams) × max_tokens" in props["max_tokens"]["description"]
    stream_options = schema["components"]["schemas"]["StreamOptions"]["properties"]
    assert set(stream_options) == {"include_usage", "include_leading_beam"}
    assert "text/event-stream" in post["responses"]["200"]["content"]


def test_requests_beyond_the_queue_get_429(serve: ServeFactory) -> None:
    engine = ScriptedEngine(gated=True)
    server = serve(engine, max_queue=1)
    body = {"prompt": "first", "max_tokens": 50, "stream": True}
    queue = queue_of(server)
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/v1/completions", json=body) as first,
    ):
        assert first.status_code == 200
        wait_for(lambda: engine.started == ["first"])
        with http.stream("POST", "/v1/completions", json={**body, "prompt": "second"}) as second:
            assert second.status_code == 200  # headers come at once; it waits in the queue
            assert queue.stats()["waiting"] == 1
            third = http.post("/v1/completions", json={**body, "prompt": "third"})
            error = _error(third, 429)
            assert error["type"] == "rate_limit_error" and error["code"] == "queue_full"
            assert "--max-queue 1" in error["message"]
            assert third.headers["retry-after"] == "2"
            engine.release.set()
            text = "".join(_texts(second))
        assert text == "x" * 50
    assert engine.started == ["first", "second"]
    assert queue.stats()["rejected"] == 1


def _texts(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                yield choice["text"]


def test_listening_beyond_this_computer_needs_a_flag_and_a_key() -> None:
    ServerConfig().check()
    ServerConfig(host="localhost").check()
    ServerConfig(host="::1").check()
    with pytest.raises(InvalidInputError) as no_flag:
        ServerConfig(host="0.0.0.0").check()
    assert "--allow-remote" in no_flag.value.text.en and "--allow-remote" in no_flag.value.text.ru
    with pytest.raises(InvalidInputError) as no_key:
        ServerConfig(host="0.0.0.0", allow_remote=True).check()
    assert "--api-key" in no_key.value.text.en
    ServerConfig(host="0.0.0.0", allow_remote=True, api_key="long-random-key").check()
    with pytest.raises(InvalidInputError, match="spaces"):
        ServerConfig(api_key="two words").check()
    assert is_loopback("127.0.0.2") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


class _FailingEngine(ScriptedEngine):
    """Fails after two tokens, the way a library fault or an out-of-memory would."""

    def stream(self, prompt: str, settings: GenerationSettings, cancel: Any = None, **kwargs: Any) -> Iterator[Any]:
        for count, event in enumerate(super().stream(prompt, settings, cancel, **kwargs)):
            if count == 2:
                raise InsufficientMemoryError(
                    Text("Out of memory: use fewer beams.", "Не хватило памяти: меньше лучей.")
                )
            yield event


def test_a_failure_during_generation_is_reported_in_the_stream_and_as_json(serve: ServeFactory) -> None:
    server = serve(_FailingEngine())
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        stream = client.completions.create(model="scripted", prompt=PROMPT, max_tokens=10, stream=True)
        texts: list[str] = []

        def read() -> None:
            for chunk in stream:
                texts.extend(c.text for c in chunk.choices)

        with pytest.raises(openai.APIError) as err:
            read()
        assert texts == ["x", "x"]  # what came before the failure arrived
        assert err.value.message == "Out of memory: use fewer beams."
        assert isinstance(err.value.body, dict) and err.value.body["type"] == "insufficient_resources"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        error = _error(http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 10}), 507)
    assert error["type"] == "insufficient_resources" and error["gptdesk"]["ru"] == "Не хватило памяти: меньше лучей."
    assert queue_of(server).stats()["failed"] == 2


# -- issue 13: the prompt list, the total work, huge numbers, strict types, tiny temperatures ---------------


def test_the_prompt_list_takes_1_to_16_texts(server: Any, http: httpx.Client) -> None:
    error = _error(http.post("/v1/completions", json={"prompt": []}), 400)
    assert error["param"] == "prompt" and "list of 0 texts" in error["message"] and "1–16" in error["message"]
    error = _error(http.post("/v1/completions", json={"prompt": ["Привет"] * 17, "max_tokens": 1}), 400)
    assert error["param"] == "prompt" and "list of 17 texts" in error["message"]
    error = _error(http.post("/v1/completions", json={"prompt": ["Привет"] * 100, "n": 16, "max_tokens": 1}), 400)
    assert "list of 100 texts" in error["message"]
    assert queue_of(server).stats()["done"] == 0  # refused before any generation
    done = http.post("/v1/completions", json={"prompt": ["Привет"] * 16, "max_tokens": 1, "temperature": 0})
    assert done.status_code == 200 and len(done.json()["choices"]) == 16


def test_the_total_work_of_a_request_is_bounded(serve: ServeFactory, tiny_engine: Any) -> None:
    server = serve(tiny_engine, max_tokens_limit=40, max_request_tokens=40)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        # 2 prompts × 2 variants × 10 tokens = 40: at the bound.
        ok = http.post("/v1/completions", json={"prompt": ["Мама", "Папа"], "n": 2, "max_tokens": 10, "seed": 1})
        assert ok.status_code == 200 and len(ok.json()["choices"]) == 4
        error = _error(http.post("/v1/completions", json={"prompt": ["Мама", "Папа"], "n": 2, "max_tokens": 11}), 400)
        assert error["param"] == "max_tokens" and error["code"] == "request_too_large"
        assert "44 tokens" in error["message"] and "allows 40" in error["message"]
        assert "--max-request-tokens" in error["message"] and "--max-request-tokens" in error["gptdesk"]["ru"]
        # Beams count as sequences: 4 beams × 11 tokens = 44; n = 2 of them returned changes nothing.
        beams = _error(
            http.post("/v1/completions", json={"prompt": "Мама", "num_beams": 4, "n": 2, "max_tokens": 11}), 400
        )
        assert "4 sequences (num_beams)" in beams["message"]
        # Left out, max_tokens is the OpenAI default of 16: 3 variants × 16 = 48.
        default = _error(http.post("/v1/completions", json={"prompt": "Мама", "n": 3}), 400)
        assert "max_tokens 16" in default["message"]
    assert queue_of(server).stats()["done"] == 1
    with pytest.raises(InvalidInputError, match="max_request_tokens"):
        ServerConfig(max_request_tokens=0).check()


def test_a_number_with_thousands_of_digits_is_invalid_json_and_the_connection_lives(server: Any) -> None:
    import http.client

    huge = "1" + "0" * 5000
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        bodies = [
            ("/v1/completions", '{"prompt": "x", "max_tokens": ' + huge + "}"),
            ("/v1/tokenize", '{"text": ' + huge + "}"),
            ("/v1/completions", '{"prompt": ["x", ' + huge + "]}"),
            ("/v1/completions", '{"prompt": "x", "temperature": NaN}'),
            ("/v1/completions", '{"prompt": "x", "seed": -Infinity}'),
            ("/v1/completions", '{"prompt": "x", "max_tokens": 3, "temperature": 0}'),
        ]
        ports = set()
        answers = []
        for path, body in bodies:
            connection.request("POST", path, body=body.encode(), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())))
            assert response.getheader("connection") != "close"
            assert connection.sock is not None
            ports.add(connection.sock.getsockname()[1])
    finally:
        connection.close()
    assert len(ports) == 1  # one keep-alive connection carried every request
    for status, body in answers[:3]:
        assert status == 400 and body["error"]["code"] == "invalid_json"
        assert "5001 digits" in body["error"]["message"]
    for status, body in answers[3:5]:
        assert status == 400 and body["error"]["code"] == "invalid_json"
        assert "is not a JSON value" in body["error"]["message"]
    assert answers[5][0] == 200


@pytest.mark.parametrize(
    ("field", "value", "wanted"),
    [
        ("stream", "yes", "true or false"),
        ("stream", 1, "true or false"),
        ("echo", "true", "true or false"),
        ("max_tokens", True, "whole number"),
        ("max_tokens", "5", "whole number"),
        ("max_tokens", 5.0, "whole number"),
        ("logprobs", True, "whole number 0–20"),
        ("n", 2.0, "whole number"),
        ("seed", "7", "whole number"),
        ("temperature", "0.5", "a number"),
        ("temperature", False, "a number"),
        ("top_p", [0.9], "a number"),
        ("stop", 5, "a string or a list of strings"),
        ("use_beam_search", "yes", "true or false"),
    ],
)
def test_loose_types_are_refused_as_the_openai_api_does(
    server: Any, http: httpx.Client, field: str, value: object, wanted: str
) -> None:
    error = _error(http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2, field: value}), 400)
    assert error["param"] == field and wanted in error["message"]
    assert f"{field} = {json.dumps(value)}" in error["message"]  # the value as the client wrote it
    assert error["type"] == "invalid_request_error"
    assert queue_of(server).stats()["done"] == 0


def test_stream_options_and_tokenize_are_strict_too(http: httpx.Client) -> None:
    body = {"prompt": PROMPT, "stream": True, "stream_options": {"include_usage": "yes"}}
    error = _error(http.post("/v1/completions", json=body), 400)
    assert error["param"] == "stream_options" and "stream_options.include_usage" in error["message"]
    body["stream_options"] = {"include_usage": True, "include_usge": True}
    error = _error(http.post("/v1/completions", json=body), 400)
    assert "stream_options.include_usge" in error["message"] and "include_usage" in error["message"]
    error = _error(http.post("/v1/tokenize", json={"text": 5}), 400)
    assert error["param"] == "text"
    # Integers where a number is wanted are fine, and kept as written.
    ok = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2, "temperature": 1, "top_p": 1})
    assert ok.status_code == 200


def test_a_vanishing_temperature_is_a_clear_400(server: Any, http: httpx.Client) -> None:
    for value in (1e-300, 1e-40, 0.001):
        error = _error(
            http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2, "temperature": value}), 400
        )
        assert error["param"] == "temperature" and error["type"] == "invalid_request_error"
        assert "0.05" in error["message"]
        assert error["gptdesk"]["issues"][0]["field"] == "temperature"
    assert queue_of(server).stats()["failed"] == 0
    # 0 is greedy decoding, as in the OpenAI API.
    assert http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2, "temperature": 0}).status_code == 200
