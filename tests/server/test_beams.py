"""Variants and beam search through the server: one generation per prompt, the leading beam as an opt-in SSE chunk."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai

from gptdesk.engine.base import Finished, LeadingBeam, StreamEvent, Timings, TokenEvent
from gptdesk.settings.generation import GenerationSettings
from tests.server.conftest import ScriptedEngine, ServeFactory

PROMPT = "Москва — столица"


class BeamEngine(ScriptedEngine):
    """Records the settings of every generation; a beam search shows three leading beams, then its beams' tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, GenerationSettings]] = []

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        self.calls.append((prompt, settings))
        if settings.num_beams == 1:
            yield from self._variants(settings)
            return
        texts = ["а", "аб", "вгд"]
        for step, text in enumerate(texts, start=1):
            yield LeadingBeam(text=text, token_ids=tuple(range(step)), score=-0.5 * step, step=step)
        n = settings.num_return_sequences
        finals = [f"вгд{i}" for i in range(n)]
        events = [[TokenEvent(text=t, token_id=7, piece=t, logprob=-0.1, sequence=i)] for i, t in enumerate(finals)]
        for per_sequence in events:
            yield from per_sequence
        yield Finished(finals, ["length"] * n, 2, [1] * n, settings.seed or 0, Timings(), tokens=events)

    def _variants(self, settings: GenerationSettings) -> Iterator[StreamEvent]:
        n = settings.num_return_sequences
        limit = settings.max_new_tokens or 16
        events: list[list[TokenEvent]] = [[] for _ in range(n)]
        for _ in range(limit):  # the sequences grow side by side, as a batched engine yields them
            for index in range(n):
                event = TokenEvent(text=str(index), token_id=index, piece=str(index), logprob=-0.5, sequence=index)
                events[index].append(event)
                yield event
        texts = [str(index) * limit for index in range(n)]
        yield Finished(texts, ["length"] * n, 2, [limit] * n, settings.seed or 0, Timings(), tokens=events)


def _chunks(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]


def test_n_variants_run_as_one_generation_per_prompt(serve: ServeFactory) -> None:
    engine = BeamEngine()
    server = serve(engine)
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        done = client.completions.create(model="scripted", prompt=["a", "b"], n=3, max_tokens=4, seed=5)
        texts: dict[int, str] = {}
        for chunk in client.completions.create(model="scripted", prompt="c", n=4, max_tokens=3, stream=True):
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert [(prompt, s.num_return_sequences, s.num_beams) for prompt, s in engine.calls] == [
        ("a", 3, 1),
        ("b", 3, 1),
        ("c", 4, 1),
    ]
    assert [c.text for c in done.choices] == ["0000", "1111", "2222", "0000", "1111", "2222"]
    assert texts == {0: "000", 1: "111", 2: "222", 3: "333"}


class MixedEndsEngine(ScriptedEngine):
    """Three variants that end differently: at the length limit, at the end of text, at a stop string."""

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        n = settings.num_return_sequences
        texts = ["ab", "a", "ab"][:n]
        events = [[TokenEvent(text=ch, token_id=3, piece=ch, sequence=i) for ch in t] for i, t in enumerate(texts)]
        for per_sequence in events:
            yield from per_sequence
        reasons: list[Any] = ["length", "eos", "stop"][:n]
        yield Finished(texts, reasons, 2, [len(t) for t in texts], settings.seed or 0, Timings(), tokens=events)


def test_a_streamed_n_ends_with_one_final_chunk_per_choice(serve: ServeFactory) -> None:
    server = serve(MixedEndsEngine())
    body = {"prompt": ["p", "q"], "n": 3, "max_tokens": 2, "stop": ["z"], "stream": True}
    with httpx.Client(base_url=server.url, timeout=60) as http, http.stream("POST", "/v1/completions", json=body) as r:
        chunks = _chunks(r)
    finals = [chunk for chunk in chunks if any(c["finish_reason"] for c in chunk["choices"])]
    # As the OpenAI API sends it: each choice's end is a chunk of its own, with its own finish_reason.
    assert [len(chunk["choices"]) for chunk in finals] == [1] * 6
    ends = {chunk["choices"][0]["index"]: chunk["choices"][0]["finish_reason"] for chunk in finals}
    assert ends == {0: "length", 1: "stop", 2: "stop", 3: "length", 4: "stop", 5: "stop"}
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        seen: dict[int, list[str | None]] = {}
        for chunk in client.completions.create(model="scripted", prompt="p", n=3, max_tokens=2, stream=True):
            assert len(chunk.choices) == 1
            seen.setdefault(chunk.choices[0].index, []).append(chunk.choices[0].finish_reason)
    assert {index: [r for r in reasons if r] for index, reasons in seen.items()} == {
        0: ["length"],
        1: ["stop"],
        2: ["stop"],
    }


def test_beam_search_fields_num_beams_and_vllms_use_beam_search(serve: ServeFactory) -> None:
    engine = BeamEngine()
    server = serve(engine)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        ours = http.post("/v1/completions", json={"prompt": PROMPT, "num_beams": 4, "n": 2, "max_tokens": 5})
        vllm = http.post(
            "/v1/completions",
            json={"prompt": PROMPT, "use_beam_search": True, "best_of": 3, "n": 2, "max_tokens": 5},
        )
        vllm_n = http.post("/v1/completions", json={"prompt": PROMPT, "use_beam_search": True, "n": 2})
        one = http.post("/v1/completions", json={"prompt": PROMPT, "use_beam_search": True})
        clash = http.post(
            "/v1/completions", json={"prompt": PROMPT, "use_beam_search": True, "best_of": 3, "num_beams": 4}
        )
        best_of = http.post("/v1/completions", json={"prompt": PROMPT, "best_of": 3})
        too_many = http.post("/v1/completions", json={"prompt": PROMPT, "num_beams": 2, "n": 3})
        knobs = http.post(
            "/v1/completions",
            json={"prompt": PROMPT, "num_beams": 2, "length_penalty": -0.5, "early_stopping": "never"},
        )
        bad_knob = http.post("/v1/completions", json={"prompt": PROMPT, "num_beams": 2, "early_stopping": "soon"})
    assert knobs.status_code == 200
    assert (engine.calls[-1][1].length_penalty, engine.calls[-1][1].early_stopping) == (-0.5, "never")
    assert bad_knob.status_code == 400 and bad_knob.json()["error"]["param"] == "early_stopping"
    assert 'true, false or "never"' in bad_knob.json()["error"]["message"]
    assert ours.status_code == 200 and [c["text"] for c in ours.json()["choices"]] == ["вгд0", "вгд1"]
    assert vllm.status_code == 200 and len(vllm.json()["choices"]) == 2
    assert vllm_n.status_code == 200
    settings = [s for _, s in engine.calls]
    assert (settings[0].num_beams, settings[0].num_return_sequences, settings[0].do_sample) == (4, 2, True)
    # vLLM's beam search: best_of beams (else n), deterministic unless a temperature is given.
    assert (settings[1].num_beams, settings[1].num_return_sequences, settings[1].do_sample) == (3, 2, False)
    assert (settings[2].num_beams, settings[2].do_sample) == (2, False)
    assert one.status_code == 400 and one.json()["error"]["param"] == "best_of"
    assert "at least 2 beams" in one.json()["error"]["message"]
    assert clash.status_code == 400 and clash.json()["error"]["param"] == "num_beams"
    assert best_of.status_code == 400 and "use_beam_search" in best_of.json()["error"]["message"]
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"
    assert len(engine.calls) == 4


def test_the_leading_beam_is_an_opt_in_chunk_and_the_openai_client_ignores_the_search(serve: ServeFactory) -> None:
    engine = BeamEngine()
    server = serve(engine)
    body = {"prompt": ["x", "y"], "num_beams": 3, "n": 2, "max_tokens": 5, "stream": True}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with http.stream("POST", "/v1/completions", json=body) as plain:
            plain_chunks = _chunks(plain)
        options = {"stream_options": {"include_leading_beam": True, "include_usage": True}}
        with http.stream("POST", "/v1/completions", json={**body, **options}) as asked:
            asked_chunks = _chunks(asked)
    # Not asked for: every chunk has choices, as OpenAI clients expect; the final texts arrive whole.
    assert all(chunk["choices"] and "leading_beam" not in chunk for chunk in plain_chunks)
    # Asked for: chunks with no choices and the best hypothesis, which replaces the previous one.
    beams = [chunk["leading_beam"] for chunk in asked_chunks if "leading_beam" in chunk]
    assert all(chunk["choices"] == [] for chunk in asked_chunks if "leading_beam" in chunk)
    assert [(b["index"], b["text"], b["step"], b["score"]) for b in beams] == [
        (0, "а", 1, -0.5),
        (0, "аб", 2, -1.0),
        (0, "вгд", 3, -1.5),
        (2, "а", 1, -0.5),
        (2, "аб", 2, -1.0),
        (2, "вгд", 3, -1.5),
    ]
    assert beams[2]["token_ids"] == [0, 1, 2]
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        texts: dict[int, str] = {}
        for chunk in client.completions.create(
            model="scripted", prompt=["x", "y"], n=2, max_tokens=5, stream=True, extra_body={"num_beams": 3}
        ):
            choice = chunk.choices[0]  # what most client code does with every chunk
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "вгд0", 1: "вгд1", 2: "вгд0", 3: "вгд1"}


class SilentBeamEngine(BeamEngine):
    """A long beam search that never sends its beams' tokens: only leading beams, every 5 ms, then the result."""

    def stream(self, prompt: str, settings: GenerationSettings, cancel: Any = None, **kwargs: Any) -> Any:
        for step in range(1, 100):
            time.sleep(0.005)
            yield LeadingBeam(text="в" * step, token_ids=(7,) * step, score=-1.0, step=step)
        for event in super().stream(prompt, settings, cancel, **kwargs):
            if not isinstance(event, TokenEvent):
                yield event


def test_a_result_without_token_events_still_streams_its_text(serve: ServeFactory) -> None:
    server = serve(SilentBeamEngine(), keepalive_s=0.1)
    body = {"prompt": "x", "num_beams": 2, "n": 2, "max_tokens": 5, "stream": True, "echo": True}
    with httpx.Client(base_url=server.url, timeout=60) as http, http.stream("POST", "/v1/completions", json=body) as r:
        lines = list(r.iter_lines())
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    final = {c["index"]: (c["text"], c["finish_reason"]) for chunk in chunks for c in chunk["choices"]}
    assert final == {0: ("xвгд0", "length"), 1: ("xвгд1", "length")}
    # The search runs for half a second sending nothing: comments keep the client's read timeout at bay.
    assert ": beam search running" in lines


def test_variants_and_beams_on_the_default_engine_equal_the_engine_itself(
    serve: ServeFactory, tiny_model_dir: Any
) -> None:
    from gptdesk.engine import load_engine, run_to_end

    with load_engine(tiny_model_dir, engine="auto") as engine:
        server = serve(engine)
        plain = {"top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0}
        with httpx.Client(base_url=server.url, timeout=120) as http:
            variants = http.post("/v1/completions", json={"prompt": PROMPT, "n": 3, "max_tokens": 8, "seed": 11})
            beams = http.post(
                "/v1/completions",
                json={"prompt": PROMPT, "num_beams": 3, "n": 2, "max_tokens": 8, "temperature": 0},
            )
            body = {"prompt": PROMPT, "n": 3, "max_tokens": 8, "seed": 11, "stream": True}
            with http.stream("POST", "/v1/completions", json=body) as streamed:
                chunks = _chunks(streamed)
            searched = {
                "prompt": PROMPT,
                "num_beams": 3,
                "n": 2,
                "max_tokens": 8,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_leading_beam": True},
            }
            with http.stream("POST", "/v1/completions", json=searched) as live:
                search_chunks = _chunks(live)
        local_variants = run_to_end(
            engine.stream(PROMPT, GenerationSettings.build(num_return_sequences=3, max_new_tokens=8, seed=11, **plain))
        )
        local_beams = run_to_end(
            engine.stream(
                PROMPT,
                GenerationSettings.build(
                    num_beams=3, num_return_sequences=2, max_new_tokens=8, do_sample=False, **plain
                ),
            )
        )
    assert [c["text"] for c in variants.json()["choices"]] == local_variants.texts
    assert [c["text"] for c in beams.json()["choices"]] == local_beams.texts
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert [texts[i] for i in range(3)] == local_variants.texts
    finals = [chunk["choices"] for chunk in chunks if any(c["finish_reason"] for c in chunk["choices"])]
    assert sorted(choices[0]["index"] for choices in finals) == [0, 1, 2]
    assert all(len(choices) == 1 for choices in finals)
    # The default engine shows its search as it runs; the last leading beam becomes choice 0's text.
    leading = [chunk["leading_beam"] for chunk in search_chunks if "leading_beam" in chunk]
    assert leading and all(beam["index"] == 0 for beam in leading)
    assert [beam["step"] for beam in leading] == sorted(beam["step"] for beam in leading)
    returned: dict[int, str] = {}
    for chunk in search_chunks:
        for choice in chunk["choices"]:
            returned[choice["index"]] = returned.get(choice["index"], "") + choice["text"]
    assert [returned[0], returned[1]] == local_beams.texts
