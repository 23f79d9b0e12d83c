"""Slow and idle clients cannot hold the server: a header deadline and a cap on open connections (real sockets)."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

import httpx

from tests.server.conftest import ScriptedEngine, ServeFactory, wait_for

#: Generous bounds: the server's own deadline is a few seconds; these only keep a broken test from hanging.
CLOSED_WITHIN = 30.0


def _address(server: Any) -> tuple[str, int]:
    host, port = server.socket.getsockname()[:2]
    return host, port


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (end of stream or a reset), reading what it sent."""
    try:
        while select.select([sock], [], [], 0)[0]:
            if not sock.recv(65536):
                return True
    except OSError:
        return True
    return False


class SlowLoris(threading.Thread):
    """Sends a request's headers one byte at a time, every `pause` seconds, until the server closes the connection."""

    def __init__(self, address: tuple[str, int], pause: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(address, timeout=CLOSED_WITHIN)
        self.pause = pause
        self.sent = 0
        self.answer = b""
        self.closed = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        request = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Padding: " + b"a" * 10_000
        try:
            for byte in request:
                if self.stop.is_set():
                    return
                ready = select.select([self.sock], [], [], self.pause)[0]
                if ready:
                    data = self.sock.recv(65536)
                    self.answer += data
                    if not data:
                        break
                    continue
                self.sock.sendall(bytes([byte]))
                self.sent += 1
        except OSError:
            pass  # reset by the server: closed as well
        self.closed.set()

    def close(self) -> None:
        self.stop.set()
        self.join(CLOSED_WITHIN)
        self.sock.close()


def test_a_client_trickling_its_headers_is_cut_off_while_others_are_served(serve: ServeFactory) -> None:
    server = serve(ScriptedEngine())  # the default deadline
    loris = SlowLoris(_address(server))
    loris.start()
    begun = time.monotonic()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            served = 0
            while not loris.closed.is_set() and time.monotonic() - begun < CLOSED_WITHIN:
                done = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 3, "temperature": 0})
                assert done.status_code == 200 and done.json()["choices"][0]["text"] == "xxx"
                served += 1
                time.sleep(0.2)
        assert loris.closed.wait(CLOSED_WITHIN), "the trickling connection was still open"
        assert served >= 1
        # It sent only part of its headers, and got a JSON 408 that says why before the close.
        assert 0 < loris.sent < 200
        head, _, body = loris.answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), loris.answer[:200]
        assert b"request_timeout" in body and b"headers did not arrive" in body
    finally:
        loris.close()


def test_idle_connections_are_capped_and_requests_still_served(serve: ServeFactory) -> None:
    # A long header deadline, so that only the cap closes connections here.
    server = serve(ScriptedEngine(), max_connections=32, header_timeout_s=300)
    address = _address(server)
    idle = []
    try:
        for i in range(300):
            sock = socket.create_connection(address, timeout=CLOSED_WITHIN)
            if i % 2:
                sock.sendall(b"GET /health HTTP/1.1\r\nHo")  # half a request; the others send nothing
            idle.append(sock)
        # The server keeps at most 32 open: the rest were closed to make room, oldest first.
        wait_for(lambda: sum(_closed_by_server(s) for s in idle) >= 300 - 32, timeout=CLOSED_WITHIN)
        assert not any(_closed_by_server(s) for s in idle[-16:])
        # A real client is still served while the cap is full of idle sockets.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(3):
                assert http.get("/health").json()["status"] == "ok"
                done = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 2})
                assert done.json()["choices"][0]["text"] == "xx"
    finally:
        for sock in idle:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_deadline(serve: ServeFactory) -> None:
    server = serve(ScriptedEngine(), header_timeout_s=1.0)
    with socket.create_connection(_address(server), timeout=CLOSED_WITHIN) as silent:
        wait_for(lambda: _closed_by_server(silent), timeout=CLOSED_WITHIN)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/health").json()["status"] == "ok"


def test_a_keep_alive_client_is_served_again_and_a_busy_stream_is_never_closed_for_room(serve: ServeFactory) -> None:
    engine = ScriptedEngine(gated=True)
    server = serve(engine, max_connections=4, header_timeout_s=3.0)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        body = {"prompt": "a", "max_tokens": 3, "stream": True}
        with http.stream("POST", "/v1/completions", json=body) as stream:
            wait_for(lambda: engine.started == ["a"])
            others = [socket.create_connection(_address(server), timeout=CLOSED_WITHIN) for _ in range(8)]
            try:
                # The stream outlives the header deadline and the crowd of idle sockets, and ends whole.
                wait_for(lambda: all(_closed_by_server(s) for s in others), timeout=CLOSED_WITHIN)
                engine.release.set()
                lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
            finally:
                for sock in others:
                    sock.close()
        assert lines[-1] == "data: [DONE]"
        assert sum('"text":"x"' in line for line in lines) == 3
        # The same keep-alive connection takes the next request.
        assert http.get("/health").json()["status"] == "ok"
