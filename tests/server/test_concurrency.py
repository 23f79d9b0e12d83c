"""Many clients at once: each gets its own complete text; a client that leaves stops its generation."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import httpx
import openai
import pytest

from gptdesk.server.queue import GenerationQueue, JobEnded
from gptdesk.settings.generation import GenerationSettings
from tests.server.conftest import ScriptedEngine, ServeFactory, queue_of, wait_for

STREAMS = 16
PROMPTS = [
    "Москва — столица",
    "Жили-были дед да баба",
    "Александр Сергеевич Пушкин родился в",
    "В начале было слово",
]


def _request(i: int) -> dict[str, Any]:
    """Request i: its own prompt and seed, sampled, so a mix-up between streams would show."""
    return {
        "prompt": PROMPTS[i % len(PROMPTS)] + f" ({i})",
        "max_tokens": 32,
        "temperature": 0.9,
        "seed": 1000 + i,
        "stream_options": {"include_usage": True},
        "extra_body": {"min_tokens": 10},
    }


async def _stream(client: openai.AsyncOpenAI, model: str, i: int) -> dict[str, Any]:
    started = time.perf_counter()
    first: float | None = None
    texts: list[str] = []
    ids: set[str] = set()
    tokens = 0
    reason = None
    stream = await client.completions.create(model=model, stream=True, **_request(i))
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            assert choice.index == 0
            if first is None and choice.text:
                first = time.perf_counter() - started
            texts.append(choice.text)
            reason = choice.finish_reason or reason
    return {
        "text": "".join(texts),
        "ids": ids,
        "tokens": tokens,
        "reason": reason,
        "first": first,
        "total": time.perf_counter() - started,
    }


async def _run_all(url: str, model: str, indices: list[int], *, together: bool) -> list[dict[str, Any]]:
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300) as client:
        if together:
            results = await asyncio.gather(*(_stream(client, model, i) for i in indices), return_exceptions=True)
        else:
            results = [await _stream(client, model, i) for i in indices]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return [r for r in results if isinstance(r, dict)]


def test_sixteen_simultaneous_streams_are_each_complete_and_correct(serve: ServeFactory, tiny_engine: Any) -> None:
    server = serve(tiny_engine)
    model = tiny_engine.info.model_id
    indices = list(range(STREAMS))
    alone = asyncio.run(_run_all(server.url, model, indices, together=False))
    started = time.perf_counter()
    together = asyncio.run(_run_all(server.url, model, indices, together=True))
    wall = time.perf_counter() - started

    for i, (solo, crowd) in enumerate(zip(alone, together, strict=True)):
        assert crowd["text"] == solo["text"], f"stream {i} differs from the same request run alone"
        assert crowd["reason"] == solo["reason"] and crowd["reason"] in ("stop", "length")
        assert crowd["tokens"] == solo["tokens"] >= 10
        assert len(crowd["ids"]) == 1
    assert len({r["text"] for r in together}) == STREAMS  # every request got its own text
    assert len(set().union(*(r["ids"] for r in together))) == STREAMS
    stats = queue_of(server).stats()
    assert stats["done"] == 2 * STREAMS and stats["failed"] == stats["rejected"] == stats["cancelled"] == 0

    tokens = sum(r["tokens"] for r in together)
    firsts = [r["first"] for r in together if r["first"] is not None]
    print(
        f"\n[concurrency] {STREAMS} simultaneous streams, 0 errors, wall {wall:.2f} s, {tokens} tokens "
        f"({tokens / wall:.0f} tok/s overall); first token mean {statistics.mean(firsts):.3f} s, "
        f"max {max(firsts):.3f} s; total per request mean {statistics.mean(r['total'] for r in together):.2f} s, "
        f"max {max(r['total'] for r in together):.2f} s; the same {STREAMS} one by one took "
        f"{sum(r['total'] for r in alone):.2f} s"
    )


def test_disconnect_mid_stream_stops_the_generation(serve: ServeFactory, long_engine: Any) -> None:
    server = serve(long_engine)
    queue = queue_of(server)
    body = {"prompt": "Жили-были", "max_tokens": 1000, "min_tokens": 1000, "temperature": 0, "stream": True}
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/v1/completions", json=body) as response,
    ):
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: {"):
                seen += 1
                if seen == 3:
                    break
    # Leaving the block closed the connection halfway through the stream.
    assert queue.wait_idle(30)
    record = queue.history[-1]
    assert record.state == "cancelled"
    assert record.finish_reasons == ("cancelled",)
    assert 3 <= record.generated_tokens < 500  # it stopped long before its 1000 tokens


def test_disconnect_while_waiting_for_a_whole_completion_stops_it(serve: ServeFactory, long_engine: Any) -> None:
    server = serve(long_engine)
    queue = queue_of(server)
    body = {"prompt": "Жили-были", "max_tokens": 1000, "min_tokens": 1000, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json=body, timeout=httpx.Timeout(60, read=0.5))
    assert queue.wait_idle(30)
    record = queue.history[-1]
    assert record.state == "cancelled"
    assert record.generated_tokens < 1000


def test_a_client_that_leaves_the_queue_never_runs(serve: ServeFactory) -> None:
    engine = ScriptedEngine(gated=True)
    server = serve(engine)
    queue = queue_of(server)
    body = {"max_tokens": 5, "stream": True}
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/v1/completions", json={**body, "prompt": "first"}) as first,
    ):
        wait_for(lambda: engine.started == ["first"])
        with http.stream("POST", "/v1/completions", json={**body, "prompt": "leaves"}):
            wait_for(lambda: queue.stats()["waiting"] == 1)
        wait_for(lambda: queue.stats()["waiting"] == 0)
        engine.release.set()
        assert [json.loads(line[6:]) for line in first.iter_lines() if line.startswith("data: {")]
    assert queue.wait_idle(30)
    assert engine.started == ["first"]
    assert [r.state for r in queue.history] == ["abandoned", "done"]


def test_jobs_run_one_at_a_time_in_arrival_order() -> None:
    engine = ScriptedEngine(gated=True)
    queue = GenerationQueue(engine, max_waiting=10)
    settings = GenerationSettings.build(max_new_tokens=3)

    async def scenario() -> list[str]:
        jobs = [queue.submit([name], settings, 0) for name in "abcde"]
        wait_for(lambda: engine.started == ["a"])
        assert queue.stats()["waiting"] == 4 and queue.stats()["running"] == 1
        engine.release.set()
        ended: list[str] = []

        async def drain(job: Any, name: str) -> None:
            while not isinstance(await job.next(), JobEnded):
                pass
            ended.append(name)

        await asyncio.gather(*(drain(job, name) for job, name in zip(jobs, "abcde", strict=True)))
        return ended

    try:
        ended = asyncio.run(scenario())
    finally:
        queue.close()
    assert engine.started == list("abcde")
    assert ended == list("abcde")
    assert engine.max_active == 1  # the worker never ran two generations at once
    assert [r.id for r in queue.history] == [1, 2, 3, 4, 5]


def test_a_queued_stream_is_kept_alive_and_then_served(serve: ServeFactory) -> None:
    engine = ScriptedEngine(gated=True)
    server = serve(engine, keepalive_s=0.05)
    body = {"max_tokens": 3, "stream": True}
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/v1/completions", json={**body, "prompt": "first"}),
        http.stream("POST", "/v1/completions", json={**body, "prompt": "second"}) as second,
    ):
        wait_for(lambda: engine.started == ["first"])
        lines = second.iter_lines()
        assert next(lines) == ": waiting for the model"  # an SSE comment while it waits its turn
        engine.release.set()
        rest = [line for line in lines if line]
    texts = [json.loads(line[6:])["choices"][0]["text"] for line in rest if line.startswith("data: {")]
    assert "".join(texts) == "xxx" and rest[-1] == "data: [DONE]"
