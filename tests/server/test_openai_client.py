"""`gptdesk serve` driven by the official openai client: results equal the engine's own, errors are typed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gptdesk.engine import run_to_end
from gptdesk.errors import SettingsError
from gptdesk.settings.generation import GenerationSettings
from tests.server.conftest import ServeFactory

PROMPT = "Александр Сергеевич Пушкин родился в"
# What the server runs for an OpenAI request: plain decoding, no top-k, top-p or repetition penalty.
OPENAI_PLAIN = {"top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0}


_open_clients: list[openai.OpenAI] = []


def _client(server: Any, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("api_key", "unused")
    client = openai.OpenAI(base_url=server.url + "/v1", max_retries=0, timeout=120, **kwargs)
    _open_clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open_clients:
        _open_clients.pop().close()


def _local(engine: Any, prompt: str, **settings: Any) -> Any:
    values = {**OPENAI_PLAIN, **settings}
    return run_to_end(engine.stream(prompt, GenerationSettings.build(**values), top_alternatives=3))


@pytest.fixture
def server(serve: ServeFactory, tiny_engine: Any) -> Any:
    return serve(tiny_engine)


@pytest.fixture
def model_id(server: Any) -> str:
    return str(_client(server).models.list().data[0].id)


def test_models_lists_the_served_model(server: Any, tiny_engine: Any) -> None:
    client = _client(server)
    models = client.models.list().data
    assert [m.id for m in models] == [tiny_engine.info.model_id]
    assert models[0].owned_by == "gptdesk"
    assert models[0].max_model_len == tiny_engine.info.n_positions  # type: ignore[attr-defined]
    assert client.models.retrieve(models[0].id).id == models[0].id
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("gpt-4")
    assert err.value.code == "model_not_found"
    assert "gpt-4" in err.value.message and tiny_engine.info.model_id in err.value.message


def test_greedy_completion_equals_the_engine(server: Any, model_id: str, tiny_engine: Any) -> None:
    result = _client(server).completions.create(model=model_id, prompt=PROMPT, max_tokens=20, temperature=0)
    local = _local(tiny_engine, PROMPT, do_sample=False, max_new_tokens=20)
    choice = result.choices[0]
    assert choice.text == local.text
    assert choice.finish_reason == {"eos": "stop", "length": "length"}[local.finish_reason]
    assert result.usage is not None
    assert result.usage.prompt_tokens == local.prompt_tokens
    assert result.usage.completion_tokens == local.generated_tokens[0]
    assert result.model == model_id
    assert result.object == "text_completion"


def test_streamed_text_equals_non_streamed_and_the_engine(server: Any, model_id: str, tiny_engine: Any) -> None:
    client = _client(server)
    args: dict[str, Any] = {
        "model": model_id,
        "prompt": PROMPT,
        "max_tokens": 30,
        "temperature": 0.8,
        "top_p": 0.95,
        "seed": 123,
    }
    chunks = list(client.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    whole = client.completions.create(**args)
    local = _local(tiny_engine, PROMPT, do_sample=True, temperature=0.8, top_p=0.95, seed=123, max_new_tokens=30)
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert streamed == whole.choices[0].text == local.text
    assert len({c.id for c in chunks}) == 1
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == local.generated_tokens[0]
    # A seed makes sampling repeatable; another seed gives another text.
    assert client.completions.create(**args).choices[0].text == local.text
    other = client.completions.create(**{**args, "seed": 124, "max_tokens": 30}).choices[0].text
    assert other != local.text


def test_logprobs_are_the_engines(server: Any, model_id: str, tiny_engine: Any) -> None:
    result = _client(server).completions.create(
        model=model_id, prompt=PROMPT, max_tokens=12, temperature=0, logprobs=3, extra_body={"min_tokens": 12}
    )
    local = _local(tiny_engine, PROMPT, do_sample=False, max_new_tokens=12, min_new_tokens=12)
    lp = result.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and lp.token_logprobs is not None
    assert lp.top_logprobs is not None and lp.text_offset is not None
    events = [e for e in local.tokens[0] if e.token_id >= 0]
    assert lp.tokens == [e.piece for e in events]
    assert lp.token_logprobs == pytest.approx([e.logprob for e in events], abs=1e-5)
    for top, event in zip(lp.top_logprobs, events, strict=True):
        assert len(top) <= 3
        assert max(top.values()) == pytest.approx(event.logprob, abs=1e-5)  # greedy takes the likeliest
    assert lp.text_offset[0] == 0
    assert lp.text_offset == sorted(lp.text_offset)


def test_n_variants_with_a_seed_are_the_engines(server: Any, model_id: str, tiny_engine: Any) -> None:
    result = _client(server).completions.create(
        model=model_id, prompt=PROMPT, max_tokens=15, n=3, seed=7, temperature=1.0
    )
    local = _local(tiny_engine, PROMPT, do_sample=True, num_return_sequences=3, seed=7, max_new_tokens=15)
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert [c.text for c in result.choices] == local.texts
    assert len(set(local.texts)) > 1


def test_extra_body_settings_reach_the_engine(server: Any, model_id: str, tiny_engine: Any) -> None:
    extra = {"num_beams": 3, "no_repeat_ngram_size": 2, "repetition_penalty": 1.3, "min_tokens": 8}
    result = _client(server).completions.create(
        model=model_id, prompt=PROMPT, max_tokens=15, n=2, temperature=0, extra_body=extra
    )
    local = _local(
        tiny_engine,
        PROMPT,
        do_sample=False,
        num_beams=3,
        no_repeat_ngram_size=2,
        repetition_penalty=1.3,
        min_new_tokens=8,
        num_return_sequences=2,
        max_new_tokens=15,
    )
    assert [c.text for c in result.choices] == local.texts
    plain = _local(tiny_engine, PROMPT, do_sample=False, num_return_sequences=1, max_new_tokens=15)
    assert result.choices[0].text != plain.text  # the knobs changed something


def test_top_k_extra_is_applied(server: Any, model_id: str, tiny_engine: Any) -> None:
    result = _client(server).completions.create(
        model=model_id, prompt=PROMPT, max_tokens=15, seed=3, extra_body={"top_k": 5}
    )
    local = _local(tiny_engine, PROMPT, do_sample=True, top_k=5, seed=3, max_new_tokens=15)
    assert result.choices[0].text == local.text


def test_stop_string_ends_the_text(server: Any, model_id: str) -> None:
    client = _client(server)
    free = client.completions.create(
        model=model_id, prompt=PROMPT, max_tokens=30, temperature=0, extra_body={"min_tokens": 30}
    ).choices[0]
    middle = len(free.text) // 2
    stop = free.text[middle : middle + 3]
    assert stop
    stopped = client.completions.create(
        model=model_id, prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop], extra_body={"min_tokens": 30}
    ).choices[0]
    assert stopped.text == free.text[: free.text.find(stop)]
    assert stopped.finish_reason == "stop"
    assert stopped.stop_reason == stop  # type: ignore[attr-defined]


def test_echo_and_several_prompts(server: Any, model_id: str) -> None:
    client = _client(server)
    prompts = ["Жили-были дед да баба", "Москва — столица"]
    both = client.completions.create(model=model_id, prompt=prompts, max_tokens=8, temperature=0, echo=True)
    assert [c.index for c in both.choices] == [0, 1]
    for prompt, choice in zip(prompts, both.choices, strict=True):
        alone = client.completions.create(model=model_id, prompt=prompt, max_tokens=8, temperature=0)
        assert choice.text == prompt + alone.choices[0].text


def test_invalid_settings_get_the_apps_own_message(server: Any, model_id: str) -> None:
    with pytest.raises(SettingsError) as expected:
        GenerationSettings.build(temperature=9)
    with pytest.raises(openai.BadRequestError) as err:
        _client(server).completions.create(model=model_id, prompt=PROMPT, temperature=9)
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict)
    assert body["message"] == expected.value.issues[0].text.en
    assert body["param"] == "temperature"
    assert body["type"] == "invalid_request_error"
    # The same in Russian for a client that asks for it.
    with pytest.raises(openai.BadRequestError) as ru:
        _client(server, default_headers={"Accept-Language": "ru-RU,ru;q=0.9"}).completions.create(
            model=model_id, prompt=PROMPT, temperature=9, stream=True
        )
    assert isinstance(ru.value.body, dict)
    assert ru.value.body["message"] == expected.value.issues[0].text.ru


def test_contradictory_and_unsupported_requests_are_refused(server: Any, model_id: str) -> None:
    client = _client(server)
    with pytest.raises(openai.BadRequestError) as greedy_n:
        client.completions.create(model=model_id, prompt=PROMPT, n=2, temperature=0)
    assert isinstance(greedy_n.value.body, dict)
    assert greedy_n.value.body["param"] == "n"
    assert "num_return_sequences = 2 with greedy decoding" in greedy_n.value.body["message"]
    with pytest.raises(openai.BadRequestError) as penalty:
        client.completions.create(model=model_id, prompt=PROMPT, presence_penalty=0.5)
    assert isinstance(penalty.value.body, dict)
    assert penalty.value.body["param"] == "presence_penalty"
    assert "repetition_penalty" in penalty.value.body["message"]


def test_wrong_api_key_is_refused(serve: ServeFactory, tiny_engine: Any) -> None:
    server = serve(tiny_engine, api_key="s3cret-key")
    with pytest.raises(openai.AuthenticationError) as err:
        _client(server, api_key="wrong").completions.create(model="x", prompt=PROMPT, max_tokens=2)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert "s3cret" not in err.value.message
    ok = _client(server, api_key="s3cret-key").completions.create(
        model=tiny_engine.info.model_id, prompt=PROMPT, max_tokens=2
    )
    assert len(ok.choices) == 1


def test_strict_types_keep_what_real_clients_send(server: Any, model_id: str, tiny_engine: Any) -> None:
    # What simonw/llm's OpenAI completion model sends: every option it has at a neutral or typical value,
    # numbers as floats or ints, usage asked for in the stream.
    client = _client(server)
    texts: list[str] = []
    usage = None
    for chunk in client.completions.create(
        model=model_id,
        prompt=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=6,
        temperature=0.0,
        top_p=1,
        frequency_penalty=0,
        presence_penalty=0.0,
        stop=["\n\n"],
        seed=4,
        logprobs=2,
        logit_bias={},
        user="llm",
    ):
        texts.extend(c.text for c in chunk.choices)
        usage = chunk.usage or usage
    local = _local(tiny_engine, PROMPT, do_sample=False, max_new_tokens=6, stop=["\n\n"])
    assert "".join(texts) == local.text
    assert usage is not None and usage.completion_tokens == local.generated_tokens[0]
    # A loose type is a 400 through the client as well.
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=model_id, prompt=PROMPT, max_tokens=2, extra_body={"n": True})
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "n"


def test_bad_words_extra_field_bans_words_as_the_engine_does(server: Any, model_id: str, tiny_engine: Any) -> None:
    client = _client(server)
    free = client.completions.create(model=model_id, prompt=PROMPT, max_tokens=12, temperature=0).choices[0]
    word = free.text.split()[0] if free.text.split() else free.text
    banned = client.completions.create(
        model=model_id, prompt=PROMPT, max_tokens=12, temperature=0, extra_body={"bad_words": [word]}
    ).choices[0]
    local = _local(tiny_engine, PROMPT, max_new_tokens=12, do_sample=False, bad_words=[word])
    assert banned.text == local.text != free.text
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=model_id, prompt=PROMPT, max_tokens=4, extra_body={"bad_words": [""]})
    assert "bad_words[0] = ''" in str(err.value)
