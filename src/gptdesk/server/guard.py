"""The checks every request passes before a route reads it: Host, Origin, the API key, and a JSON body."""

from __future__ import annotations

import hmac
import logging

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gptdesk.i18n import Text
from gptdesk.server.config import ServerConfig, host_allowed, origin_allowed
from gptdesk.server.errors import (
    AuthenticationError,
    ForbiddenError,
    RequestError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
    negotiate_language,
)
from gptdesk.server.numbers import strict_loads
from gptdesk.server.responses import error_response

log = logging.getLogger("gptdesk.server")

#: Bodies up to this size are read to the end before a 413, so that the client sees the answer
#: rather than a reset connection; beyond it the connection is simply closed after the answer.
DRAIN_LIMIT = 64 << 20


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
        if int(declared) <= DRAIN_LIMIT:
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
                if drained > DRAIN_LIMIT:
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
    return strict_loads(body)


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


class Guard:
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
