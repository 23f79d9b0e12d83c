"""HTTP and network failures of a remote server as GPT Desk's typed errors, in English and Russian."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gptdesk import errors as _errors
from gptdesk.errors import (
    EngineError,
    GptDeskError,
    InvalidInputError,
    ModelNotFoundError,
    NetworkError,
    SettingIssue,
    SettingsError,
    UnsupportedModelError,
)
from gptdesk.i18n import Text


def send(client: httpx.Client, method: str, url: str, root: str, timeout: float, **kwargs: Any) -> httpx.Response:
    """One request; a network failure becomes a NetworkError naming the server."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise network_error(exc, root, timeout) from exc


def network_error(exc: httpx.HTTPError, root: str, timeout: float) -> GptDeskError:
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


def status_error(status: int, content: bytes, root: str, what: str) -> GptDeskError:
    try:
        data = json.loads(content)
    except ValueError:
        data = content.decode("utf-8", "replace").strip()[:300]
    return error_from_body(data, status, root, what)


def error_from_body(data: object, status: int, root: str, what: str) -> GptDeskError:
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


def not_openai_compatible(root: str, why: Text) -> UnsupportedModelError:
    """GET /v1/models failed (`why` says how): the address is not an OpenAI-compatible server's base."""
    return UnsupportedModelError(
        Text(
            f"{root} does not look like an OpenAI-compatible server: GET /v1/models {why.en}. Give the server's base "
            "address (e.g. http://host:8000), and check that the program there serves the OpenAI API.",
            f"{root} не похож на сервер, совместимый с OpenAI: GET /v1/models {why.ru}. Укажите базовый адрес "
            "сервера (например, http://host:8000) и проверьте, что программа там предоставляет API OpenAI.",
        )
    )


def unreadable_tokens(root: str, exc: Exception) -> UnsupportedModelError:
    return UnsupportedModelError(
        Text(
            f"The tokenizer answer of {root} cannot be read ({type(exc).__name__}: {exc}). The server may "
            "be a version GPT Desk does not know; token views are unavailable with it.",
            f"Ответ токенизатора {root} не читается ({type(exc).__name__}: {exc}). Возможно, это версия "
            "сервера, которую GPT Desk не знает; просмотр токенов с ней недоступен.",
        )
    )
