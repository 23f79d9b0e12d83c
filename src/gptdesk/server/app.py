"""The OpenAI-compatible HTTP API over one loaded engine: its routes (/v1/models, /v1/completions, /v1/tokenize)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gptdesk import __version__
from gptdesk.engine.base import Engine
from gptdesk.errors import GptDeskError
from gptdesk.i18n import Text
from gptdesk.models.catalog import find_entry
from gptdesk.server.config import ServerConfig
from gptdesk.server.errors import (
    MethodNotAllowedError,
    NotFoundError,
    RequestError,
    internal_error,
    negotiate_language,
)
from gptdesk.server.guard import Guard, read_json
from gptdesk.server.protocol import (
    Completion,
    ErrorResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
    check_logprobs,
    check_room,
    check_text,
    completion_request_schema,
    parse_request,
    parse_tokenize,
    settings_from_request,
)
from gptdesk.server.queue import GenerationQueue
from gptdesk.server.responses import Builder, complete, error_response, token_pieces
from gptdesk.server.sse import EventStream, events
from gptdesk.settings.generation import GenerationSettings

log = logging.getLogger("gptdesk.server")

ROUTES = "GET /v1/models, POST /v1/completions, POST /v1/tokenize, GET /health"


@dataclass
class Service:
    """What the routes serve: the engine, its generation queue and the server's settings (app.state.service)."""

    engine: Engine
    config: ServerConfig
    queue: GenerationQueue
    served: str  # the model id clients see
    names: set[str]  # every name a request may give for it, lower case
    started: int  # when the server started (the model card's `created`)

    @property
    def fingerprint(self) -> str:
        return f"gptdesk-{__version__}-{self.engine.info.revision}"

    def model_card(self) -> ModelCard:
        info = self.engine.info
        return ModelCard(
            id=self.served,
            created=self.started,
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

    def check_model(self, name: str | None) -> None:
        """NotFoundError unless `name` is left out or names the served model."""
        if name is None or name.strip().lower() in self.names:
            return
        raise NotFoundError(
            Text(
                f"model = {name!r} is not served here: this server serves {self.served!r} (GET /v1/models lists "
                "it). Use that id, or leave model out.",
                f"model = {name!r} здесь не обслуживается: этот сервер обслуживает {self.served!r} (его показывает "
                "GET /v1/models). Укажите этот id или не указывайте model.",
            ),
            param="model",
            code="model_not_found",
        )

    def precheck(self, prompts: list[str], settings: GenerationSettings) -> None:
        """Refuse an empty prompt, a length the context cannot hold or a run memory cannot afford before queueing."""
        for index, prompt in enumerate(prompts):
            # An empty prompt gets the engine's own message below; a remote engine's server counts for itself.
            if prompt.strip() and self.engine.capabilities.local:
                which = f"prompt[{index}] " if len(prompts) > 1 else ""
                count = len(self.engine.tokenize(prompt))
                check_room(count, self.engine.info.n_positions, settings, which=which)
            self.engine.check(prompt, settings)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# -- routes ------------------------------------------------------------------------------------------


async def health(request: Request) -> dict[str, Any]:
    service = _service(request)
    return {"status": "ok", "model": service.served, "queue": service.queue.stats()}


async def list_models(request: Request) -> ModelList:
    return ModelList(data=[_service(request).model_card()])


async def get_model(request: Request, model: str) -> ModelCard:
    service = _service(request)
    service.check_model(model)
    return service.model_card()


async def tokenize(request: Request) -> TokenizeResponse:
    service = _service(request)
    req = parse_tokenize(await read_json(request, service.config.max_body_bytes))
    service.check_model(req.model)
    check_text(req.text, "text")
    pieces = await run_in_threadpool(service.engine.tokenize, req.text)
    tokens = token_pieces(req.text, pieces)
    return TokenizeResponse(tokens=tokens, count=len(tokens), max_model_len=service.engine.info.n_positions)


async def create_completion(request: Request) -> Response:
    service = _service(request)
    lang = negotiate_language(request.headers.get("accept-language"))
    req = parse_request(await read_json(request, service.config.max_body_bytes))
    check_logprobs(req.logprobs)
    service.check_model(req.model)
    settings = settings_from_request(req, service.config)
    prompts = req.prompts
    await run_in_threadpool(service.precheck, prompts, settings)
    job = service.queue.submit(prompts, settings, req.logprobs or 0)
    build = Builder(req, settings, service.served, service.fingerprint, lang)
    if not req.stream:
        return await complete(job, build, request)
    options = req.stream_options
    include_usage = options is not None and options.include_usage
    include_beam = options is not None and options.include_leading_beam
    return EventStream(job, events(job, build, include_usage, include_beam, service.config.keepalive_s))


# -- errors --------------------------------------------------------------------------------------------


async def on_gptdesk_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GptDeskError)
    return error_response(exc, negotiate_language(request.headers.get("accept-language")))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (and any other HTTPException) as OpenAI-style JSON errors."""
    assert isinstance(exc, StarletteHTTPException)
    lang = negotiate_language(request.headers.get("accept-language"))
    where = f"{request.method} {request.url.path}"
    error: GptDeskError
    if exc.status_code == 405:
        error = MethodNotAllowedError(
            Text(
                f"{where} is not allowed: this path takes another method. GPT Desk serves {ROUTES}.",
                f"{where} недопустим: этот путь принимает другой метод. GPT Desk обслуживает {ROUTES}.",
            )
        )
    elif exc.status_code == 404:
        error = NotFoundError(
            Text(
                f"There is no {where}. GPT Desk serves {ROUTES}.",
                f"Нет пути {where}. GPT Desk обслуживает {ROUTES}.",
            )
        )
    else:
        error = RequestError(Text(str(exc.detail), str(exc.detail)), code=None)
        error.http_status = exc.status_code
    return error_response(error, lang)


async def on_bug(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(internal_error(exc), negotiate_language(request.headers.get("accept-language")))


# -- the application -----------------------------------------------------------------------------------


def create_app(engine: Engine, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI application serving `engine`; its lifespan starts and stops the generation worker."""
    config = config or ServerConfig()
    config.check()
    queue = GenerationQueue(engine, max_waiting=config.max_queue)
    served = config.model_name or engine.info.model_id
    service = Service(engine, config, queue, served, _model_names(engine, served), int(time.time()))

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
    app.state.service = service
    app.state.queue = queue
    app.state.config = config
    app.state.engine = engine
    app.add_middleware(Guard, config=config)
    app.add_exception_handler(GptDeskError, on_gptdesk_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_bug)

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

    app.add_api_route("/health", health, methods=["GET"], summary="Is the server up; how busy it is")
    app.add_api_route(
        "/v1/models",
        list_models,
        methods=["GET"],
        response_model=ModelList,
        responses=errors,
        summary="The served model",
    )
    app.add_api_route(
        "/v1/models/{model:path}",
        get_model,
        methods=["GET"],
        response_model=ModelCard,
        responses=errors,
        summary="One model",
    )
    app.add_api_route(
        "/v1/tokenize",
        tokenize,
        methods=["POST"],
        response_model=TokenizeResponse,
        responses=post_errors,
        summary="Split a text into the served model's tokens (GPT Desk's extra)",
        openapi_extra=_json_body("TokenizeRequest"),
    )
    app.add_api_route(
        "/v1/completions",
        create_completion,
        methods=["POST"],
        response_model=None,
        responses=completion_responses,
        summary="Continue a prompt (OpenAI completions)",
        openapi_extra=_json_body("CompletionRequest"),
    )

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = _openapi_schema(app, config)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _openapi_schema(app: FastAPI, config: ServerConfig) -> dict[str, Any]:
    """FastAPI's schema with the request bodies this API reads itself (strict JSON) and the bearer key."""
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
    return schema


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
