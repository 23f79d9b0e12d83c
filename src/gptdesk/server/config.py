"""The server's settings and the checks on them (where it may listen, its limits)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Requests that may wait while one generates; one more gets 429.
DEFAULT_MAX_QUEUE = 32
#: The most new tokens one request may ask for (the model's context may allow fewer).
DEFAULT_MAX_TOKENS_LIMIT = 1024
#: The largest request body: 1 MiB holds a prompt far beyond any GPT-2 context.
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: max_tokens when a request leaves it out: the OpenAI API's own default.
OPENAI_DEFAULT_MAX_TOKENS = 16
#: The most prompts one request may carry (OpenAI's batch form, prompt: [..]).
MAX_PROMPTS = 16
#: The most log-probability alternatives per token (vLLM's default cap as well).
MAX_LOGPROBS = 20


@dataclass(frozen=True)
class ServerConfig:
    """How `gptdesk serve` listens and what it lets one request ask for."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None  # when set, every /v1 request needs "Authorization: Bearer <key>"
    allow_remote: bool = False  # listening beyond this computer needs this and an api_key
    max_queue: int = DEFAULT_MAX_QUEUE
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    default_max_tokens: int = OPENAI_DEFAULT_MAX_TOKENS
    keepalive_s: float = 10.0  # an SSE comment this often keeps queued streams' clients from timing out
    model_name: str | None = None  # the id /v1/models shows (default: the engine's model id)

    def check(self) -> None:
        """Raise InvalidInputError, naming the value and the fix, if any setting is unusable."""
        if not 0 <= self.port <= 65535:
            raise InvalidInputError(
                Text(
                    f"port = {self.port} is not a TCP port: use 1–65535 (8000 is usual), or 0 for any free port.",
                    f"port = {self.port} — не номер TCP-порта: укажите 1–65535 (обычно 8000) или 0 — любой свободный.",
                )
            )
        if self.max_queue < 0:
            raise InvalidInputError(
                Text(
                    f"max_queue = {self.max_queue} is negative: give how many requests may wait while one "
                    "generates (0 or more; 32 is the default).",
                    f"max_queue = {self.max_queue} — отрицательное число: укажите, сколько запросов может ждать, "
                    "пока идёт генерация (0 или больше; по умолчанию 32).",
                )
            )
        if not 1 <= self.max_tokens_limit <= 4096:
            raise InvalidInputError(
                Text(
                    f"max_tokens_limit = {self.max_tokens_limit} is out of range: give 1–4096 "
                    f"(default {DEFAULT_MAX_TOKENS_LIMIT}).",
                    f"max_tokens_limit = {self.max_tokens_limit} вне диапазона: укажите 1–4096 "
                    f"(по умолчанию {DEFAULT_MAX_TOKENS_LIMIT}).",
                )
            )
        if self.max_body_bytes < 1024:
            raise InvalidInputError(
                Text(
                    f"max_body_bytes = {self.max_body_bytes} is too small for any request: give at least 1024.",
                    f"max_body_bytes = {self.max_body_bytes} — слишком мало для любого запроса: укажите не "
                    "меньше 1024.",
                )
            )
        if self.api_key is not None and (not self.api_key.strip() or any(c.isspace() for c in self.api_key)):
            raise InvalidInputError(
                Text(
                    "The API key is empty or contains spaces, so no client could send it in an "
                    "Authorization header. Use a long random string, e.g. from `openssl rand -hex 24`.",
                    "Ключ API пуст или содержит пробелы, поэтому клиент не сможет передать его в заголовке "
                    "Authorization. Используйте длинную случайную строку, например из `openssl rand -hex 24`.",
                )
            )
        if is_loopback(self.host):
            return
        if not self.allow_remote:
            raise InvalidInputError(
                Text(
                    f"host = '{self.host}' would let other computers reach this server. Keep the default "
                    f"{DEFAULT_HOST} to serve only this computer, or add --allow-remote together with "
                    "--api-key to open it to the network on purpose.",
                    f"host = «{self.host}» откроет сервер другим компьютерам. Оставьте {DEFAULT_HOST}, чтобы "
                    "обслуживать только этот компьютер, или добавьте --allow-remote вместе с --api-key, "
                    "чтобы сознательно открыть его в сеть.",
                )
            )
        if self.api_key is None:
            raise InvalidInputError(
                Text(
                    f"host = '{self.host}' with --allow-remote still needs an API key: without one anyone on "
                    "the network could use this computer's model. Add --api-key KEY (or set GPTDESK_API_KEY).",
                    f"host = «{self.host}» с --allow-remote всё равно требует ключ API: без него модель этого "
                    "компьютера сможет использовать любой в сети. Добавьте --api-key КЛЮЧ (или задайте "
                    "GPTDESK_API_KEY).",
                )
            )


def is_loopback(host: str) -> bool:
    """True for addresses only this computer can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
