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
#: The most tokens one request may ask for in all: prompts × sequences per prompt × max_tokens, where a
#: prompt runs max(n, num_beams) sequences. 16 variants or 16 beams of 1024 tokens fit; 16 prompts × 16
#: variants × 1024 tokens (a quarter of a million tokens, hours of CPU time) do not.
DEFAULT_MAX_REQUEST_TOKENS = 16 * 1024
#: The largest request body: 1 MiB holds a prompt far beyond any GPT-2 context.
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: max_tokens when a request leaves it out: the OpenAI API's own default.
OPENAI_DEFAULT_MAX_TOKENS = 16
#: The most prompts one request may carry (OpenAI's batch form, prompt: [..]).
MAX_PROMPTS = 16
#: The most log-probability alternatives per token (vLLM's default cap as well).
MAX_LOGPROBS = 20
#: Seconds a client has to send a request's headers, from opening the connection or from the previous
#: response: every HTTP client sends them at once; a "slow loris" that trickles them is cut off.
DEFAULT_HEADER_TIMEOUT_S = 5.0
#: The most connections open at once; beyond it the one waiting longest for a request is closed to make
#: room (connections being served are never closed for it). Well below the usual 1024 file descriptors.
DEFAULT_MAX_CONNECTIONS = 512


@dataclass(frozen=True)
class ServerConfig:
    """How `gptdesk serve` listens and what it lets one request ask for."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None  # when set, every /v1 request needs "Authorization: Bearer <key>"
    allow_remote: bool = False  # listening beyond this computer needs this and an api_key
    max_queue: int = DEFAULT_MAX_QUEUE
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT
    max_request_tokens: int = DEFAULT_MAX_REQUEST_TOKENS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    default_max_tokens: int = OPENAI_DEFAULT_MAX_TOKENS
    keepalive_s: float = 10.0  # an SSE comment this often keeps queued streams' clients from timing out
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    model_name: str | None = None  # the id /v1/models shows (default: the engine's model id)
    # Host names clients may use besides localhost, the loopback addresses and `host` (e.g. a reverse
    # proxy's name); any other Host header is refused, against DNS rebinding.
    allowed_hosts: tuple[str, ...] = ()

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
        if self.max_request_tokens < 1:
            raise InvalidInputError(
                Text(
                    f"max_request_tokens = {self.max_request_tokens} is too small: give how many tokens one request "
                    "may ask for in all (prompts × n or num_beams × max_tokens; default "
                    f"{DEFAULT_MAX_REQUEST_TOKENS}).",
                    f"max_request_tokens = {self.max_request_tokens} — слишком мало: укажите, сколько токенов в сумме "
                    f"может запросить один запрос (затравки × n или num_beams × max_tokens; по умолчанию "
                    f"{DEFAULT_MAX_REQUEST_TOKENS}).",
                )
            )
        for name in self.allowed_hosts:
            if not name.strip() or any(ch in name for ch in "/@ \t"):
                raise InvalidInputError(
                    Text(
                        f"allowed host {name!r} is not a host name: give a name such as gpu-box.lan (no scheme, "
                        "path or spaces).",
                        f"разрешённый хост {name!r} — не имя хоста: укажите имя вроде gpu-box.lan (без схемы, "
                        "пути и пробелов).",
                    )
                )
        if not 0.1 <= self.header_timeout_s <= 600:
            raise InvalidInputError(
                Text(
                    f"header_timeout_s = {self.header_timeout_s} is out of range: give 0.1–600 seconds for a "
                    f"request's headers to arrive (default {DEFAULT_HEADER_TIMEOUT_S:g}).",
                    f"header_timeout_s = {self.header_timeout_s} вне диапазона: укажите 0.1–600 секунд на приход "
                    f"заголовков запроса (по умолчанию {DEFAULT_HEADER_TIMEOUT_S:g}).",
                )
            )
        if self.max_connections < 2:
            raise InvalidInputError(
                Text(
                    f"max_connections = {self.max_connections} is too small: give how many connections may be "
                    f"open at once (at least 2; default {DEFAULT_MAX_CONNECTIONS}).",
                    f"max_connections = {self.max_connections} — слишком мало: укажите, сколько соединений может "
                    f"быть открыто одновременно (не меньше 2; по умолчанию {DEFAULT_MAX_CONNECTIONS}).",
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


def host_of(authority: str) -> str | None:
    """The host name of a Host header ('localhost:8000', '[::1]:8000'), lower case and without the port.

    None when it cannot be read (a bare IPv6 address, a port that is not a number, nothing at all).
    """
    value = authority.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :] if end > 0 else "?"
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    name = name.rstrip(".")
    return name or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _named_hosts(config: ServerConfig) -> set[str]:
    """Host names (not addresses) that reach this server without any DNS lookup an attacker controls."""
    names = {"localhost", config.host.strip().strip("[]").lower().rstrip(".")}
    names.update(name.strip().lower().rstrip(".") for name in config.allowed_hosts)
    return names


def host_allowed(authority: str, config: ServerConfig) -> bool:
    """Whether a request's Host header names this server, the defence against DNS rebinding.

    An IP address cannot be rebound, so any is accepted; a name must be localhost (or *.localhost,
    which never leaves this computer), the configured host or one of `allowed_hosts`. A page on
    attacker.example whose name the attacker points at 127.0.0.1 sends Host: attacker.example, which
    is refused. A server listening on the network (which needs an API key, so a rebound page gets
    nowhere) is reached by whatever names the network gives it: any Host is accepted there, as
    ollama does.
    """
    if not is_loopback(config.host):
        return True
    name = host_of(authority)
    if name is None:
        return False
    return _is_ip(name) or name.endswith(".localhost") or name in _named_hosts(config)


def origin_allowed(origin: str, host: str, config: ServerConfig) -> bool:
    """Whether a browser page from `origin` may call this server (the request's Host header is `host`).

    Allowed: the server's own pages (the origin's host is the Host the request was sent to, as on
    /docs), and pages from this computer's loopback names and the configured names. Refused: any
    other site, and the opaque origin "null" (sandboxed frames, local files).
    """
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        return False
    name = host_of(rest)
    if name is None:
        return False
    if name == host_of(host):
        return True
    if _is_ip(name):
        return is_loopback(name)
    return name.endswith(".localhost") or name in _named_hosts(config)
