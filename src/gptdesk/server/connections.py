"""Connection limits under uvicorn: a deadline for a request's headers and a cap on open connections.

uvicorn (0.54, h11) closes an idle keep-alive connection after a while, but any byte received cancels
that timer, and nothing at all limits how long a request's headers may take or how many connections
may sit open without a request: a "slow loris" that sends one byte a second, or a thousand sockets
that never send a request, hold the server's file descriptors for as long as they like. This
protocol, a subclass of uvicorn's own h11 protocol, closes a connection whose request headers are
not complete `header_timeout` seconds after it opened (or after its previous response), and when
`max_connections` are open, makes room for a new one by closing the connection that has waited
longest for a request; connections that are being served are never closed for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gptdesk.errors import GptDeskError
from gptdesk.i18n import Text, current_language
from gptdesk.server.errors import RequestTimeoutError, TooManyConnectionsError, error_body

log = logging.getLogger("gptdesk.server")


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a cap on open connections (see the module's docstring).

    The limits are class attributes: `limited_protocol` makes a subclass with a server's values.
    """

    header_timeout: ClassVar[float] = 5.0
    max_connections: ClassVar[int] = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_since = 0.0  # when it began waiting for a request's headers (the oldest is closed first)
        self._received = False  # whether any byte of the awaited request has come

    # -- uvicorn's protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()
        if len(self.connections) > self.max_connections and not self._make_room():
            self._refuse(
                TooManyConnectionsError(
                    Text(
                        f"The server has {self.max_connections} connections open and all of them are being "
                        "served. Retry in a moment.",
                        f"У сервера открыто {self.max_connections} соединений, и все заняты обслуживанием. "
                        "Повторите попытку чуть позже.",
                    )
                )
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None:
            self._received = True
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()  # the request's headers are in: it is being served

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_request()  # armed first: a pipelined request read by super() disarms it at once
        super().on_response_complete()

    # -- the limits ------------------------------------------------------------------------------------

    def _await_request(self) -> None:
        self._cancel_header_timer()
        self._received = False
        self._waiting_since = self.loop.time()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        if not self._received:
            log.debug("closing a connection that sent no request in %s s", self.header_timeout)
            self._close()
            return
        log.info("closing a connection whose request headers took over %s s", self.header_timeout)
        self._refuse(
            RequestTimeoutError(
                Text(
                    f"The request's headers did not arrive within {self.header_timeout:g} seconds, so the connection "
                    "is closed (a client that sends them slowly would hold the server). Send the whole request at "
                    "once.",
                    f"Заголовки запроса не пришли за {self.header_timeout:g} с, поэтому соединение закрыто (клиент, "
                    "передающий их медленно, занимал бы сервер). Отправляйте запрос целиком сразу.",
                )
            )
        )

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False if every one is being served."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, LimitedH11Protocol) and c is not self and c._header_timer is not None
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._waiting_since)
        log.debug("%d connections open: closing the one idle longest", len(self.connections))
        oldest._close()
        return True

    def _refuse(self, error: GptDeskError) -> None:
        """Answer with `error` as a raw HTTP response (no request may have been read) and close."""
        self._cancel_header_timer()
        body = json.dumps(error_body(error, current_language()), ensure_ascii=False).encode()
        reason = {408: b"Request Timeout", 503: b"Service Unavailable"}.get(error.http_status, b"Error")
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        self.transport.write(head % (error.http_status, reason, len(body)) + body)
        self._close()

    def _close(self) -> None:
        self._cancel_header_timer()
        self.connections.discard(self)  # counted out at once: connection_lost comes on a later loop turn
        if self.conn.our_state is not h11.ERROR:
            # A half-read request: h11 cannot close it politely, and the transport closes it anyway.
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def limited_protocol(header_timeout: float, max_connections: int) -> type[LimitedH11Protocol]:
    """The protocol class for uvicorn.Config(http=...) with these limits."""
    return type(
        "LimitedH11Protocol",
        (LimitedH11Protocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )
