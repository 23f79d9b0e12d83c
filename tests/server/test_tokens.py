"""Tokens through the server: readable /v1/tokenize pieces with exact bytes, and a max_tokens that counts the prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import ServeFactory, queue_of

PROMPT = "Москва — столица"
LONG = "Жили-были дед да баба, и была у них курочка Ряба. " * 6


@pytest.fixture(scope="module")
def engines(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The tiny model (64-token context) on the reference engine and on the default one (llama.cpp)."""
    from gptdesk.engine import load_engine

    with pytest.MonkeyPatch.context() as mp:  # the module's own cache, never the user's
        mp.setenv("GPTDESK_CACHE_DIR", str(tmp_path_factory.mktemp("tokens-cache")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        loaded = {
            "transformers": load_engine(tiny_model_dir, engine="transformers", device="cpu", dtype="float32"),
            "auto": load_engine(tiny_model_dir, engine="auto"),
        }
    assert loaded["auto"].info.engine.startswith("llama")
    yield loaded
    for engine in loaded.values():
        engine.close()


@pytest.fixture(scope="module")
def embedded() -> Iterator[Any]:
    """The embedded model (512-token context, a 16k vocabulary that splits Ё and emoji into bytes)."""
    from gptdesk.engine import load_engine

    with load_engine(None, engine="transformers", device="cpu", dtype="float32") as engine:
        yield engine


def _tokenize(http: httpx.Client, text: str) -> list[dict[str, Any]]:
    response = http.post("/v1/tokenize", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["tokens"])
    return list(body["tokens"])


def test_tokenize_gives_readable_pieces_and_the_bytes_that_rejoin_the_text(serve: ServeFactory, embedded: Any) -> None:
    server = serve(embedded)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yolka = _tokenize(http, "Ёлка")
        smile = _tokenize(http, "😀")
        mixed = _tokenize(http, "Ёжик 😀 и " + PROMPT)
    # Ё is two byte tokens here: each shows the character it is part of, and carries its own byte.
    assert [t["piece"] for t in yolka] == ["Ё", "Ё", "л", "ка"]
    assert [t["bytes"] for t in yolka] == [[0xD0], [0x81], list("л".encode()), list("ка".encode())]
    assert [t["id"] for t in yolka] == [p.id for p in embedded.tokenize("Ёлка")]
    assert [t["piece"] for t in smile] == ["😀"] * 4
    assert bytes(b for t in smile for b in t["bytes"]) == "😀".encode()
    text = "Ёжик 😀 и " + PROMPT
    assert bytes(b for t in mixed for b in t["bytes"]).decode() == text
    assert not any("<0x" in t["piece"] for t in mixed)
    # Tokens of whole characters are the engine's own pieces (those the window's inspector shows).
    own = {p.id: p.text for p in embedded.tokenize(text)}
    for token in mixed:
        if bytes(token["bytes"]).decode("utf-8", errors="replace") == token["piece"]:
            assert own[token["id"]] == token["piece"]


@pytest.mark.parametrize("name", ["transformers", "auto"])
def test_split_characters_on_both_engines(serve: ServeFactory, engines: dict[str, Any], name: str) -> None:
    server = serve(engines[name])
    text = "𝔄 — буква, 😀 — нет"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        tokens = _tokenize(http, text)
        fraktur = _tokenize(http, "𝔄")
    assert bytes(b for t in tokens for b in t["bytes"]).decode() == text
    assert all(t["piece"] and t["piece"] in text and "<0x" not in t["piece"] for t in tokens)
    assert len(fraktur) > 1 and all(t["piece"] == "𝔄" for t in fraktur)


def test_max_tokens_counts_the_prompt(serve: ServeFactory, embedded: Any) -> None:
    # The hostile test's case: the embedded model's 512-token context and a short prompt.
    server = serve(embedded)
    count = len(embedded.tokenize(PROMPT))
    with httpx.Client(base_url=server.url, timeout=120) as http:
        refused = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 1000})
        just_over = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 512 - count + 1, "stream": True})
        russian = http.post(
            "/v1/completions", json={"prompt": PROMPT, "max_tokens": 1000}, headers={"Accept-Language": "ru"}
        )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "max_tokens" and error["code"] == "context_length_exceeded"
    assert f"the prompt has {count} tokens" in error["message"]
    assert "context holds 512 tokens" in error["message"]
    assert f"at most {512 - count} new tokens fit. Use max_tokens = {512 - count} or less." in error["message"]
    assert "511" not in error["message"]
    assert just_over.status_code == 400 and f"at most {512 - count}" in just_over.json()["error"]["message"]
    assert f"не больше {512 - count} новых токенов" in russian.json()["error"]["message"]
    assert queue_of(server).stats()["done"] == 0  # refused before queueing


@pytest.mark.parametrize("name", ["transformers", "auto"])
def test_the_most_that_fits_is_served_and_a_long_prompt_is_still_cut(
    serve: ServeFactory, engines: dict[str, Any], name: str
) -> None:
    engine = engines[name]
    server = serve(engine)  # the tiny model's context is 64 tokens
    short = len(engine.tokenize(PROMPT))
    long = len(engine.tokenize(LONG))
    assert long > 64
    with httpx.Client(base_url=server.url, timeout=120) as http:
        fits = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 64 - short, "temperature": 0})
        over = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 64 - short + 1})
        cut = http.post("/v1/completions", json={"prompt": LONG, "max_tokens": 8, "temperature": 0})
        too_much = http.post("/v1/completions", json={"prompt": LONG, "max_tokens": 33})
        batch = http.post("/v1/completions", json={"prompt": [PROMPT, LONG], "max_tokens": 33})
    assert fits.status_code == 200, fits.text
    assert fits.json()["usage"]["prompt_tokens"] == short
    assert "prompt_truncated_tokens" not in fits.json() or fits.json()["prompt_truncated_tokens"] == 0
    assert over.status_code == 400 and f"at most {64 - short} new tokens fit" in over.json()["error"]["message"]
    # A prompt longer than the context is cut from the left, as documented, for a max_tokens up to half of it.
    assert cut.status_code == 200, cut.text
    dropped = cut.json()["prompt_truncated_tokens"]
    assert dropped % 28 == 0 and 56 - 28 < long - dropped <= 56  # cut in steps of half the room (28 of 56)
    assert too_much.status_code == 400
    message = too_much.json()["error"]["message"]
    assert f"the prompt has {long} tokens" in message and "Use max_tokens = 32 or less" in message
    assert batch.status_code == 400
    assert f"the prompt[1] has {long} tokens" in batch.json()["error"]["message"]
