"""Which server answers: recognised from what it reports itself (/v1/models, /props, /info, /api/version…)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from gptdesk.engine.base import ModelInfo
from gptdesk.engine.remote.errors import not_openai_compatible
from gptdesk.engine.remote.wire import OWNERS, ServerKind
from gptdesk.errors import ModelNotFoundError
from gptdesk.i18n import Text
from gptdesk.models.catalog import find_entry

#: How long all probes of one connection may take together: a server that never answers one costs this much.
PROBE_BUDGET_S = 5.0


class Prober:
    """GET requests that never raise and never outlast the budget: a missing or silent endpoint is None."""

    def __init__(self, client: httpx.Client, root: str, timeout: float) -> None:
        self.client = client
        self.root = root
        self.deadline = time.monotonic() + min(timeout, PROBE_BUDGET_S)

    def json(self, path: str) -> Any:
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            response = self.client.get(f"{self.root}{path}", timeout=httpx.Timeout(left))
            if response.status_code != 200:
                return None
            return response.json()
        except (httpx.HTTPError, ValueError):
            return None


def identify(prober: Prober, card: dict[str, Any]) -> ServerKind:
    """The kind of server: by owned_by where it names the program, else by the endpoints only that program has.

    llama.cpp's llama-server says owned_by "llamacpp" (and gives /props), vLLM "vllm" (and /version), GPT Desk
    "gptdesk", llama-cpp-python "me"; Ollama names the model's owner ("library" for its own) and answers
    /api/version; TGI names the model and answers /info with its router's name.
    """
    owned_by = str(card.get("owned_by", "")).lower()
    if owned_by in OWNERS:
        return OWNERS[owned_by]
    if isinstance(card.get("meta"), dict) and "n_vocab" in card["meta"]:
        return "llama.cpp"
    props = prober.json("/props")
    if isinstance(props, dict) and "default_generation_settings" in props:
        return "llama.cpp"
    if is_tgi(prober.json("/info")):
        return "tgi"
    version = prober.json("/api/version")
    if isinstance(version, dict) and isinstance(version.get("version"), str):
        return "ollama"
    if "max_model_len" in card:
        version = prober.json("/version")
        if isinstance(version, dict) and isinstance(version.get("version"), str):
            return "vllm"
    openapi = prober.json("/openapi.json")
    if isinstance(openapi, dict) and "llama.cpp Python" in str((openapi.get("info") or {}).get("title", "")):
        return "llama-cpp-python"
    return "openai-compatible"


def is_tgi(info: Any) -> bool:
    """TGI's /info: {"model_id", "router": "text-generation-router", "version", "max_total_tokens"…}."""
    return isinstance(info, dict) and "model_id" in info and "text-generation" in str(info.get("router", ""))


def tgi_card(info: dict[str, Any]) -> dict[str, Any]:
    """A /v1/models card from TGI's /info, for TGI versions without /v1/models."""
    card: dict[str, Any] = {"id": str(info["model_id"]), "object": "model", "owned_by": str(info["model_id"])}
    if isinstance(info.get("max_total_tokens"), int):
        card["max_model_len"] = info["max_total_tokens"]
    if info.get("model_sha"):
        card["root"] = str(info["model_sha"])
    return card


def model_cards(response: httpx.Response, root: str) -> list[dict[str, Any]]:
    try:
        data = response.json()
        cards = [c for c in data["data"] if isinstance(c, dict) and "id" in c]
    except (ValueError, KeyError, TypeError) as exc:
        raise not_openai_compatible(
            root,
            Text(
                f"did not return a model list ({type(exc).__name__})",
                f"не вернул список моделей ({type(exc).__name__})",
            ),
        ) from None
    return cards


def pick(cards: list[dict[str, Any]], model: str, root: str) -> dict[str, Any]:
    """The card for `model`, also by a catalog alias (rugpt3large, sberbank-ai/… for ai-forever/…)."""
    wanted = {model.strip().lower()}
    entry = find_entry(model)
    if entry is not None:
        wanted.update(name.lower() for name in entry.names())
    for card in cards:
        if str(card["id"]).lower() in wanted:
            return card
    listed = ", ".join(str(c["id"]) for c in cards)
    raise ModelNotFoundError(
        Text(
            f"model = {model!r} is not served at {root}; it serves: {listed}. Pick one of those, or leave the model "
            "out to use the first.",
            f"model = {model!r} не обслуживается на {root}; там есть: {listed}. Выберите одну из них или не "
            "указывайте модель, чтобы взять первую.",
        )
    )


def model_info(card: dict[str, Any], root: str) -> ModelInfo:
    extra = card.get("gptdesk") if isinstance(card.get("gptdesk"), dict) else {}
    assert isinstance(extra, dict)
    entry = find_entry(str(card["id"]))
    shape = entry.shape if entry is not None else None

    def number(name: str, fallback: int) -> int:
        value = extra.get(name)
        return int(value) if isinstance(value, int) else fallback

    positions = card.get("max_model_len")
    return ModelInfo(
        model_id=str(card["id"]),
        source=root,
        revision=str(extra.get("revision") or card.get("root") or "remote"),
        engine="remote",
        device=root,
        dtype=str(extra.get("dtype") or "unknown"),
        n_params=number("n_params", entry.n_params if entry else 0),
        n_layer=number("n_layer", shape.n_layer if shape else 0),
        n_embd=number("n_embd", shape.n_embd if shape else 0),
        n_head=number("n_head", shape.n_head if shape else 0),
        n_positions=positions
        if isinstance(positions, int)
        else number("n_positions", shape.n_positions if shape else 0),
        vocab_size=number("vocab_size", shape.vocab_size if shape else 0),
    )
