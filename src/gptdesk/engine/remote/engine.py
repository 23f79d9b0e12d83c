"""A remote engine: any OpenAI-compatible completions server (GPT Desk, vLLM, TGI, llama.cpp server, Ollama)."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from gptdesk import __version__
from gptdesk import errors as _errors
from gptdesk.engine.base import (
    Alternative,
    Capabilities,
    Finished,
    FinishReason,
    ModelInfo,
    Notice,
    StreamEvent,
    Timings,
    TokenEvent,
    TokenPiece,
)
from gptdesk.errors import (
    EmptyPromptError,
    EngineError,
    GptDeskError,
    InvalidInputError,
    ModelNotFoundError,
    NetworkError,
    SettingIssue,
    SettingsError,
    UnsupportedModelError,
)
from gptdesk.i18n import Text, current_language
from gptdesk.models.catalog import find_entry
from gptdesk.models.cost import CostEstimate
from gptdesk.models.shape import ModelShape
from gptdesk.settings.generation import GenerationSettings

ServerKind = Literal["gptdesk", "vllm", "llama.cpp", "ollama", "openai-compatible"]

#: What each kind of server is called in messages.
KIND_NAMES: dict[str, str] = {
    "gptdesk": "GPT Desk",
    "vllm": "vLLM",
    "llama.cpp": "llama.cpp server",
    "ollama": "Ollama",
    "openai-compatible": "OpenAI-compatible server",
}

_ALL_SETTINGS = frozenset(GenerationSettings.model_fields)
_NO_BEAMS_OR_MINIMUM = frozenset(
    {"num_beams", "no_repeat_ngram_size", "num_return_sequences", "min_new_tokens", "min_length"}
)
#: The settings each kind of server applies through /v1/completions (docs/remote.md has the table).
#: Lengths given as max_length/min_length are turned into max_tokens/min_tokens before sending.
HONOURED: dict[str, frozenset[str]] = {
    "gptdesk": _ALL_SETTINGS,
    "vllm": _ALL_SETTINGS - {"num_beams", "no_repeat_ngram_size"},
    "llama.cpp": _ALL_SETTINGS - _NO_BEAMS_OR_MINIMUM,
    "ollama": _ALL_SETTINGS - _NO_BEAMS_OR_MINIMUM - {"top_k", "repetition_penalty"},
}

#: What /v1/models says in owned_by, for each kind of server.
_OWNERS: dict[str, ServerKind] = {"gptdesk": "gptdesk", "vllm": "vllm", "llamacpp": "llama.cpp", "library": "ollama"}


def normalize_base_url(base_url: str) -> str:
    """The server's root URL: 'http://host:8000', given that, '…/v1' or '…/v1/'."""
    text = base_url.strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise InvalidInputError(
            Text(
                f"base_url = {base_url!r} is not an http(s) address. Give the server's address with its port, "
                "e.g. http://127.0.0.1:8000 (gptdesk serve) or http://gpu-server:8000 (vllm serve).",
                f"base_url = {base_url!r} — не адрес http(s). Укажите адрес сервера с портом, например "
                "http://127.0.0.1:8000 (gptdesk serve) или http://gpu-server:8000 (vllm serve).",
            )
        )
    root = text.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root


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
    return active


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
    """The /v1/completions body for these settings (the inverse of the server's settings_from_request).

    Greedy decoding is temperature 0, as in the OpenAI API. GPT Desk's extra knobs are sent only when
    they change anything and the server applies them, so a strict server never sees an unknown field.
    """
    honoured = HONOURED.get(kind, _ALL_SETTINGS)
    active = active_settings(settings)
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_new,
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": seed,
        "logprobs": top_alternatives,
    }
    if settings.do_sample:
        body["temperature"] = settings.temperature
        body["top_p"] = settings.top_p
    else:
        body["temperature"] = 0
    if settings.num_return_sequences > 1 and "num_return_sequences" in honoured:
        body["n"] = settings.num_return_sequences
    extras = {
        "top_k": "top_k",
        "num_beams": "num_beams",
        "repetition_penalty": "repetition_penalty",
        "no_repeat_ngram_size": "no_repeat_ngram_size",
    }
    for field, param in extras.items():
        if field in active and field in honoured:
            body[param] = active[field]
    if min_new > 0 and "min_new_tokens" in honoured:
        body["min_tokens"] = min_new
    if settings.stop:
        body["stop"] = list(settings.stop)
    if kind == "llama.cpp" and "repetition_penalty" in active:
        body["repeat_penalty"] = settings.repetition_penalty  # llama.cpp's own name for it
    if kind in ("gptdesk", "vllm"):
        body["return_token_ids"] = True
    return body


def connect_remote(
    name: object = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    device: str = "auto",
    dtype: str = "auto",
) -> RemoteEngine:
    """load_engine(engine="remote"): `name` is the remote model; device and dtype belong to the server."""
    if not base_url:
        raise InvalidInputError(
            Text(
                "engine = 'remote' needs the server's address: give base_url (on the command line, --remote URL), "
                "e.g. http://127.0.0.1:8000.",
                "Для engine = «remote» нужен адрес сервера: укажите base_url (в командной строке --remote URL), "
                "например http://127.0.0.1:8000.",
            )
        )
    model = str(name) if name is not None and str(name).strip() else None
    return RemoteEngine.connect(base_url, model=model, api_key=api_key, timeout=timeout)


class RemoteEngine:
    """A model on an OpenAI-compatible server, driven over HTTP; implements the Engine protocol.

    Token events carry the server's token ids where it gives them (GPT Desk, recent vLLM), and -1
    where it does not. Heavy only in that it holds a connection pool: use as a context manager.
    """

    name = "remote"

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        model: str,
        info: ModelInfo,
        kind: ServerKind,
        timeout: float,
        owned_by: str = "",
    ) -> None:
        self._client: httpx.Client | None = client
        self.base_url = base_url
        self.model = model
        self.info = info
        self.kind: ServerKind = kind
        self.timeout = timeout
        self.owned_by = owned_by  # what /v1/models said, to name an unknown server in notices

    #: The model runs elsewhere: no shape to estimate with (Engine.shape).
    shape: ModelShape | None = None

    @property
    def capabilities(self) -> Capabilities:
        # Beam search and batching are the server's business (a GPT Desk server runs beams); logprobs
        # come where the server gives them.
        return Capabilities(local=False, beam_search=self.kind == "gptdesk", batched=False, logprobs=True)

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate | None:
        """The server decides what it can afford; only an empty prompt is refused here."""
        if not prompt.strip():
            raise EmptyPromptError(
                Text(
                    "The prompt is empty. Type the beginning of a text for the model to continue.",
                    "Затравка пуста. Введите начало текста, которое модель продолжит.",
                )
            )
        return None

    # -- connecting ------------------------------------------------------------------------------------

    @classmethod
    def connect(
        cls, base_url: str, *, model: str | None = None, api_key: str | None = None, timeout: float = 60.0
    ) -> RemoteEngine:
        """Connect to a server, check GET /v1/models and pick `model` (None: the first it serves)."""
        root = normalize_base_url(base_url)
        if not timeout > 0:
            raise InvalidInputError(
                Text(
                    f"timeout = {timeout} must be a positive number of seconds (60 is the default).",
                    f"timeout = {timeout} — должно быть положительное число секунд (по умолчанию 60).",
                )
            )
        headers = {"User-Agent": f"gptdesk/{__version__}", "Accept-Language": current_language()}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        local = httpx.URL(root).host in ("127.0.0.1", "localhost", "::1")
        client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            trust_env=not local,  # a system proxy must not catch requests to this computer
        )
        try:
            return cls.connect_client(client, root, model=model, timeout=timeout)
        except BaseException:
            client.close()
            raise

    @classmethod
    def connect_client(
        cls, client: httpx.Client, base_url: str, *, model: str | None = None, timeout: float = 60.0
    ) -> RemoteEngine:
        """Like connect, over a client the caller made (its own transport, headers or TLS settings)."""
        root = normalize_base_url(base_url)
        response = _send(client, "GET", f"{root}/v1/models", root, timeout)
        if response.status_code in (404, 405):
            raise UnsupportedModelError(
                Text(
                    f"{root} does not look like an OpenAI-compatible server: GET /v1/models answered "
                    f"{response.status_code}. Give the server's base address (e.g. http://host:8000), and check that "
                    "the program there serves the OpenAI API.",
                    f"{root} не похож на сервер, совместимый с OpenAI: GET /v1/models ответил кодом "
                    f"{response.status_code}. Укажите базовый адрес сервера (например, http://host:8000) и "
                    "проверьте, что программа там предоставляет API OpenAI.",
                )
            )
        if response.status_code >= 400:
            raise _status_error(response.status_code, response.content, root, "GET /v1/models")
        cards = _model_cards(response, root)
        if not cards:
            raise ModelNotFoundError(
                Text(
                    f"The server at {root} lists no models (GET /v1/models is empty). Load a model on it first, "
                    "e.g. `vllm serve ai-forever/rugpt3large_based_on_gpt2` or `gptdesk serve`.",
                    f"Сервер {root} не показывает ни одной модели (GET /v1/models пуст). Сначала загрузите на "
                    "нём модель, например `vllm serve ai-forever/rugpt3large_based_on_gpt2` или `gptdesk serve`.",
                )
            )
        card = cards[0] if model is None else _pick(cards, model, root)
        owned_by = str(card.get("owned_by", ""))
        kind = _OWNERS.get(owned_by.lower(), "openai-compatible")
        info = _model_info(card, root)
        return cls(client, root, str(card["id"]), info, kind, timeout, owned_by)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server_name(self) -> str:
        return KIND_NAMES[self.kind]

    def _live_client(self) -> httpx.Client:
        if self._client is None:
            raise EngineError(Text("The remote engine is closed.", "Удалённый движок закрыт."))
        return self._client

    # -- tokens ----------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[TokenPiece]:
        """The server's own split of `text`: GPT Desk's /v1/tokenize, vLLM's or llama.cpp's /tokenize."""
        client = self._live_client()
        root = self.base_url
        body: dict[str, Any]
        if self.kind == "gptdesk":
            url, body = f"{root}/v1/tokenize", {"text": text, "model": self.model}
        elif self.kind == "vllm":
            url = f"{root}/tokenize"
            body = {"model": self.model, "prompt": text, "add_special_tokens": False, "return_token_strs": True}
        elif self.kind == "llama.cpp":
            url, body = f"{root}/tokenize", {"content": text, "add_special": False, "with_pieces": True}
        else:
            raise self._no_tokenizer()
        response = _send(client, "POST", url, root, self.timeout, json=body)
        if response.status_code in (404, 405):
            raise self._no_tokenizer()
        if response.status_code >= 400:
            raise _status_error(response.status_code, response.content, root, f"POST {url[len(root) :]}")
        try:
            data = response.json()
            return _pieces(data)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise UnsupportedModelError(
                Text(
                    f"The tokenizer answer of {root} cannot be read ({type(exc).__name__}: {exc}). The server may "
                    "be a version GPT Desk does not know; token views are unavailable with it.",
                    f"Ответ токенизатора {root} не читается ({type(exc).__name__}: {exc}). Возможно, это версия "
                    "сервера, которую GPT Desk не знает; просмотр токенов с ней недоступен.",
                )
            ) from None

    def _no_tokenizer(self) -> UnsupportedModelError:
        return UnsupportedModelError(
            Text(
                f"The {self.server_name} at {self.base_url} offers no tokenizer endpoint that GPT Desk knows, so "
                "token views and max_length/min_length cannot be used with it. GPT Desk (POST /v1/tokenize), "
                "vLLM and llama.cpp server (POST /tokenize) have one; elsewhere use max_new_tokens.",
                f"{self.server_name} по адресу {self.base_url} не предоставляет известного GPT Desk токенизатора, "
                "поэтому просмотр токенов и max_length/min_length с ним недоступны. Токенизатор есть у GPT Desk "
                "(POST /v1/tokenize), vLLM и llama.cpp server (POST /tokenize); в остальных случаях используйте "
                "max_new_tokens.",
            )
        )

    # -- generation ------------------------------------------------------------------------------------

    def _lengths(self, prompt: str, settings: GenerationSettings) -> tuple[int, int]:
        """(min_new, max_new); max_length and min_length count the prompt, which only the server can tokenize."""
        counts_prompt = (settings.max_new_tokens is None and settings.max_length is not None) or (
            settings.min_new_tokens is None and settings.min_length is not None
        )
        if not counts_prompt:
            return settings.resolve_lengths(0)
        try:
            prompt_tokens = len(self.tokenize(prompt))
        except UnsupportedModelError as exc:
            field = (
                "max_length" if settings.max_new_tokens is None and settings.max_length is not None else "min_length"
            )
            raise SettingsError(
                [
                    SettingIssue(
                        field,
                        Text(
                            f"{field} counts the prompt's tokens, which the {self.server_name} at {self.base_url} "
                            f"cannot count for GPT Desk. Use max_new_tokens / min_new_tokens instead.",
                            f"{field} считает токены затравки, а {self.server_name} по адресу {self.base_url} не "
                            f"умеет считать их для GPT Desk. Используйте вместо него max_new_tokens / "
                            f"min_new_tokens.",
                        ),
                    )
                ]
            ) from exc
        return settings.resolve_lengths(prompt_tokens)

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        """Yield notices, then tokens as the server streams them, then one Finished event.

        Setting `cancel` shuts the connection at once, which is how a server learns to stop.
        """
        client = self._live_client()
        if not prompt.strip():
            raise EmptyPromptError(
                Text(
                    "The prompt is empty. Type the beginning of a text for the model to continue, "
                    "e.g. «Москва — столица».",
                    "Затравка пуста. Введите начало текста, которое модель продолжит, например «Москва — столица».",
                )
            )
        if not 0 <= top_alternatives <= 20:
            raise InvalidInputError(
                Text(
                    f"top_alternatives = {top_alternatives}: OpenAI-compatible servers return 0–20 alternatives "
                    "per token. Ask for at most 20.",
                    f"top_alternatives = {top_alternatives}: серверы, совместимые с OpenAI, возвращают 0–20 "
                    "альтернатив на токен. Запросите не больше 20.",
                )
            )
        started = time.perf_counter()
        min_new, max_new = self._lengths(prompt, settings)
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        body = completion_body(
            settings,
            prompt=prompt,
            model=self.model,
            seed=seed,
            min_new=min_new,
            max_new=max_new,
            top_alternatives=top_alternatives,
            kind=self.kind,
        )
        yield from self._local_notices(settings, body)
        state = _StreamState(int(body.get("n", 1)), settings, self.kind, seed)
        user_cancel = cancel or threading.Event()
        if user_cancel.is_set():
            yield state.finished(cancelled=True, started=started)
            return
        watch = _CancelWatch(user_cancel)
        gen_start = time.perf_counter()
        state.timings.load_prompt = gen_start - started
        try:
            with client.stream("POST", f"{self.base_url}/v1/completions", json=body) as response:
                watch.attach(response)
                if response.status_code >= 400:
                    response.read()
                    raise _status_error(response.status_code, response.content, self.base_url, "POST /v1/completions")
                for event_name, data in _sse_events(response.iter_lines()):
                    if user_cancel.is_set():
                        break
                    if data.strip() == "[DONE]":
                        break
                    chunk = _decode_chunk(data, self.base_url)
                    if event_name == "error" or "error" in chunk:
                        raise _error_from_body(chunk, 500, self.base_url, "POST /v1/completions (stream)")
                    for event in state.feed(chunk):
                        if isinstance(event, TokenEvent) and state.timings.first_token is None:
                            state.timings.first_token = time.perf_counter() - gen_start
                        yield event
        except httpx.HTTPError as exc:
            if not user_cancel.is_set():
                raise _network_error(exc, self.base_url, self.timeout) from exc
        finally:
            watch.close()
        state.timings.total = time.perf_counter() - gen_start
        yield from self._unhonoured_notices(settings, body, state, cancelled=user_cancel.is_set())
        yield state.finished(cancelled=user_cancel.is_set(), started=gen_start)

    def _local_notices(self, settings: GenerationSettings, body: dict[str, Any]) -> Iterator[Notice]:
        for issue in settings.warnings():
            yield Notice("settings_warning", issue.text)
        honoured = HONOURED.get(self.kind)
        if honoured is None:
            sent = [f"{name} = {_shown(body[name])}" for name in BEYOND_OPENAI if name in body]
            if sent:
                listed = ", ".join(sent)
                said = f" (/v1/models says owned_by {self.owned_by!r})" if self.owned_by else ""
                said_ru = f" (/v1/models сообщает owned_by {self.owned_by!r})" if self.owned_by else ""
                yield Notice(
                    "remote_unverified",
                    Text(
                        f"The server at {self.base_url} is not one GPT Desk knows{said}, so it may ignore settings "
                        f"beyond the OpenAI completions API; sent: {listed}. GPT Desk cannot tell whether they were "
                        "applied (it says so below where the text shows they were not). GPT Desk, vLLM, llama.cpp "
                        "server and Ollama are recognised; see docs/remote.md.",
                        f"Сервер {self.base_url} незнаком GPT Desk{said_ru}, поэтому он может не применять "
                        f"параметры сверх API OpenAI completions; отправлены: {listed}. GPT Desk не может узнать, "
                        "применены ли они (и скажет ниже, если текст покажет, что нет). GPT Desk распознаёт "
                        "GPT Desk, vLLM, llama.cpp server и Ollama; см. docs/remote.md.",
                    ),
                )
            return
        ignored = [f"{name} = {value}" for name, value in active_settings(settings).items() if name not in honoured]
        if ignored:
            listed = ", ".join(ignored)
            yield Notice(
                "remote_ignores",
                Text(
                    f"The {self.server_name} at {self.base_url} does not apply {listed}: the text is generated "
                    "without it (see docs/remote.md for what each server honours).",
                    f"{self.server_name} по адресу {self.base_url} не применяет {listed}: текст генерируется без "
                    "этого (что учитывает каждый сервер, см. docs/remote.md).",
                ),
            )

    def _unhonoured_notices(
        self, settings: GenerationSettings, body: dict[str, Any], state: _StreamState, *, cancelled: bool
    ) -> Iterator[Notice]:
        """Where the text itself shows that the server did not apply a setting it was sent, say so."""
        server = f"the {self.server_name} at {self.base_url}"
        server_ru = f"{self.server_name} по адресу {self.base_url}"
        asked = int(body.get("n", 1))
        got = sum(1 for index in range(len(state.texts)) if state.events[index] or state.reasons[index] is not None)
        if asked > 1 and got < asked and not cancelled:
            yield Notice(
                "remote_fewer_choices",
                Text(
                    f"{asked} texts were asked for (num_return_sequences, sent as n = {asked}), but {server} "
                    f"returned {got}: it does not generate several variants at once. Generate again for more.",
                    f"Запрошено текстов: {asked} (num_return_sequences, отправлено как n = {asked}), а "
                    f"{server_ru} вернул {got}: он не генерирует несколько вариантов сразу. Запустите генерацию "
                    "ещё раз, чтобы получить другие.",
                ),
            )
        size = body.get("no_repeat_ngram_size")
        if isinstance(size, int) and size > 0:
            for index, events in enumerate(state.events):
                repeat = repeated_ngram(events, size)
                if repeat is None:
                    continue
                which = f" (text {index + 1})" if len(state.events) > 1 else ""
                which_ru = f" (текст {index + 1})" if len(state.events) > 1 else ""
                yield Notice(
                    "remote_not_honoured",
                    Text(
                        f"The text{which} repeats «{repeat}» although no_repeat_ngram_size = {size} forbids any "
                        f"{size} tokens in a row from occurring twice: {server} did not apply it.",
                        f"Текст{which_ru} повторяет «{repeat}», хотя no_repeat_ngram_size = {size} запрещает "
                        f"повторять любые {size} токена подряд: {server_ru} его не применил.",
                    ),
                )
                break


#: Settings GPT Desk sends beyond the OpenAI completions API (temperature, top_p, n, stop, seed… are in it).
BEYOND_OPENAI = ("top_k", "num_beams", "repetition_penalty", "no_repeat_ngram_size", "min_tokens")


def _shown(value: object) -> str:
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


# -- streaming -------------------------------------------------------------------------------------------


class _CancelWatch:
    """Shuts the stream's socket as soon as `cancel` is set, so a read waiting on a quiet server ends at once."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._watch, name="gptdesk-remote-cancel", daemon=True)
        self._thread.start()

    def attach(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._sock = sock if isinstance(sock, socket.socket) else None
        if self._cancel.is_set():
            self._shutdown()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._cancel.wait(0.05):
                self._shutdown()
                return

    def _shutdown(self) -> None:
        with self._lock:
            if self._sock is not None and not self._done.is_set():
                with contextlib.suppress(OSError):  # already closed by the other side
                    self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._done.set()
            self._sock = None


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
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


def _decode_chunk(data: str, root: str) -> dict[str, Any]:
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


def _finish_reason(reason: str, stop_reason: object, kind: ServerKind, settings: GenerationSettings) -> FinishReason:
    if reason == "length":
        return "length"
    if reason in ("cancelled", "abort"):
        return "cancelled"
    if isinstance(stop_reason, str):
        return "stop"
    if stop_reason is not None or kind in ("gptdesk", "vllm"):
        return "eos"  # vLLM and GPT Desk name the stop string when one matched; otherwise it was end of text
    return "stop" if settings.stop else "eos"


class _StreamState:
    """Collects a streamed completion's choices into token events and the final Finished."""

    def __init__(self, n: int, settings: GenerationSettings, kind: ServerKind, seed: int) -> None:
        self.settings = settings
        self.kind = kind
        self.seed = seed
        self.texts: list[list[str]] = [[] for _ in range(n)]
        self.events: list[list[TokenEvent]] = [[] for _ in range(n)]
        self.reasons: list[FinishReason | None] = [None] * n
        self.counts = [0] * n
        self.prompt_tokens = 0
        self.completion_tokens: int | None = None
        self.truncated = 0
        self.timings = Timings()

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
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
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
            self.reasons[index] = _finish_reason(str(reason), choice.get("stop_reason"), self.kind, self.settings)

    def finished(self, *, cancelled: bool, started: float) -> Finished:
        reasons: list[FinishReason] = [
            r if r is not None else ("cancelled" if cancelled else "length") for r in self.reasons
        ]
        counts = list(self.counts)
        if len(counts) == 1 and self.completion_tokens is not None:
            counts = [self.completion_tokens]
        # Timings mean the same on every engine: tokens of all sequences together (base.Timings).
        self.timings.generated_tokens = sum(counts)
        self.timings.sequences = max(1, sum(1 for c in counts if c > 0))
        if not self.timings.total:
            self.timings.total = time.perf_counter() - started
        return Finished(
            texts=["".join(parts) for parts in self.texts],
            finish_reasons=reasons,
            prompt_tokens=self.prompt_tokens,
            generated_tokens=counts,
            seed=self.seed,
            timings=self.timings,
            prompt_truncated_tokens=self.truncated,
            tokens=self.events,
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


# -- HTTP and errors -------------------------------------------------------------------------------------


def _send(client: httpx.Client, method: str, url: str, root: str, timeout: float, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise _network_error(exc, root, timeout) from exc


def _network_error(exc: httpx.HTTPError, root: str, timeout: float) -> GptDeskError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return NetworkError(
            Text(
                f"Connecting to {root} timed out: the server may be down, or a firewall drops the connection. "
                "Check the address and that the server is running.",
                f"Подключение к {root} не удалось за отведённое время: сервер, возможно, выключен или соединение "
                "блокирует брандмауэр. Проверьте адрес и то, что сервер запущен.",
            )
        )
    if isinstance(exc, httpx.TimeoutException):
        return NetworkError(
            Text(
                f"The server at {root} did not answer within {timeout:g} s (it may be busy, or still loading the "
                "model). Try again, or connect with a longer timeout.",
                f"Сервер {root} не ответил за {timeout:g} с (возможно, он занят или ещё загружает модель). "
                "Повторите попытку или подключитесь с большим таймаутом.",
            )
        )
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(
            Text(
                f"Cannot connect to {root} ({reason}). Check that the server is running (`gptdesk serve`, "
                "`vllm serve …`) and that the address and port are right.",
                f"Не удаётся подключиться к {root} ({reason}). Проверьте, что сервер запущен (`gptdesk serve`, "
                "`vllm serve …`), а адрес и порт указаны верно.",
            )
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidInputError(
            Text(
                f"{root} is not a usable address ({reason}). Give it as http://host:port.",
                f"{root} — непригодный адрес ({reason}). Укажите его в виде http://host:port.",
            )
        )
    return NetworkError(
        Text(
            f"The connection to {root} broke off ({type(exc).__name__}: {reason}). The server may have stopped or "
            "restarted; try again.",
            f"Соединение с {root} прервалось ({type(exc).__name__}: {reason}). Возможно, сервер остановился или "
            "перезапустился; повторите попытку.",
        )
    )


def _status_error(status: int, content: bytes, root: str, what: str) -> GptDeskError:
    try:
        data = json.loads(content)
    except ValueError:
        data = content.decode("utf-8", "replace").strip()[:300]
    return _error_from_body(data, status, root, what)


def _error_from_body(data: object, status: int, root: str, what: str) -> GptDeskError:
    """A typed error from an error body: GPT Desk's own (both languages) or another server's message."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("gptdesk"), dict):
        rebuilt = _rebuild(error["gptdesk"], status, root, what)
        if rebuilt is not None:
            return rebuilt
    message = ""
    if isinstance(error, dict):
        message = str(error.get("message") or "")
    elif isinstance(error, str):
        message = error
    if not message and isinstance(data, dict):
        message = str(data.get("message") or data.get("detail") or "")
    if not message:
        message = str(data)[:300] if data else "no details"
    return _by_status(status, Text(message, message), root, what)


def _rebuild(extra: dict[str, Any], status: int, root: str, what: str) -> GptDeskError | None:
    """The same typed error a GPT Desk server raised, from the "gptdesk" member of its error body."""
    text = Text(str(extra.get("en", "")), str(extra.get("ru", "")))
    cls = getattr(_errors, str(extra.get("class", "")), None)
    issues = extra.get("issues")
    if isinstance(issues, list) and issues:
        return SettingsError(
            [
                SettingIssue(
                    str(i.get("field")), Text(str(i.get("en")), str(i.get("ru"))), str(i.get("level", "error"))
                )
                for i in issues
                if isinstance(i, dict)
            ]
        )
    if isinstance(cls, type) and issubclass(cls, GptDeskError) and cls is not SettingsError:
        try:
            return cls(text)
        except TypeError:
            return None
    if text.en:  # a server-side error (API key, queue full): typed by its status, its own text kept
        return _by_status(status, text, root, what, hint=False)
    return None


def _by_status(status: int, message: Text, root: str, what: str, *, hint: bool = True) -> GptDeskError:
    """Another server's (or a server-specific GPT Desk) error, typed by its HTTP status."""
    said = Text(
        f"The server at {root} answered {what} with {status}: {message.en}",
        f"Сервер {root} ответил на {what} кодом {status}: {message.ru}",
    )
    if status in (401, 403) and not hint:
        return InvalidInputError(said)
    if status in (401, 403):
        return InvalidInputError(
            said
            + Text(
                " Give the server's API key (gptdesk generate --api-key, or api_key=…).",
                " Укажите ключ API этого сервера (gptdesk generate --api-key или api_key=…).",
            )
        )
    if status == 404:
        return ModelNotFoundError(said)
    if status == 429 and not hint:
        return NetworkError(said)
    if status == 429:
        return NetworkError(said + Text(" Try again in a few seconds.", " Повторите через несколько секунд."))
    if 400 <= status < 500:
        return InvalidInputError(said)
    if status == 500:
        return EngineError(said)
    return NetworkError(said)


def _model_cards(response: httpx.Response, root: str) -> list[dict[str, Any]]:
    try:
        data = response.json()
        cards = [c for c in data["data"] if isinstance(c, dict) and "id" in c]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsupportedModelError(
            Text(
                f"{root} does not look like an OpenAI-compatible server: GET /v1/models did not return a model list "
                f"({type(exc).__name__}). Give the server's base address, e.g. http://host:8000.",
                f"{root} не похож на сервер, совместимый с OpenAI: GET /v1/models не вернул список моделей "
                f"({type(exc).__name__}). Укажите базовый адрес сервера, например http://host:8000.",
            )
        ) from None
    return cards


def _pick(cards: list[dict[str, Any]], model: str, root: str) -> dict[str, Any]:
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


def _model_info(card: dict[str, Any], root: str) -> ModelInfo:
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


def _pieces(data: Any) -> list[TokenPiece]:
    """Token pieces from GPT Desk's, llama.cpp's ({id, piece}) or vLLM's (tokens + token_strs) answer."""
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
    from gptdesk.engine.tokens import _mixed  # the same display of split UTF-8 characters as local tokens

    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _mixed(raw)


def _readable_symbol(symbol: str) -> str:
    """A byte-level BPE symbol ('Ġмос' style, as vLLM's token_strs give it) as readable text."""
    from gptdesk.engine.tokens import _byte_decoder

    decoder = _byte_decoder()
    if all(ch in decoder for ch in symbol):
        return _readable_bytes(bytes(decoder[ch] for ch in symbol))
    return symbol
