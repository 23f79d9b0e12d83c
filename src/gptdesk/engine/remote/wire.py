"""The wire format of OpenAI-compatible servers: request bodies, the names each server reads, and parsing answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Literal

from gptdesk.engine.base import (
    Alternative,
    Finished,
    FinishReason,
    Notice,
    StreamEvent,
    Timings,
    TokenEvent,
    TokenPiece,
)
from gptdesk.engine.tokens import _byte_decoder, _mixed
from gptdesk.errors import UnsupportedModelError
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

ServerKind = Literal["gptdesk", "vllm", "llama.cpp", "llama-cpp-python", "tgi", "ollama", "openai-compatible"]

#: What each kind of server is called in messages.
KIND_NAMES: dict[str, str] = {
    "gptdesk": "GPT Desk",
    "vllm": "vLLM",
    "llama.cpp": "llama.cpp server",
    "llama-cpp-python": "llama-cpp-python server",
    "tgi": "text-generation-inference (TGI)",
    "ollama": "Ollama",
    "openai-compatible": "OpenAI-compatible server",
}

_ALL_SETTINGS = frozenset(GenerationSettings.model_fields)
_NO_BEAMS_OR_MINIMUM = frozenset(
    {"num_beams", "no_repeat_ngram_size", "num_return_sequences", "min_new_tokens", "min_length"}
)
#: The settings each kind of server applies through /v1/completions (docs/remote.md has the table).
#: Lengths given as max_length/min_length are turned into max_tokens/min_tokens before sending.
#: Banned words (bad_words) are read by GPT Desk and vLLM (SamplingParams.bad_words, the same semantics).
HONOURED: dict[str, frozenset[str]] = {
    "gptdesk": _ALL_SETTINGS,
    "vllm": _ALL_SETTINGS - {"num_beams", "no_repeat_ngram_size"},
    "llama.cpp": _ALL_SETTINGS - _NO_BEAMS_OR_MINIMUM - {"bad_words"},
    # llama-cpp-python reads min_tokens (recent versions) but answers one choice whatever n is.
    "llama-cpp-python": _ALL_SETTINGS - {"num_beams", "no_repeat_ngram_size", "num_return_sequences", "bad_words"},
    "tgi": _ALL_SETTINGS - _NO_BEAMS_OR_MINIMUM - {"top_k", "bad_words"},
    "ollama": _ALL_SETTINGS - _NO_BEAMS_OR_MINIMUM - {"top_k", "repetition_penalty", "bad_words"},
}

#: What /v1/models says in owned_by, for the servers whose answer names them.
OWNERS: dict[str, ServerKind] = {
    "gptdesk": "gptdesk",
    "vllm": "vllm",
    "llamacpp": "llama.cpp",
    "me": "llama-cpp-python",  # llama_cpp/server/app.py: every model is owned_by "me"
    "library": "ollama",  # Ollama's own library models (a user's models name the user instead)
}

#: Where each server splits a text into tokens, and the body it reads there (None: it has no such endpoint).
TOKENIZE: dict[str, str] = {
    "gptdesk": "/v1/tokenize",
    "vllm": "/tokenize",
    "llama.cpp": "/tokenize",
    "llama-cpp-python": "/extras/tokenize",
    "tgi": "/tokenize",
}

#: Settings GPT Desk sends beyond the OpenAI completions API (temperature, top_p, n, stop, seed… are in it).
BEYOND_OPENAI = ("top_k", "num_beams", "repetition_penalty", "no_repeat_ngram_size", "min_tokens", "bad_words")


def active_settings(settings: GenerationSettings) -> dict[str, object]:
    """The settings that change the output from plain sampling (the ones a server may fail to apply)."""
    active: dict[str, object] = {}
    if settings.do_sample:
        if settings.temperature != 1.0:
            active["temperature"] = settings.temperature
        if settings.top_k != 0:
            active["top_k"] = settings.top_k
        if settings.top_p != 1.0:
            active["top_p"] = settings.top_p
    else:
        active["do_sample"] = False
    if settings.num_beams > 1:
        active["num_beams"] = settings.num_beams
    if settings.num_return_sequences > 1:
        active["num_return_sequences"] = settings.num_return_sequences
    if settings.repetition_penalty != 1.0:
        active["repetition_penalty"] = settings.repetition_penalty
    if settings.no_repeat_ngram_size > 0:
        active["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
    for name in ("min_new_tokens", "min_length"):
        value = getattr(settings, name)
        if value:
            active[name] = value
    if settings.stop:
        active["stop"] = settings.stop
    if settings.bad_words:
        active["bad_words"] = settings.bad_words
    return active


def server_defaults_left(settings: GenerationSettings, body: dict[str, Any]) -> list[str]:
    """What an unknown server decides for itself here: the knobs that change the text which the body does not set.

    A repetition penalty changes even greedy decoding; top_k and min_p only a sampled text. The names
    are GPT Desk's, with what GPT Desk would use, so the user sees what the local run does instead.
    """
    left = []
    if "repetition_penalty" not in body:
        left.append(f"repetition_penalty (GPT Desk: {settings.repetition_penalty:g})")
    if settings.do_sample:
        if "top_k" not in body:
            left.append("top_k (GPT Desk: 0, off)")
        left.append("min_p (GPT Desk: off)")
    return left


def completion_body(
    settings: GenerationSettings,
    *,
    prompt: str,
    model: str,
    seed: int,
    min_new: int,
    max_new: int,
    top_alternatives: int,
    kind: ServerKind = "openai-compatible",
) -> dict[str, Any]:
    """The /v1/completions body for these settings, in the names this kind of server reads.

    Greedy decoding is temperature 0, as in the OpenAI API. A recognised server is sent explicit values for
    every sampling knob it reads, neutral ones included (repeat penalty 1, top_k off, min_p 0), because its
    own defaults are not neutral (llama-cpp-python: repeat_penalty 1.1, top_k 40, min_p 0.05). A server GPT
    Desk does not know is sent GPT Desk's extra knobs only when they change anything, so a strict server
    never sees an unknown field it need not.
    """
    honoured = HONOURED.get(kind, _ALL_SETTINGS)
    active = active_settings(settings)
    sampling = settings.do_sample
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_new,
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": seed,
        "logprobs": top_alternatives,
    }
    if sampling:
        body["temperature"] = settings.temperature
        if kind != "tgi" or settings.top_p < 1.0:  # TGI refuses top_p = 1 (it wants 0 < top_p < 1)
            body["top_p"] = settings.top_p
    else:
        body["temperature"] = 0
    if settings.num_return_sequences > 1 and "num_return_sequences" in honoured:
        body["n"] = settings.num_return_sequences
    penalty = settings.repetition_penalty
    top_k = settings.top_k if sampling else 0
    if kind in ("llama.cpp", "llama-cpp-python"):
        # llama.cpp's names; top_k 0 and min_p 0 turn those samplers off.
        body.update(repeat_penalty=penalty, top_k=top_k, min_p=0.0)
        if kind == "llama.cpp":
            # llama-server's defaults come from its command line (--repeat-penalty, --dry-multiplier…):
            # every sampler that can change the text is set here.
            body.update(
                typical_p=1.0,
                presence_penalty=0.0,
                frequency_penalty=0.0,
                dry_multiplier=0.0,
                xtc_probability=0.0,
                mirostat=0,
            )
    elif kind == "vllm":
        # vLLM takes its defaults from the model's generation_config.json unless told; -1 is top_k off.
        body.update(repetition_penalty=penalty, top_k=top_k if top_k > 0 else -1, min_p=0.0)
    elif kind == "tgi":
        body["repetition_penalty"] = penalty
    elif kind != "ollama":  # GPT Desk and unknown servers: only what differs from plain sampling
        for field in ("top_k", "repetition_penalty"):
            if field in active and field in honoured:
                body[field] = active[field]
    for field in ("num_beams", "no_repeat_ngram_size"):
        if field in active and field in honoured:
            body[field] = active[field]
    if min_new > 0 and "min_new_tokens" in honoured:
        body["min_tokens"] = min_new
    if settings.stop:
        body["stop"] = list(settings.stop)
    if settings.bad_words and "bad_words" in honoured:
        body["bad_words"] = list(settings.bad_words)
    if kind in ("gptdesk", "vllm"):
        body["return_token_ids"] = True
    return body


def tokenize_body(kind: ServerKind, text: str, model: str) -> dict[str, Any]:
    """The body of this kind's tokenize request (TOKENIZE names the path)."""
    if kind == "gptdesk":
        return {"text": text, "model": model}
    if kind == "vllm":
        return {"model": model, "prompt": text, "add_special_tokens": False, "return_token_strs": True}
    if kind == "llama.cpp":
        return {"content": text, "add_special": False, "with_pieces": True}
    if kind == "llama-cpp-python":
        return {"input": text, "model": model}
    return {"inputs": text}  # TGI


def token_ids(data: Any) -> list[int]:
    """The ids of any tokenize answer GPT Desk knows (with pieces or without)."""
    tokens = data if isinstance(data, list) else data["tokens"]
    return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]


def pieces(data: Any) -> list[TokenPiece]:
    """Token pieces from GPT Desk's, llama.cpp's ({id, piece}), TGI's ([{id, text}]) or vLLM's answer."""
    if isinstance(data, list):  # TGI: a bare list of {id, text, start, stop}
        return [TokenPiece(int(t["id"]), str(t.get("text", ""))) for t in data]
    tokens = data["tokens"]
    if tokens and isinstance(tokens[0], dict):
        out = []
        for t in tokens:
            piece = t.get("piece", "")
            if isinstance(piece, list):  # llama.cpp gives the bytes of a piece that is not valid UTF-8
                piece = _readable_bytes(bytes(piece))
            out.append(TokenPiece(int(t["id"]), str(piece)))
        return out
    strs = data.get("token_strs") or [None] * len(tokens)
    return [
        TokenPiece(int(i), _readable_symbol(s) if isinstance(s, str) else "") for i, s in zip(tokens, strs, strict=True)
    ]


def _readable_bytes(raw: bytes) -> str:
    """The same display of split UTF-8 characters as local tokens give."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _mixed(raw)


def _readable_symbol(symbol: str) -> str:
    """A byte-level BPE symbol ('Ġмос' style, as vLLM's token_strs give it) as readable text."""
    decoder = _byte_decoder()
    if all(ch in decoder for ch in symbol):
        return _readable_bytes(bytes(decoder[ch] for ch in symbol))
    return symbol


def shown(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def repeated_ngram(events: list[TokenEvent], size: int) -> str | None:
    """The text of the first run of `size` tokens that occurs twice in `events` (overlaps count), or None.

    Tokens are told apart by id where the server gives ids, else by their text; a server that sends
    several tokens per chunk makes this see fewer, longer "tokens", so it finds fewer repeats, never more.
    """
    real = [e for e in events if e.token_id >= 0 or e.piece]
    units = [e.token_id if e.token_id >= 0 else e.piece for e in real]
    seen: set[tuple[object, ...]] = set()
    for start in range(len(units) - size + 1):
        gram = tuple(units[start : start + size])
        if gram in seen:
            return "".join(e.piece for e in real[start : start + size])
        seen.add(gram)
    return None


# -- the stream -------------------------------------------------------------------------------------------


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(event name, data) of each server-sent event; comments (keep-alives) are skipped."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if data:
        yield name, "\n".join(data)


def decode_chunk(data: str, root: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise UnsupportedModelError(
            Text(
                f"The server at {root} sent a stream event that is not a JSON object ({data[:80]!r}). It does not "
                "speak the OpenAI completions protocol as GPT Desk expects.",
                f"Сервер {root} прислал событие потока, которое не является объектом JSON ({data[:80]!r}). Он не "
                "следует протоколу OpenAI completions так, как ожидает GPT Desk.",
            )
        )
    return chunk


def finish_reason(reason: str, stop_reason: object, kind: ServerKind, settings: GenerationSettings) -> FinishReason:
    if reason == "length":
        return "length"
    if reason in ("cancelled", "abort"):
        return "cancelled"
    if reason == "eos_token":  # TGI
        return "eos"
    if reason == "stop_sequence":  # TGI
        return "stop"
    if isinstance(stop_reason, str):
        return "stop"
    if stop_reason is not None or kind in ("gptdesk", "vllm"):
        return "eos"  # vLLM and GPT Desk name the stop string when one matched; otherwise it was end of text
    return "stop" if settings.stop else "eos"


class StreamState:
    """Collects a streamed completion's choices into token events and the final Finished.

    `prompt_tokens` stays None until the server reports usage: a count it did not send is unknown, not 0.
    """

    def __init__(self, n: int, settings: GenerationSettings, kind: ServerKind, seed: int) -> None:
        self.settings = settings
        self.kind = kind
        self.seed = seed
        self.texts: list[list[str]] = [[] for _ in range(n)]
        self.events: list[list[TokenEvent]] = [[] for _ in range(n)]
        self.reasons: list[FinishReason | None] = [None] * n
        self.stops: dict[int, str] = {}  # the stop string a server named (vLLM's and GPT Desk's stop_reason)
        self.counts = [0] * n
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.truncated = 0

    def _grow(self, index: int) -> None:
        while len(self.texts) <= index:
            self.texts.append([])
            self.events.append([])
            self.reasons.append(None)
            self.counts.append(0)

    def feed(self, chunk: dict[str, Any]) -> Iterator[StreamEvent]:
        for notice in chunk.get("notices") or []:
            if isinstance(notice, dict) and notice.get("code") != "settings_warning":
                en, ru = (
                    str(notice.get("en", notice.get("message", ""))),
                    str(notice.get("ru", notice.get("message", ""))),
                )
                yield Notice(str(notice.get("code", "server_notice")), Text(en, ru))
        if isinstance(chunk.get("seed"), int):
            self.seed = chunk["seed"]
        if isinstance(chunk.get("prompt_truncated_tokens"), int):
            self.truncated = max(self.truncated, chunk["prompt_truncated_tokens"])
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("prompt_tokens"), int):
                self.prompt_tokens = usage["prompt_tokens"]
            if isinstance(usage.get("completion_tokens"), int):
                self.completion_tokens = usage["completion_tokens"]
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                yield from self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> Iterator[TokenEvent]:
        index = int(choice.get("index") or 0)
        self._grow(index)
        text = str(choice.get("text") or "")
        logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
        assert isinstance(logprobs, dict)
        tokens = list(logprobs.get("tokens") or [])
        token_logprobs = list(logprobs.get("token_logprobs") or [])
        tops = list(logprobs.get("top_logprobs") or [])
        alternatives = list(logprobs.get("top_alternatives") or [])
        ids = [int(i) for i in choice.get("token_ids") or []]
        count = max(len(tokens), len(ids))
        if count == 0 and text:
            count = 1  # a server that gives neither ids nor logprobs: one chunk stands for one token
            tokens = [text]
        for k in range(count):
            event = TokenEvent(
                text=text if k == count - 1 else "",
                token_id=ids[k] if k < len(ids) else -1,
                piece=str(tokens[k]) if k < len(tokens) else "",
                logprob=_float(token_logprobs[k]) if k < len(token_logprobs) else None,
                alternatives=_alternatives(
                    alternatives[k] if k < len(alternatives) else None, tops[k] if k < len(tops) else None
                ),
                sequence=index,
            )
            self.events[index].append(event)
            yield event
        self.counts[index] += count
        self.texts[index].append(text)
        reason = choice.get("finish_reason")
        if reason:
            self.reasons[index] = finish_reason(str(reason), choice.get("stop_reason"), self.kind, self.settings)
            stop_reason = choice.get("stop_reason")
            if isinstance(stop_reason, str):
                self.stops[index] = stop_reason

    def finished(self, *, cancelled: bool, timings: Timings, gen_start: float) -> Finished:
        """The result; a prompt length still unknown is 0 in Finished (which every prompt token count exceeds)."""
        reasons: list[FinishReason] = [
            r if r is not None else ("cancelled" if cancelled else "length") for r in self.reasons
        ]
        counts = list(self.counts)
        if len(counts) == 1 and self.completion_tokens is not None:
            counts = [self.completion_tokens]
        # Timings mean the same on every engine: tokens of all sequences together (base.Timings).
        timings.generated_tokens = sum(counts)
        timings.sequences = max(1, sum(1 for c in counts if c > 0))
        if not timings.total:
            timings.total = time.perf_counter() - gen_start
        return Finished(
            texts=["".join(parts) for parts in self.texts],
            finish_reasons=reasons,
            prompt_tokens=self.prompt_tokens or 0,
            generated_tokens=counts,
            seed=self.seed,
            timings=timings,
            prompt_truncated_tokens=self.truncated,
            tokens=self.events,
            stop_strings=[self.stops.get(i) for i in range(len(reasons))],
        )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _alternatives(with_ids: object, top: object) -> tuple[Alternative, ...]:
    """A token's alternatives: GPT Desk's list with ids, else OpenAI's {piece: logprob} (ids unknown, -1)."""
    if isinstance(with_ids, list):
        return tuple(
            Alternative(int(a["id"]), str(a["piece"]), float(a["logprob"])) for a in with_ids if isinstance(a, dict)
        )
    if isinstance(top, dict):
        ranked = sorted(((str(k), float(v)) for k, v in top.items() if _float(v) is not None), key=lambda kv: -kv[1])
        return tuple(Alternative(-1, piece, logprob) for piece, logprob in ranked)
    return ()
