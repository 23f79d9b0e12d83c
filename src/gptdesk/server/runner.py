"""Running the API: a socket bound with clear errors, uvicorn in the foreground or on a background thread."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import uvicorn

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.server.config import ServerConfig
from gptdesk.server.connections import limited_protocol


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), or InvalidInputError saying why not."""
    name = host.strip().strip("[]")
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInputError(
            Text(
                f"host = '{host}' is not an address of this computer ({exc.strerror}). Use 127.0.0.1 for this "
                "computer only, or 0.0.0.0 for every network interface.",
                f"host = «{host}» — не адрес этого компьютера ({exc.strerror}). Укажите 127.0.0.1, чтобы "
                "обслуживать только этот компьютер, или 0.0.0.0 — все сетевые интерфейсы.",
            )
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise _bind_error(host, port, exc) from None
    sock.set_inheritable(True)
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> InvalidInputError:
    if exc.errno == errno.EADDRINUSE:
        return InvalidInputError(
            Text(
                f"Port {port} on {host} is already in use (another server, or a `gptdesk serve` still running). "
                f"Stop that program, or choose another port with --port (e.g. {port + 1}).",
                f"Порт {port} на {host} уже занят (другим сервером или ещё работающим `gptdesk serve`). "
                f"Остановите ту программу или выберите другой порт через --port (например, {port + 1}).",
            )
        )
    if exc.errno == errno.EACCES:
        return InvalidInputError(
            Text(
                f"Port {port} needs administrator rights (ports below 1024 are reserved). Use a port of 1024 or "
                "above, e.g. --port 8000.",
                f"Для порта {port} нужны права администратора (порты ниже 1024 зарезервированы). Используйте "
                "порт 1024 или выше, например --port 8000.",
            )
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return InvalidInputError(
            Text(
                f"host = '{host}' is not an address of this computer. Use 127.0.0.1, or 0.0.0.0 for every "
                "network interface.",
                f"host = «{host}» — не адрес этого компьютера. Укажите 127.0.0.1 или 0.0.0.0 — все сетевые интерфейсы.",
            )
        )
    return InvalidInputError(
        Text(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Check --host and --port.",
            f"Не удаётся слушать {host}:{port}: {exc.strerror or exc}. Проверьте --host и --port.",
        )
    )


def _uvicorn_config(app: Any, config: ServerConfig, *, quiet: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        # uvicorn's h11 protocol with a deadline for request headers and a cap on open connections.
        http=limited_protocol(config.header_timeout_s, config.max_connections),
        ws="none",
        lifespan="on",
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        # Open streams are cut after this many seconds of shutdown; their generations are cancelled.
        timeout_graceful_shutdown=3,
    )


class _Server(uvicorn.Server):
    """uvicorn's Server, which first tells the app that shutdown has begun (GenerationQueue.begin_shutdown).

    uvicorn waits for open responses before the app's lifespan ends, and cuts them (a CancelledError
    per task in the log) after timeout_graceful_shutdown; a stream waiting for tokens would hold it
    that long. Failing the open jobs first lets every stream end at once with an error event.
    """

    def __init__(self, config: uvicorn.Config, begin_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._begin_shutdown = begin_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._begin_shutdown()
        await super().shutdown(sockets)


def _begin_shutdown(app: Any) -> Callable[[], None]:
    """What the app does when shutdown begins: its generation queue fails the open jobs."""
    queue = app.state.queue
    return cast("Callable[[], None]", queue.begin_shutdown)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}"


def serve_forever(app: Any, config: ServerConfig, sock: socket.socket) -> None:
    """Run the server in this thread until Ctrl+C (SIGINT) or SIGTERM."""
    server = _Server(_uvicorn_config(app, config, quiet=False), _begin_shutdown(app))
    server.run(sockets=[sock])


class BackgroundServer:
    """The API on a background thread (for tests, and for the window's "serve" switch).

    Use as a context manager: `with BackgroundServer(app) as server: server.url`.
    """

    def __init__(self, app: Any, config: ServerConfig | None = None) -> None:
        self.app = app
        self.config = config or ServerConfig(port=0)
        self.socket = bind_socket(self.config.host, self.config.port)
        self.url = url_of(self.socket)
        self._server = _Server(_uvicorn_config(app, self.config, quiet=True), _begin_shutdown(app))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.socket]}, name="gptdesk-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server thread stopped, or took too long, before it started listening")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
