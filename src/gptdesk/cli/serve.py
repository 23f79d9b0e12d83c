"""`gptdesk serve`: the OpenAI-compatible API on the command line."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from gptdesk.cli.console import interrupt_raises
from gptdesk.cli.engine_options import add_adapter_option, add_cache_option, cache_option
from gptdesk.i18n import Text
from gptdesk.server.config import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_REQUEST_TOKENS,
    DEFAULT_MAX_TOKENS_LIMIT,
    DEFAULT_PORT,
    ServerConfig,
)

#: Where the API key may come from instead of the command line (which other users can see in `ps`).
API_KEY_ENV = "GPTDESK_API_KEY"


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(subparsers: Any) -> None:
    """Add `serve` to the `gptdesk` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help=_t(
            "serve a model over an OpenAI-compatible HTTP API", "раздавать модель через HTTP API, совместимый с OpenAI"
        ),
        description=_t(
            "Serve a model over an OpenAI-compatible HTTP API (GET /v1/models, POST /v1/completions, "
            "POST /v1/tokenize; the schema at /openapi.json). Listens on 127.0.0.1 only unless told "
            "otherwise. Ctrl+C stops.",
            "Раздавать модель через HTTP API, совместимый с OpenAI (GET /v1/models, POST /v1/completions, "
            "POST /v1/tokenize; схема — /openapi.json). Слушает только 127.0.0.1, если не указано иное. "
            "Ctrl+C останавливает.",
        ),
    )
    p.add_argument(
        "--model",
        default=None,
        help=_t(
            "catalog name, hub id or folder (default: the embedded model)",
            "имя из каталога, id на хабе или папка (по умолчанию встроенная модель)",
        ),
    )
    p.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "transformers", "llamacpp"),
        help=_t(
            "as for gptdesk generate: auto is llama.cpp (fast, quantized) on a CPU when installed, else "
            "transformers; transformers: the reference engine; llamacpp: always llama.cpp",
            "как у gptdesk generate: auto — llama.cpp (быстрый, квантованный) на процессоре, если установлен, "
            "иначе transformers; transformers: эталонный движок; llamacpp: всегда llama.cpp",
        ),
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    add_cache_option(p)
    add_adapter_option(p)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=_t(
            "address to listen on; anything but 127.0.0.1/localhost needs --allow-remote and --api-key",
            "адрес для прослушивания; всё, кроме 127.0.0.1/localhost, требует --allow-remote и --api-key",
        ),
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=_t("TCP port (0: any free one)", "TCP-порт (0 — любой свободный)"),
    )
    p.add_argument(
        "--api-key",
        default=None,
        help=_t(
            f"require 'Authorization: Bearer KEY' on every /v1 request (default: ${API_KEY_ENV})",
            f"требовать «Authorization: Bearer КЛЮЧ» в каждом запросе к /v1 (по умолчанию ${API_KEY_ENV})",
        ),
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help=_t(
            "allow listening beyond this computer (with --api-key)", "разрешить доступ из сети (вместе с --api-key)"
        ),
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=DEFAULT_MAX_QUEUE,
        help=_t(
            "requests that may wait while one generates; more get HTTP 429",
            "сколько запросов может ждать, пока идёт генерация; остальные получают HTTP 429",
        ),
    )
    p.add_argument(
        "--max-tokens-limit",
        type=int,
        default=DEFAULT_MAX_TOKENS_LIMIT,
        help=_t("the most max_tokens one request may ask for", "наибольшее max_tokens, которое можно запросить"),
    )
    p.add_argument(
        "--max-request-tokens",
        type=int,
        default=DEFAULT_MAX_REQUEST_TOKENS,
        help=_t(
            "the most tokens one request may ask for in all (prompts × n or num_beams × max_tokens); more get HTTP 400",
            "сколько токенов в сумме может запросить один запрос (затравки × n или num_beams × max_tokens); "
            "больше — HTTP 400",
        ),
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help=_t(
            "also accept requests sent to this host name (e.g. a reverse proxy's); others than localhost, the "
            "loopback addresses and --host are refused against DNS rebinding",
            "принимать также запросы к этому имени хоста (например, имени обратного прокси); остальные, кроме "
            "localhost, адресов loopback и --host, отклоняются для защиты от DNS rebinding",
        ),
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=_t("the largest request body; larger get HTTP 413", "наибольший размер тела запроса; больше — HTTP 413"),
    )
    p.add_argument(
        "--served-model-name",
        default=None,
        help=_t("the model id clients see (default: --model)", "id модели для клиентов (по умолчанию --model)"),
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.engine import load_engine
    from gptdesk.server.app import create_app
    from gptdesk.server.runner import bind_socket, serve_forever, url_of

    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_key=api_key,
        allow_remote=args.allow_remote,
        max_queue=args.max_queue,
        max_tokens_limit=args.max_tokens_limit,
        max_request_tokens=args.max_request_tokens,
        max_body_bytes=args.max_body_bytes,
        allowed_hosts=tuple(args.allowed_host),
        model_name=args.served_model_name,
    )
    config.check()
    # Bind before loading the model, so a port in use is reported at once, not after a minute of loading.
    sock = bind_socket(config.host, config.port)
    try:
        print(_t("Loading the model…", "Загрузка модели…"), file=err, flush=True)
        engine = load_engine(args.model, engine=args.engine, device=args.device, dtype=args.dtype, **cache_option(args))
        try:
            app = create_app(engine, config)
            url = url_of(sock)
            name = config.model_name or engine.info.model_id
            print(
                _t(
                    f"GPT Desk serves {name} at {url}/v1 (OpenAI-compatible; schema at {url}/docs). "
                    + ("Clients must send the API key. " if api_key else "")
                    + "Ctrl+C stops.",
                    f"GPT Desk раздаёт {name} по адресу {url}/v1 (совместимо с OpenAI; схема — {url}/docs). "
                    + ("Клиенты должны передавать ключ API. " if api_key else "")
                    + "Ctrl+C останавливает.",
                ),
                file=err,
                flush=True,
            )
            with _sigterm_interrupts(), interrupt_raises():
                serve_forever(app, config, sock)
        except KeyboardInterrupt:
            pass  # Ctrl+C or SIGTERM: uvicorn has already shut down gracefully
        finally:
            engine.close()
    finally:
        sock.close()
    print(_t("Server stopped.", "Сервер остановлен."), file=err)
    return 0


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the server like Ctrl+C does (uvicorn re-raises the signal after its graceful shutdown)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
