"""The server's own failures and how any GPT Desk error becomes an OpenAI-style JSON error."""

from __future__ import annotations

from typing import Any

from gptdesk.errors import EmptyPromptError, GptDeskError, InvalidInputError, SettingIssue, SettingsError
from gptdesk.i18n import Lang, Text, current_language

#: GenerationSettings fields that the OpenAI protocol names differently.
SETTING_TO_PARAM: dict[str, str] = {
    "max_new_tokens": "max_tokens",
    "min_new_tokens": "min_tokens",
    "num_return_sequences": "n",
    "do_sample": "temperature",
}


class RequestError(InvalidInputError):
    """A request the server cannot use, naming the OpenAI parameter at fault."""

    def __init__(self, text: Text, *, param: str | None = None, code: str | None = "invalid_value") -> None:
        super().__init__(text)
        self.param = param
        self.code = code


class AuthenticationError(RequestError):
    http_status = 401

    def __init__(self, text: Text) -> None:
        super().__init__(text, code="invalid_api_key")


class RequestTooLargeError(RequestError):
    http_status = 413

    def __init__(self, text: Text) -> None:
        super().__init__(text, code="request_too_large")


class ForbiddenError(RequestError):
    """A request from somewhere this server does not serve (a foreign Host or Origin)."""

    http_status = 403
    error_type = "permission_error"

    def __init__(self, text: Text, *, code: str) -> None:
        super().__init__(text, code=code)


class UnsupportedMediaTypeError(RequestError):
    http_status = 415

    def __init__(self, text: Text) -> None:
        super().__init__(text, param=None, code="unsupported_media_type")


class NotFoundError(RequestError):
    http_status = 404

    def __init__(self, text: Text, *, param: str | None = None, code: str = "not_found") -> None:
        super().__init__(text, param=param, code=code)


class MethodNotAllowedError(RequestError):
    http_status = 405

    def __init__(self, text: Text) -> None:
        super().__init__(text, code="method_not_allowed")


class QueueFullError(GptDeskError):
    """Too many requests wait for the model; the client should retry later."""

    http_status = 429
    error_type = "rate_limit_error"
    code = "queue_full"
    param = None


class ShuttingDownError(GptDeskError):
    """The server is stopping and takes no more work."""

    http_status = 503
    error_type = "server_error"
    code = "shutting_down"
    param = None


class ContextLengthError(SettingsError):
    """max_tokens does not fit in the model's context beside the prompt: a settings error on max_new_tokens,
    so that a GPT Desk client rebuilds it as one (OpenAI's code: context_length_exceeded)."""

    param = "max_tokens"
    code = "context_length_exceeded"

    def __init__(self, text: Text) -> None:
        super().__init__([SettingIssue("max_new_tokens", text)])


class RequestTimeoutError(RequestError):
    """A client that sent its request's headers too slowly (the connection is closed)."""

    http_status = 408

    def __init__(self, text: Text) -> None:
        super().__init__(text, code="request_timeout")


class TooManyConnectionsError(GptDeskError):
    """Every connection the server may hold open is being served; the client should retry."""

    http_status = 503
    error_type = "server_error"
    code = "too_many_connections"
    param = None


def negotiate_language(accept_language: str | None) -> Lang:
    """Russian or English from an Accept-Language header; else the server's own language."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in ("ru", "en"):
            return "ru" if primary == "ru" else "en"
    return current_language()


def error_body(exc: GptDeskError, lang: Lang) -> dict[str, Any]:
    """{"error": {message, type, param, code}} as OpenAI writes it, plus both languages for GPT Desk clients.

    The "gptdesk" member lets a GPT Desk client rebuild the same typed error with its Russian and
    English text (and each settings issue); other clients ignore it.
    """
    param = getattr(exc, "param", None)
    code = getattr(exc, "code", None)
    extra: dict[str, Any] = {"class": type(exc).__name__, "en": exc.text.en, "ru": exc.text.ru}
    if isinstance(exc, EmptyPromptError):
        param, code = param or "prompt", code or "empty_prompt"
    if isinstance(exc, SettingsError):
        issues = [
            {
                "field": issue.field,
                "param": SETTING_TO_PARAM.get(issue.field, issue.field),
                "level": issue.level,
                "en": issue.text.en,
                "ru": issue.text.ru,
            }
            for issue in exc.issues
        ]
        extra["issues"] = issues
        if param is None and issues:
            param = issues[0]["param"]
        code = code or "invalid_value"
    return {
        "error": {
            "message": exc.message(lang),
            "type": exc.error_type,
            "param": param,
            "code": code,
            "gptdesk": extra,
        }
    }


def internal_error(exc: BaseException) -> GptDeskError:
    """A bug or library fault, said plainly with its type (the traceback goes to the server log)."""
    return GptDeskError(
        Text(
            f"Internal server error ({type(exc).__name__}: {exc}). This is a bug in GPT Desk; the server log "
            "has the details. Please report it with the request that caused it.",
            f"Внутренняя ошибка сервера ({type(exc).__name__}: {exc}). Это ошибка GPT Desk; подробности в "
            "журнале сервера. Сообщите о ней вместе с запросом, который её вызвал.",
        )
    )
