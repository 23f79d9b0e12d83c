"""The OpenAI-compatible HTTP API over one loaded engine: /v1/models, /v1/completions, /v1/tokenize."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from gptdesk import __version__
from gptdesk.engine.base import Engine, Finished, LeadingBeam, Notice, TokenEvent
from gptdesk.errors import GptDeskError
from gptdesk.i18n import Lang, Text
from gptdesk.models.catalog import find_entry
from gptdesk.server.config import ServerConfig, host_allowed, origin_allowed
from gptdesk.server.errors import (
    AuthenticationError,
    ForbiddenError,
    MethodNotAllowedError,
    NotFoundError,
    RequestError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
    error_body,
    internal_error,
    negotiate_language,
)
from gptdesk.server.protocol import (
    NEG_INF_LOGPROB,
    Alternative,
    Choice,
    Completion,
    CompletionRequest,
    ErrorResponse,
    LeadingBeamOut,
    Logprobs,
    ModelCard,
    ModelList,
    NoticeOut,
    TokenizeRequest,
    TokenizeResponse,
    TokenOut,
    Usage,
    check_logprobs,
    check_text,
    completion_request_schema,
    finite_logprob,
    parse_request,
    parse_tokenize,
    settings_from_request,
)
from gptdesk.server.queue import GenerationQueue, Job, JobEnded, JobEvent, JobFailed
from gptdesk.settings.generation import GenerationSettings

log = logging.getLogger("gptdesk.server")

#: Bodies up to this size are read to the end before a 413, so that the client sees the answer
#: rather than a reset connection; beyond it the connection is simply closed after the answer.
_DRAIN_LIMIT = 64 << 20

#: The most digits a JSON integer may have: every parameter fits in far fewer (a seed has at most 10), and
#: Python refuses to read more than 4300 at all.
_MAX_INT_DIGITS = 64

#: How GPT Desk's finish reasons read in the OpenAI protocol.
FINISH_REASONS: dict[str, str] = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "cancelled"}


def create_app(engine: Engine, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI application serving `engine`; its lifespan starts and stops the generation worker."""
    config = config or ServerConfig()
    config.check()
    queue = GenerationQueue(engine, max_waiting=config.max_queue)
    served = config.model_name or engine.info.model_id
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(queue.close)

    app = FastAPI(
        title="GPT Desk",
        version=__version__,
        description="An OpenAI-compatible completions API over a GPT-2-family model (ruGPT-3 first).",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.queue = queue
    app.state.config = config
    app.state.engine = engine
    names = _model_names(engine, served)
    app.add_middleware(_Guard, config=config)

    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorResponse, "description": "Invalid request: the message names the parameter and the fix."},
        404: {"model": ErrorResponse, "description": "The model is not served here."},
        403: {"model": ErrorResponse, "description": "The Host or Origin header is not this server's."},
        413: {"model": ErrorResponse, "description": "The request body is too large."},
    }
    if config.api_key is not None:
        errors[401] = {"model": ErrorResponse, "description": "Missing or wrong API key."}
    post_errors: dict[int | str, dict[str, Any]] = {
        **errors,
        415: {"model": ErrorResponse, "description": "The body is not sent as application/json."},
    }

    # -- error handlers ------------------------------------------------------------------------------

    @app.exception_handler(GptDeskError)
    async def _on_gptdesk_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GptDeskError)
        return error_response(exc, negotiate_language(request.headers.get("accept-language")))

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        lang = negotiate_language(request.headers.get("accept-language"))
        where = f"{request.method} {request.url.path}"
        routes = "GET /v1/models, POST /v1/completions, POST /v1/tokenize, GET /health"
        error: GptDeskError
        if exc.status_code == 405:
            error = MethodNotAllowedError(
                Text(
                    f"{where} is not allowed: this path takes another method. GPT Desk serves {routes}.",
                    f"{where} недопустим: этот путь принимает другой метод. GPT Desk обслуживает {routes}.",
                )
            )
        elif exc.status_code == 404:
            error = NotFoundError(
                Text(
                    f"There is no {where}. GPT Desk serves {routes}.",
                    f"Нет пути {where}. GPT Desk обслуживает {routes}.",
                )
            )
        else:
            error = RequestError(Text(str(exc.detail), str(exc.detail)), code=None)
            error.http_status = exc.status_code
        return error_response(error, lang)

    @app.exception_handler(Exception)
    async def _on_bug(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(internal_error(exc), negotiate_language(request.headers.get("accept-language")))

    # -- routes --------------------------------------------------------------------------------------

    def model_card() -> ModelCard:
        info = engine.info
        return ModelCard(
            id=served,
            created=started,
            owned_by="gptdesk",
            max_model_len=info.n_positions,
            gptdesk={
                "model_id": info.model_id,
                "revision": info.revision,
                "engine": info.engine,
                "device": info.device,
                "dtype": info.dtype,
                "n_params": info.n_params,
                "n_layer": info.n_layer,
                "n_embd": info.n_embd,
                "n_head": info.n_head,
                "n_positions": info.n_positions,
                "vocab_size": info.vocab_size,
                "version": __version__,
            },
        )

    def check_model(name: str | None) -> None:
        if name is None or name.strip().lower() in names:
            return
        raise NotFoundError(
            Text(
                f"model = {name!r} is not served here: this server serves {served!r} (GET /v1/models lists it). "
                "Use that id, or leave model out.",
                f"model = {name!r} здесь не обслуживается: этот сервер обслуживает {served!r} (его показывает "
                "GET /v1/models). Укажите этот id или не указывайте model.",
            ),
            param="model",
            code="model_not_found",
        )

    @app.get("/health", summary="Is the server up; how busy it is")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served, "queue": queue.stats()}

    @app.get("/v1/models", response_model=ModelList, responses=errors, summary="The served model")
    async def list_models() -> ModelList:
        return ModelList(data=[model_card()])

    @app.get("/v1/models/{model:path}", response_model=ModelCard, responses=errors, summary="One model")
    async def get_model(model: str) -> ModelCard:
        check_model(model)
        return model_card()

    @app.post(
        "/v1/tokenize",
        response_model=TokenizeResponse,
        responses=post_errors,
        summary="Split a text into the served model's tokens (GPT Desk's extra)",
        openapi_extra=_json_body("TokenizeRequest"),
    )
    async def tokenize(request: Request) -> TokenizeResponse:
        req = parse_tokenize(await read_json(request, config.max_body_bytes))
        check_model(req.model)
        check_text(req.text, "text")
        pieces = await run_in_threadpool(engine.tokenize, req.text)
        tokens = [TokenOut(id=p.id, piece=p.text) for p in pieces]
        return TokenizeResponse(tokens=tokens, count=len(tokens), max_model_len=engine.info.n_positions)

    completion_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "model": Completion,
            "description": "The completion; with stream: true, server-sent events of completion chunks, then [DONE].",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **post_errors,
        429: {"model": ErrorResponse, "description": "Too many requests wait for the model; retry later."},
        503: {"model": ErrorResponse, "description": "The server is shutting down."},
    }

    @app.post(
        "/v1/completions",
        response_model=None,
        responses=completion_responses,
        summary="Continue a prompt (OpenAI completions)",
        openapi_extra=_json_body("CompletionRequest"),
    )
    async def create_completion(request: Request) -> Response:
        lang = negotiate_language(request.headers.get("accept-language"))
        req = parse_request(await read_json(request, config.max_body_bytes))
        check_logprobs(req.logprobs)
        check_model(req.model)
        settings = settings_from_request(req, config)
        prompts = req.prompts
        await run_in_threadpool(_precheck, engine, prompts, settings)
        job = queue.submit(prompts, settings, req.logprobs or 0)
        build = _Builder(req, settings, served, _fingerprint(engine), lang)
        if req.stream:
            options = req.stream_options
            include_usage = options is not None and options.include_usage
            include_beam = options is not None and options.include_leading_beam
            return _EventStream(job, _events(job, build, include_usage, include_beam, config.keepalive_s))
        return await _complete(job, build, request)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        request_schema = completion_request_schema(config)
        components.update(request_schema.pop("$defs", {}))
        components["CompletionRequest"] = request_schema
        components["TokenizeRequest"] = TokenizeRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        if config.api_key is not None:
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema["paths"].items():
                if path.startswith("/v1"):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# -- helpers ------------------------------------------------------------------------------------------


def error_response(exc: GptDeskError, lang: Lang) -> JSONResponse:
    headers = {"Retry-After": "2"} if exc.http_status == 429 else None
    return JSONResponse(error_body(exc, lang), status_code=exc.http_status, headers=headers)


def _json_body(schema_name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
        }
    }


def _model_names(engine: Engine, served: str) -> set[str]:
    names = {served.lower(), engine.info.model_id.lower()}
    entry = find_entry(engine.info.model_id)
    if entry is not None:
        names.update(name.lower() for name in entry.names())
    return names


def _fingerprint(engine: Engine) -> str:
    return f"gptdesk-{__version__}-{engine.info.revision}"


def _precheck(engine: Engine, prompts: list[str], settings: GenerationSettings) -> None:
    """Refuse an empty prompt, a length the context cannot hold or a run memory cannot afford before queueing."""
    for prompt in prompts:
        engine.check(prompt, settings)


async def read_json(request: Request, limit: int) -> object:
    """The request body as JSON, at most `limit` bytes; RequestError or RequestTooLargeError otherwise."""
    declared = request.headers.get("content-length")
    too_large = RequestTooLargeError(
        Text(
            f"The request body is larger than this server's limit of {limit} bytes. Send a shorter prompt "
            "(the model only sees the last part of a long one anyway).",
            f"Тело запроса больше предела этого сервера в {limit} байт. Отправьте затравку короче (модель "
            "всё равно видит только конец длинной затравки).",
        )
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= _DRAIN_LIMIT:
            async for _ in request.stream():
                pass
        raise too_large
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            drained = size
            async for rest in stream:
                drained += len(rest)
                if drained > _DRAIN_LIMIT:
                    break
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    _check_json_content_type(request.headers.get("content-type"))
    if not body.strip():
        raise RequestError(
            Text(
                'The request body is empty. Send a JSON object such as {"prompt": "Москва — столица", '
                '"max_tokens": 20}.',
                'Тело запроса пусто. Отправьте объект JSON вида {"prompt": "Москва — столица", "max_tokens": 20}.',
            ),
            code="invalid_json",
        )
    try:
        return json.loads(body, parse_int=_parse_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(
            Text(
                f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
                "Send a JSON object with double-quoted names and strings.",
                f"Тело запроса — не корректный JSON: {exc.msg} в строке {exc.lineno}, столбце {exc.colno}. "
                "Отправьте объект JSON с именами и строками в двойных кавычках.",
            ),
            code="invalid_json",
        ) from None
    except UnicodeDecodeError as exc:
        raise RequestError(
            Text(
                f"The request body is not UTF-8 text (byte {exc.start} is invalid). Send JSON encoded as UTF-8.",
                f"Тело запроса — не текст UTF-8 (байт {exc.start} недопустим). Отправьте JSON в кодировке UTF-8.",
            ),
            code="invalid_json",
        ) from None
    except RecursionError:
        raise RequestError(
            Text(
                "The request body's JSON is nested too deeply to read. Send a flat object of parameters.",
                "JSON в теле запроса слишком глубоко вложен. Отправьте простой объект с параметрами.",
            ),
            code="invalid_json",
        ) from None
    except _UnreadableNumber as exc:
        raise RequestError(exc.text, code="invalid_json") from None
    except ValueError as exc:  # any other number Python cannot read: still the client's JSON, not a bug
        raise RequestError(
            Text(
                f"The request body's JSON cannot be read ({exc}). Send plain JSON numbers and strings.",
                f"JSON в теле запроса не читается ({exc}). Отправьте обычные числа и строки JSON.",
            ),
            code="invalid_json",
        ) from None


class _UnreadableNumber(ValueError):
    """A number in the body that no parameter could take; its message says which."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


def _parse_int(digits: str) -> int:
    count = len(digits.lstrip("-"))
    if count > _MAX_INT_DIGITS:
        # Python would refuse beyond 4300 digits with a ValueError that used to end as a 500.
        raise _UnreadableNumber(
            Text(
                f"The request body is not valid JSON for this API: it has a whole number of {count} digits, and no "
                f"parameter takes one longer than {_MAX_INT_DIGITS} digits (a seed has at most 10). Send each "
                "value within its range.",
                f"Тело запроса не подходит этому API: в нём целое число из {count} цифр, а ни один параметр не "
                f"принимает чисел длиннее {_MAX_INT_DIGITS} цифр (у зерна их не больше 10). Отправляйте каждое "
                "значение в его диапазоне.",
            )
        )
    return int(digits)


def _refuse_constant(name: str) -> object:
    raise _UnreadableNumber(
        Text(
            f"The request body is not valid JSON: {name} is not a JSON value (Python writes it, JSON does not). "
            "Send a finite number.",
            f"Тело запроса — не корректный JSON: {name} не является значением JSON (так пишет Python, но не JSON). "
            "Отправьте конечное число.",
        )
    )


def _check_json_content_type(value: str | None) -> None:
    """Only JSON bodies: a web page can send text/plain or a form to 127.0.0.1 without asking (no preflight)."""
    media, _, params = (value or "").partition(";")
    charset = ""
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip('"').lower()
    if media.strip().lower() == "application/json" and charset in ("", "utf-8", "utf8"):
        return
    said = Text(f"Content-Type is {value!r}", f"Content-Type — {value!r}")
    if value is None:
        said = Text("The request has no Content-Type", "В запросе нет Content-Type")
    raise UnsupportedMediaTypeError(
        said
        + Text(
            ": this server reads only JSON bodies sent as application/json (UTF-8). Send "
            "the header 'Content-Type: application/json' (curl: -H 'Content-Type: application/json'; the openai "
            "client and httpx's json= send it already). Other types are refused so that a web page cannot drive "
            "the model behind your back.",
            ": этот сервер читает только тела JSON с типом application/json (UTF-8). "
            "Передайте заголовок «Content-Type: application/json» (curl: -H 'Content-Type: application/json'; "
            "клиент openai и json= в httpx передают его сами). Другие типы отклоняются, чтобы веб-страница не "
            "могла управлять моделью без вашего ведома.",
        )
    )


class _Guard:
    """Checks every request before anything reads it: Host and Origin (all paths), then the API key (/v1).

    A server on 127.0.0.1 is still reachable from the user's browser. A request whose Host is not
    this server's is a DNS-rebinding attack (a page of attacker.example whose name now points at
    127.0.0.1); one with a foreign Origin is another site's page. Both get 403 and no CORS headers,
    so the browser also keeps the answer from the page (style.md 21; ollama's allowedHostsMiddleware,
    jupyter_server's check_host / check_origin).
    """

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.api_key = config.api_key.encode() if config.api_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        lang = negotiate_language(headers.get("accept-language"))
        refused = self._foreign(headers)
        if refused is not None:
            log.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), refused.text.en)
            await error_response(refused, lang)(scope, receive, send)
            return
        if self.api_key is None or not str(scope["path"]).startswith("/v1"):
            await self.app(scope, receive, send)
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key):
            await self.app(scope, receive, send)
            return
        if not token:
            text = Text(
                "This server needs an API key: send the header 'Authorization: Bearer KEY' (openai client: "
                "api_key=KEY; gptdesk generate: --api-key KEY).",
                "Этому серверу нужен ключ API: передайте заголовок «Authorization: Bearer КЛЮЧ» (клиент openai: "
                "api_key=КЛЮЧ; gptdesk generate: --api-key КЛЮЧ).",
            )
        else:
            text = Text(
                "The API key sent is not this server's key. Use the key given to `gptdesk serve --api-key` "
                "(or its GPTDESK_API_KEY).",
                "Переданный ключ API не подходит к этому серверу. Используйте ключ, заданный в "
                "`gptdesk serve --api-key` (или в его GPTDESK_API_KEY).",
            )
        await error_response(AuthenticationError(text), lang)(scope, receive, send)

    def _foreign(self, headers: Headers) -> ForbiddenError | None:
        host = headers.get("host", "")
        if not host_allowed(host, self.config):
            return ForbiddenError(
                Text(
                    f"Host {host!r} is not a name of this server, so the request is refused (a web page that "
                    "points its own name at this computer must not reach the model). Use "
                    f"http://127.0.0.1:{self.config.port or 'PORT'} or http://localhost; a reverse proxy must pass "
                    "Host on, or the name must be allowed with `gptdesk serve --allowed-host NAME`.",
                    f"Host {host!r} — не имя этого сервера, поэтому запрос отклонён (веб-страница, направившая своё "
                    "имя на этот компьютер, не должна добраться до модели). Обращайтесь к "
                    f"http://127.0.0.1:{self.config.port or 'ПОРТ'} или http://localhost; обратный прокси должен "
                    "передавать Host, или имя нужно разрешить: `gptdesk serve --allowed-host ИМЯ`.",
                ),
                code="host_not_allowed",
            )
        origin = headers.get("origin")
        if origin is not None and not origin_allowed(origin, host, self.config):
            return ForbiddenError(
                Text(
                    f"Origin {origin!r}: requests from other web sites' pages are refused, so that a page you "
                    "visit cannot use your model. Call the API from a program (curl, the openai client), which "
                    "sends no Origin.",
                    f"Origin {origin!r}: запросы со страниц других сайтов отклоняются, чтобы открытая вами "
                    "страница не могла использовать вашу модель. Обращайтесь к API из программы (curl, клиент "
                    "openai), которая не передаёт Origin.",
                ),
                code="origin_not_allowed",
            )
        return None


# -- building responses ----------------------------------------------------------------------------------


@dataclass
class _Builder:
    """Turns a job's engine events into OpenAI completion chunks and the final response."""

    req: CompletionRequest
    settings: GenerationSettings
    model: str
    fingerprint: str
    lang: Lang
    id: str = field(default_factory=lambda: "cmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    notices: list[NoticeOut] = field(default_factory=list)
    finished: dict[int, Finished] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)
    streamed: dict[int, str] = field(default_factory=dict)  # each choice's text sent so far (prompt not counted)

    @property
    def n(self) -> int:
        return self.settings.num_return_sequences

    def _prefix(self, index: int) -> str:
        """The prompt, in front of a choice's first text when echo is on."""
        if not self.req.echo or index in self.offsets:
            return ""
        return self.req.prompts[index // self.n]

    def notice(self, notice: Notice) -> None:
        self.notices.append(
            NoticeOut(code=notice.code, message=notice.text.get(self.lang), en=notice.text.en, ru=notice.text.ru)
        )

    def token_choice(self, prompt_index: int, event: TokenEvent) -> Choice:
        index = prompt_index * self.n + event.sequence
        prefix = self._prefix(index)
        offset = self.offsets.get(index, 0) + len(prefix)
        self.offsets[index] = offset + len(event.text)
        self.streamed[index] = self.streamed.get(index, "") + event.text
        real = event.token_id >= 0
        logprobs = None
        if self.req.logprobs is not None:
            logprobs = _logprobs([event] if real else [], offset)
        ids = ([event.token_id] if real else []) if self.req.return_token_ids else None
        return Choice(index=index, text=prefix + event.text, logprobs=logprobs, token_ids=ids)

    def final_choices(self, prompt_index: int, finished: Finished) -> list[Choice]:
        self.finished[prompt_index] = finished
        choices = []
        for seq, reason in enumerate(finished.finish_reasons):
            index = prompt_index * self.n + seq
            prefix = self._prefix(index)
            self.offsets.setdefault(index, len(prefix))
            events = finished.tokens[seq] if seq < len(finished.tokens) else []
            # An engine that sent no token events for a text (or not all of them) still returns it whole.
            final = finished.texts[seq] if seq < len(finished.texts) else ""
            sent = self.streamed.get(index, "")
            rest = final[len(sent) :] if final.startswith(sent) else ""
            choices.append(
                Choice(
                    index=index,
                    text=prefix + rest,
                    finish_reason=FINISH_REASONS.get(reason, reason),
                    stop_reason=self._stop_reason(reason, events),
                )
            )
        return choices

    def _stop_reason(self, reason: str, events: list[TokenEvent]) -> str | None:
        """The stop string that ended a text (vLLM's stop_reason); None for the end of text or length."""
        stops = self.settings.stop
        if reason != "stop" or not stops:
            return None
        raw = "".join(e.piece for e in events if e.token_id >= 0)
        hits = [(raw.find(s), s) for s in stops if s in raw]
        return min(hits)[1] if hits else stops[0]

    def leading_beam(self, prompt_index: int, beam: LeadingBeam) -> LeadingBeamOut:
        return LeadingBeamOut(
            index=prompt_index * self.n,
            text=beam.text,
            token_ids=list(beam.token_ids),
            score=_finite(beam.score),
            step=beam.step,
        )

    def chunk(self, choices: list[Choice], **extra: Any) -> Completion:
        notices, self.notices = self.notices or None, []
        return Completion(
            id=self.id,
            created=self.created,
            model=self.model,
            system_fingerprint=self.fingerprint,
            choices=choices,
            notices=notices,
            **extra,
        )

    def usage(self) -> Usage:
        prompt = sum(f.prompt_tokens for f in self.finished.values())
        completion = sum(sum(f.generated_tokens) for f in self.finished.values())
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def response(self) -> Completion:
        choices: list[Choice] = []
        for prompt_index, finished in sorted(self.finished.items()):
            for seq, text in enumerate(finished.texts):
                index = prompt_index * self.n + seq
                events = finished.tokens[seq] if seq < len(finished.tokens) else []
                prefix = self.req.prompts[prompt_index] if self.req.echo else ""
                reason = finished.finish_reasons[seq]
                real = [e for e in events if e.token_id >= 0]
                choices.append(
                    Choice(
                        index=index,
                        text=prefix + text,
                        logprobs=_logprobs(events, len(prefix)) if self.req.logprobs is not None else None,
                        finish_reason=FINISH_REASONS.get(reason, reason),
                        stop_reason=self._stop_reason(reason, events),
                        token_ids=[e.token_id for e in real] if self.req.return_token_ids else None,
                    )
                )
        seeds = {f.seed for f in self.finished.values()}
        return self.chunk(
            choices,
            usage=self.usage(),
            seed=seeds.pop() if len(seeds) == 1 else None,
            prompt_truncated_tokens=max((f.prompt_truncated_tokens for f in self.finished.values()), default=0),
        )


def _logprobs(events: list[TokenEvent], offset: int) -> Logprobs:
    """OpenAI's logprobs for these events; text_offset counts from `offset` in the returned text."""
    out = Logprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[], top_alternatives=[])
    assert out.top_logprobs is not None and out.top_alternatives is not None
    for event in events:
        if event.token_id >= 0:
            out.tokens.append(event.piece)
            out.token_logprobs.append(finite_logprob(event.logprob))
            top: dict[str, float] = {}
            for alt in event.alternatives:
                top.setdefault(alt.text, _finite(alt.logprob))
            out.top_logprobs.append(top)
            out.top_alternatives.append(
                [Alternative(id=a.token_id, piece=a.text, logprob=_finite(a.logprob)) for a in event.alternatives]
            )
            out.text_offset.append(offset)
        offset += len(event.text)
    return out


def _finite(logprob: float) -> float:
    value = finite_logprob(logprob)
    return NEG_INF_LOGPROB if value is None else value


def _json(data: Completion | dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; a completion leaves out GPT Desk's extras where they are empty."""
    if isinstance(data, Completion):
        data = data.model_dump()
        for key in ("usage", "seed", "prompt_truncated_tokens", "notices", "leading_beam"):
            if data.get(key) is None:
                data.pop(key, None)
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _sse(data: Completion | dict[str, Any]) -> bytes:
    return b"data: " + _json(data) + b"\n\n"


async def _events(
    job: Job, build: _Builder, include_usage: bool, include_beam: bool, keepalive: float
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed completion.

    While a beam search runs, its leading hypothesis becomes a chunk with no choices and a
    `leading_beam` member only when the client asked for it (stream_options.include_leading_beam):
    other clients read choices[0] of every chunk. They get an SSE comment at least every
    `keepalive` seconds instead, so that a long search does not trip their read timeout.
    """
    last = time.monotonic()
    try:
        while True:
            try:
                item = await asyncio.wait_for(job.next(), keepalive)
            except TimeoutError:
                yield b": waiting for the model\n\n"  # an SSE comment: keeps the client's read timeout at bay
                last = time.monotonic()
                continue
            if isinstance(item, JobEnded):
                break
            if isinstance(item, JobFailed):
                error = _as_gptdesk_error(item.error)
                yield _sse(error_body(error, build.lang))
                break
            assert isinstance(item, JobEvent)
            event = item.event
            out: bytes | None = None
            if isinstance(event, Notice):
                build.notice(event)
            elif isinstance(event, TokenEvent):
                out = _sse(build.chunk([build.token_choice(item.prompt_index, event)]))
            elif isinstance(event, LeadingBeam):
                if include_beam:
                    out = _sse(build.chunk([], leading_beam=build.leading_beam(item.prompt_index, event)))
                elif time.monotonic() - last >= keepalive:
                    out = b": beam search running\n\n"
            elif isinstance(event, Finished):
                choices = build.final_choices(item.prompt_index, event)
                out = _sse(build.chunk(choices, seed=event.seed, prompt_truncated_tokens=event.prompt_truncated_tokens))
            if out is not None:
                yield out
                last = time.monotonic()
        if include_usage:
            yield _sse(build.chunk([], usage=build.usage()))
        yield b"data: [DONE]\n\n"
    finally:
        job.abandon()


async def _collect(job: Job, build: _Builder) -> Completion:
    while True:
        item = await job.next()
        if isinstance(item, JobEnded):
            return build.response()
        if isinstance(item, JobFailed):
            raise _as_gptdesk_error(item.error)
        assert isinstance(item, JobEvent)
        if isinstance(item.event, Notice):
            build.notice(item.event)
        elif isinstance(item.event, Finished):
            build.finished[item.prompt_index] = item.event


async def _until_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _complete(job: Job, build: _Builder, request: Request) -> Response:
    """Wait for a whole completion; if the client leaves first, stop its generation."""
    collect = asyncio.ensure_future(_collect(job, build))
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collect.done():
            job.abandon()
            collect.cancel()
            return Response(status_code=499)  # nobody reads it: the client has gone
        return Response(_json(collect.result()), media_type="application/json")
    finally:
        gone.cancel()
        job.abandon()


def _as_gptdesk_error(exc: BaseException) -> GptDeskError:
    if isinstance(exc, GptDeskError):
        return exc
    log.error("generation failed", exc_info=exc)
    return internal_error(exc)


class _EventStream(StreamingResponse):
    """A streamed completion whose generation stops as soon as the response ends for any reason."""

    def __init__(self, job: Job, events: AsyncIterator[bytes]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._job = job
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass  # the client went away mid-stream: the finally below stops its generation
        finally:
            # Starlette cancels the sending task when the client disconnects; the event generator may be
            # left suspended, so the job is stopped here rather than in its own finally.
            self._job.abandon()
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
