"""A remote engine: any OpenAI-compatible completions server (GPT Desk, vLLM, TGI, llama.cpp, Ollama…)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from gptdesk import __version__
from gptdesk.engine.base import (
    Capabilities,
    ModelInfo,
    Notice,
    StreamEvent,
    TokenEvent,
    TokenPiece,
)
from gptdesk.engine.core import Clock, choose_seed, prepare_prompt
from gptdesk.engine.remote.errors import (
    error_from_body,
    network_error,
    not_openai_compatible,
    send,
    status_error,
    unreadable_tokens,
)
from gptdesk.engine.remote.identify import Prober, identify, is_tgi, model_cards, model_info, pick, tgi_card
from gptdesk.engine.remote.wire import (
    BEYOND_OPENAI,
    HONOURED,
    KIND_NAMES,
    TOKENIZE,
    ServerKind,
    StreamState,
    active_settings,
    completion_body,
    decode_chunk,
    pieces,
    repeated_ngram,
    server_defaults_left,
    shown,
    sse_events,
    token_ids,
    tokenize_body,
)
from gptdesk.errors import (
    EngineError,
    GptDeskError,
    InvalidInputError,
    ModelNotFoundError,
    SettingIssue,
    SettingsError,
    UnsupportedModelError,
)
from gptdesk.i18n import Text, current_language
from gptdesk.models.cost import CostEstimate
from gptdesk.models.shape import ModelShape
from gptdesk.settings.generation import GenerationSettings

__all__ = [
    "KIND_NAMES",
    "RemoteEngine",
    "ServerKind",
    "completion_body",
    "connect_remote",
    "normalize_base_url",
    "repeated_ngram",
]


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


def refuse_empty(prompt: str, settings: GenerationSettings) -> None:
    """The core's prompt check (EmptyPromptError, with its message) before anything is sent."""
    if not prompt.strip():
        prepare_prompt(None, 0, prompt, settings)  # raises before it would tokenize


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
        refuse_empty(prompt, settings)
        return None

    def cost(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate | None:
        return None  # the server's memory is not here

    # -- connecting ------------------------------------------------------------------------------------

    @classmethod
    def connect(
        cls, base_url: str, *, model: str | None = None, api_key: str | None = None, timeout: float = 60.0
    ) -> RemoteEngine:
        """Connect to a server, check GET /v1/models, pick `model` (None: the first it serves) and recognise
        the server (identify.identify), so each is sent the parameter names it reads."""
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
        response = send(client, "GET", f"{root}/v1/models", root, timeout)
        prober = Prober(client, root, timeout)  # its budget starts now: a slow /v1/models does not eat it
        if response.status_code in (404, 405):
            info = prober.json("/info")  # TGI before 2.1 has no /v1/models
            if not is_tgi(info):
                raise not_openai_compatible(
                    root, Text(f"answered {response.status_code}", f"ответил кодом {response.status_code}")
                )
            cards = [tgi_card(info)]
        elif response.status_code >= 400:
            raise status_error(response.status_code, response.content, root, "GET /v1/models")
        else:
            cards = model_cards(response, root)
        if not cards:
            raise ModelNotFoundError(
                Text(
                    f"The server at {root} lists no models (GET /v1/models is empty). Load a model on it first, "
                    "e.g. `vllm serve ai-forever/rugpt3large_based_on_gpt2` or `gptdesk serve`.",
                    f"Сервер {root} не показывает ни одной модели (GET /v1/models пуст). Сначала загрузите на "
                    "нём модель, например `vllm serve ai-forever/rugpt3large_based_on_gpt2` или `gptdesk serve`.",
                )
            )
        card = cards[0] if model is None else pick(cards, model, root)
        kind = identify(prober, card)
        return cls(client, root, str(card["id"]), model_info(card, root), kind, timeout, str(card.get("owned_by", "")))

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
        """The server's own split of `text` (GPT Desk's /v1/tokenize; vLLM's, llama.cpp's and TGI's /tokenize)."""
        if self.kind == "llama-cpp-python":
            raise self._no_tokenizer(pieces_only=True)
        data = self._tokenize_request(text)
        try:
            return pieces(data)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise unreadable_tokens(self.base_url, exc) from None

    def count_tokens(self, text: str) -> int:
        """How many tokens the server's tokenizer makes of `text` (llama-cpp-python's /extras/tokenize too)."""
        data = self._tokenize_request(text)
        try:
            return len(token_ids(data))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise unreadable_tokens(self.base_url, exc) from None

    def _tokenize_request(self, text: str) -> Any:
        client = self._live_client()
        root = self.base_url
        path = TOKENIZE.get(self.kind)
        if path is None:
            raise self._no_tokenizer()
        body = tokenize_body(self.kind, text, self.model)
        response = send(client, "POST", f"{root}{path}", root, self.timeout, json=body)
        if response.status_code in (404, 405) and self.kind == "llama-cpp-python":
            path = "/tokenize"  # llama-cpp-python before 0.2.30 had it there
            response = send(client, "POST", f"{root}{path}", root, self.timeout, json=body)
        if response.status_code in (404, 405):
            raise self._no_tokenizer()
        if response.status_code >= 400:
            raise status_error(response.status_code, response.content, root, f"POST {path}")
        try:
            return response.json()
        except ValueError as exc:
            raise unreadable_tokens(root, exc) from None

    def _no_tokenizer(self, *, pieces_only: bool = False) -> UnsupportedModelError:
        if pieces_only:
            return UnsupportedModelError(
                Text(
                    f"The {self.server_name} at {self.base_url} gives token ids but not their text, so token "
                    "views are unavailable with it (max_length/min_length and token counts still work).",
                    f"{self.server_name} по адресу {self.base_url} даёт номера токенов, но не их текст, поэтому "
                    "просмотр токенов с ним недоступен (max_length/min_length и подсчёт токенов работают).",
                )
            )
        return UnsupportedModelError(
            Text(
                f"The {self.server_name} at {self.base_url} offers no tokenizer endpoint that GPT Desk knows, so "
                "token views and max_length/min_length cannot be used with it. GPT Desk (POST /v1/tokenize), "
                "vLLM, llama.cpp server and TGI (POST /tokenize) have one; elsewhere use max_new_tokens.",
                f"{self.server_name} по адресу {self.base_url} не предоставляет известного GPT Desk токенизатора, "
                "поэтому просмотр токенов и max_length/min_length с ним недоступны. Токенизатор есть у GPT Desk "
                "(POST /v1/tokenize), vLLM, llama.cpp server и TGI (POST /tokenize); в остальных случаях "
                "используйте max_new_tokens.",
            )
        )

    # -- generation ------------------------------------------------------------------------------------

    def _lengths(self, prompt: str, settings: GenerationSettings) -> tuple[int, int, int | None]:
        """(min_new, max_new, the prompt's tokens where counted); max_length and min_length count the prompt,
        which only the server can tokenize."""
        counts_prompt = (settings.max_new_tokens is None and settings.max_length is not None) or (
            settings.min_new_tokens is None and settings.min_length is not None
        )
        if not counts_prompt:
            return (*settings.resolve_lengths(0), None)
        try:
            prompt_tokens = self.count_tokens(prompt)
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
        return (*settings.resolve_lengths(prompt_tokens), prompt_tokens)

    def _count_quietly(self, prompt: str) -> int | None:
        """The prompt's tokens by the server's tokenizer, or None: the text is already there, nothing may fail now."""
        if self.kind not in TOKENIZE:
            return None
        try:
            return self.count_tokens(prompt)
        except GptDeskError:
            return None

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
        refuse_empty(prompt, settings)
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
        min_new, max_new, counted = self._lengths(prompt, settings)
        seed = choose_seed(settings)
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
        state = StreamState(int(body.get("n", 1)), settings, self.kind, seed)
        user_cancel = cancel or threading.Event()
        clock = Clock(started)
        if user_cancel.is_set():
            yield state.finished(cancelled=True, timings=clock.timings, gen_start=clock.gen_start)
            return
        watch = _CancelWatch(user_cancel)
        try:
            with client.stream("POST", f"{self.base_url}/v1/completions", json=body) as response:
                watch.attach(response)
                if response.status_code >= 400:
                    response.read()
                    raise status_error(response.status_code, response.content, self.base_url, "POST /v1/completions")
                for event_name, data in sse_events(response.iter_lines()):
                    if user_cancel.is_set():
                        break
                    if data.strip() == "[DONE]":
                        break
                    chunk = decode_chunk(data, self.base_url)
                    if event_name == "error" or "error" in chunk:
                        raise error_from_body(chunk, 500, self.base_url, "POST /v1/completions (stream)")
                    for event in state.feed(chunk):
                        if isinstance(event, TokenEvent):
                            clock.step_done()
                        yield event
        except httpx.HTTPError as exc:
            if not user_cancel.is_set():
                raise network_error(exc, self.base_url, self.timeout) from exc
        finally:
            watch.close()
        clock.timings.total = time.perf_counter() - clock.gen_start
        cancelled = user_cancel.is_set()
        if state.prompt_tokens is None:
            state.prompt_tokens = counted if counted is not None else self._count_quietly(prompt)
            if state.prompt_tokens is None and not cancelled:
                yield self._unknown_count_notice()
        yield from self._unhonoured_notices(settings, body, state, cancelled=cancelled)
        yield state.finished(cancelled=cancelled, timings=clock.timings, gen_start=clock.gen_start)

    def _unknown_count_notice(self) -> Notice:
        return Notice(
            "remote_tokens_unknown",
            Text(
                f"The {self.server_name} at {self.base_url} did not report how many tokens the prompt has, and "
                "offers no tokenizer GPT Desk knows: the prompt's token count is unknown (null in --json).",
                f"{self.server_name} по адресу {self.base_url} не сообщил, сколько токенов в затравке, и не "
                "предоставляет известного GPT Desk токенизатора: число токенов затравки неизвестно (null в --json).",
            ),
        )

    def _local_notices(self, settings: GenerationSettings, body: dict[str, Any]) -> Iterator[Notice]:
        """Before the text: the settings' own warnings, and what this server will not do as GPT Desk would."""
        for issue in settings.warnings():
            yield Notice("settings_warning", issue.text)
        honoured = HONOURED.get(self.kind)
        if honoured is None:
            notice = self._unverified_notice(settings, body)
            if notice is not None:
                yield notice
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
        if self.kind == "ollama":
            yield from self._ollama_defaults(settings)

    def _unverified_notice(self, settings: GenerationSettings, body: dict[str, Any]) -> Notice | None:
        """A server GPT Desk does not recognise: what was sent beyond the OpenAI API, and what its defaults decide."""
        sent = ", ".join(f"{name} = {shown(body[name])}" for name in BEYOND_OPENAI if name in body)
        left = ", ".join(server_defaults_left(settings, body))
        if not sent and not left:
            return None
        said = f" (/v1/models says owned_by {self.owned_by!r})" if self.owned_by else ""
        said_ru = f" (/v1/models сообщает owned_by {self.owned_by!r})" if self.owned_by else ""
        en = [
            f"The server at {self.base_url} is not one GPT Desk recognises{said}, so the text may differ from "
            "a local run."
        ]
        ru = [
            f"Сервер {self.base_url} незнаком GPT Desk{said_ru}, поэтому текст может отличаться от локального запуска."
        ]
        if sent:
            en.append(
                f"Sent beyond the OpenAI completions API: {sent}; GPT Desk cannot tell whether the server applies "
                "them (it says so below where the text shows it did not)."
            )
            ru.append(
                f"Сверх API OpenAI completions отправлено: {sent}; GPT Desk не может узнать, применяет ли их "
                "сервер (и скажет ниже, если текст покажет, что нет)."
            )
        if left:
            en.append(
                f"Its own defaults decide {left}: a server such as llama-cpp-python or Ollama applies a repeat "
                "penalty of 1.1 and top_k 40 unless told otherwise, which changes even greedy text."
            )
            ru.append(
                f"Его собственные умолчания определяют {left}: сервер вроде llama-cpp-python или Ollama без "
                "указаний применяет штраф за повтор 1.1 и top_k 40, что меняет даже жадный текст."
            )
        en.append(
            "Recognised are GPT Desk, vLLM, llama.cpp's llama-server, llama-cpp-python, TGI and Ollama; see "
            "docs/remote.md."
        )
        ru.append(
            "GPT Desk распознаёт GPT Desk, vLLM, llama-server из llama.cpp, llama-cpp-python, TGI и Ollama; см. "
            "docs/remote.md."
        )
        return Notice("remote_unverified", Text(" ".join(en), " ".join(ru)))

    def _ollama_defaults(self, settings: GenerationSettings) -> Iterator[Notice]:
        """Ollama's OpenAI API cannot set its repeat penalty or top_k: its defaults (or the Modelfile's) apply."""
        left = []
        if settings.repetition_penalty == 1.0:  # a wanted penalty is named by remote_ignores already
            left.append("repeat_penalty (GPT Desk: 1)")
        if settings.do_sample and settings.top_k == 0:
            left.append("top_k (GPT Desk: 0, off)")
        if not left:
            return
        listed = ", ".join(left)
        yield Notice(
            "remote_server_defaults",
            Text(
                f"Ollama at {self.base_url} applies its own {listed}: 1.1 and 40 unless the model's Modelfile sets "
                "others, and its OpenAI-compatible API cannot change them, so the text may differ from a local run. "
                "Set them in a Modelfile (PARAMETER repeat_penalty 1) to match.",
                f"Ollama по адресу {self.base_url} применяет свои {listed}: 1.1 и 40, если Modelfile модели не "
                "задаёт других, а его API, совместимый с OpenAI, изменить их не может, поэтому текст может "
                "отличаться от локального запуска. Чтобы совпадал, задайте их в Modelfile "
                "(PARAMETER repeat_penalty 1).",
            ),
        )

    def _unhonoured_notices(
        self, settings: GenerationSettings, body: dict[str, Any], state: StreamState, *, cancelled: bool
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
