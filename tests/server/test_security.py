"""A web page must not drive the local server: JSON bodies only, a Host allow-list, foreign origins refused, no CORS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gptdesk.server.config import ServerConfig, host_allowed, host_of, origin_allowed
from tests.server.conftest import ServeFactory, queue_of

PROMPT = "Москва — столица"
BODY = b'{"prompt": "\\u041c\\u043e\\u0441\\u043a\\u0432\\u0430", "max_tokens": 3, "temperature": 0}'


@pytest.fixture
def server(serve: ServeFactory, tiny_engine: Any) -> Any:
    return serve(tiny_engine)


@pytest.fixture
def http(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
    return str(error["message"])


def test_a_simple_cross_origin_post_from_a_web_page_is_refused(server: Any, http: httpx.Client) -> None:
    # What a page on evil.example can send to 127.0.0.1 without a CORS preflight: text/plain with its Origin.
    page = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://evil.example"}
    message = _refused(http.post("/v1/completions", content=BODY, headers=page), 403, "origin_not_allowed")
    assert "https://evil.example" in message
    # Without the Origin (a form, a Blob body, curl -d) the body type alone is refused.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        message = _refused(
            http.post("/v1/completions", content=BODY, headers={"Content-Type": content_type}),
            415,
            "unsupported_media_type",
        )
        assert content_type in message and "Content-Type: application/json" in message
    no_type = _refused(http.post("/v1/tokenize", content=b'{"text": "x"}'), 415, "unsupported_media_type")
    assert "no Content-Type" in no_type
    latin = {"Content-Type": "application/json; charset=latin-1"}
    _refused(http.post("/v1/completions", content=BODY, headers=latin), 415, "unsupported_media_type")
    assert queue_of(server).stats()["done"] == 0  # nothing of it reached the model
    # JSON itself works, with or without a charset, from a program or from the server's own page (/docs).
    own_page = {"Content-Type": "application/json; charset=utf-8", "Origin": server.url}
    assert http.post("/v1/completions", content=BODY, headers=own_page).status_code == 200
    assert http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2}).status_code == 200


def test_dns_rebinding_is_refused_by_the_host_check(server: Any, http: httpx.Client) -> None:
    # attacker.example now resolves to 127.0.0.1: the browser connects here but names the attacker's host.
    port = server.url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", "localhost.attacker.example", ""):
        headers = {"Host": host}
        message = _refused(
            http.post("/v1/completions", json={"prompt": PROMPT}, headers=headers), 403, "host_not_allowed"
        )
        assert repr(host) in message and "--allowed-host" in message
        for path in ("/v1/models", "/health", "/docs", "/openapi.json"):
            _refused(http.get(path, headers=headers), 403, "host_not_allowed")
    assert queue_of(server).stats()["done"] == 0
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST", "app.localhost:1"):
        assert http.get("/v1/models", headers={"Host": host}).status_code == 200, host
    ru = http.get("/health", headers={"Host": "attacker.example", "Accept-Language": "ru"}).json()
    assert "не имя этого сервера" in ru["error"]["message"]


def test_no_permissive_cors(server: Any, http: httpx.Client) -> None:
    preflight = http.options(
        "/v1/completions",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code >= 400
    assert not any(name.lower().startswith("access-control-") for name in preflight.headers)
    normal = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
    assert normal.status_code == 200
    assert not any(name.lower().startswith("access-control-") for name in normal.headers)
    _refused(http.get("/v1/models", headers={"Origin": "null"}), 403, "origin_not_allowed")


def test_allowed_hosts_and_the_network_server(serve: ServeFactory, tiny_engine: Any) -> None:
    server = serve(tiny_engine, allowed_hosts=("gpu-box.lan",))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/v1/models", headers={"Host": "gpu-box.lan:8000"}).status_code == 200
        _refused(http.get("/v1/models", headers={"Host": "other.lan"}), 403, "host_not_allowed")


def test_host_and_origin_rules() -> None:
    local = ServerConfig()
    assert host_of("LOCALHOST.:8000") == "localhost" and host_of("[::1]:80") == "::1"
    assert host_of("[::1") is None and host_of("::1") is None and host_of("host:port") is None and host_of("") is None
    assert host_allowed("10.1.2.3:8000", local)  # an address cannot be rebound to another computer
    assert not host_allowed("attacker.example", local) and not host_allowed("127.0.0.1.nip.io", local)
    network = ServerConfig(host="0.0.0.0", allow_remote=True, api_key="long-random-key")
    assert host_allowed("gpu-box.lan:8000", network)  # reached by its network names; the key guards it
    named = ServerConfig(host="localhost", port=8000)
    assert host_allowed("localhost:8000", named) and not host_allowed("evil.localhost.example", named)
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", local)
    assert origin_allowed("http://localhost:3000", "127.0.0.1:8000", local)  # this computer's own pages
    assert origin_allowed("http://10.1.2.3:8000", "10.1.2.3:8000", local)  # the server's own page by address
    assert not origin_allowed("http://10.1.2.3", "127.0.0.1:8000", local)  # another computer's page
    for origin in ("https://evil.example", "null", "file://", "http://evil.example/path", "javascript:x"):
        assert not origin_allowed(origin, "127.0.0.1:8000", local), origin
