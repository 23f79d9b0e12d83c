"""A fake Hugging Face hub on 127.0.0.1: the model API, resolve URLs, a CDN, Range requests and faults.

It answers the way huggingface.co does for what GPT Desk uses:
- GET /api/models/{repo}[/revision/{rev}][?blobs=true]: id, sha and siblings (size, blobId, lfs.sha256);
- HEAD/GET /{repo}/resolve/{rev}/{file}: small files directly, with ETag (the git object id) and
  X-Repo-Commit; LFS files with a 302 to a CDN on another port, with X-Linked-Etag (the sha256),
  X-Linked-Size and X-Repo-Commit on the redirect itself;
- the CDN honours `Range: bytes=N-` with 206 and Content-Range;
- unknown repos and files get 404 with X-Error-Code RepoNotFound / EntryNotFound.
Faults are switched on per file name: drop the connection after N bytes, serve damaged bytes, throttle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin")


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeFile:
    name: str
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else git_oid(self.data)


@dataclass
class FakeRepo:
    repo_id: str
    commit: str
    files: dict[str, FakeFile]


@dataclass
class Faults:
    """What goes wrong, per file name; counters run down as requests use them up."""

    drop_after: dict[str, int] = field(default_factory=dict)  # close the connection at this byte of the file
    drop_times: dict[str, int] = field(default_factory=dict)  # ... this many times (absent: every time)
    corrupt_times: dict[str, int] = field(default_factory=dict)  # serve a flipped byte this many times
    throttle: dict[str, float] = field(default_factory=dict)  # bytes per second, per file name
    fail_status: dict[str, list[int]] = field(default_factory=dict)  # GETs answer these statuses first, one each
    stall: set[str] = field(default_factory=set)  # "api" or file names: take the request, never answer
    stall_body: set[str] = field(default_factory=set)  # file names: send the headers, then never the body
    api_answer: tuple[str, bytes] | None = None  # the model API sends this (content type, body) instead


@dataclass
class Logged:
    method: str
    path: str
    headers: dict[str, str]
    port: int


class FakeHub:
    """Two servers: the hub (API and resolve) and its CDN. Use as a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.faults = Faults()
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._hub = _Server(self, cdn=False)
        self._cdn = _Server(self, cdn=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._hub.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.port}"

    def __enter__(self) -> FakeHub:
        self._hub.start()
        self._cdn.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self._hub.stop()
        self._cdn.stop()

    def add_repo(
        self, repo_id: str, folder: Path, *, commit: str | None = None, extra: dict[str, bytes] | None = None
    ) -> FakeRepo:
        files = {
            p.name: FakeFile(p.name, p.read_bytes(), p.name.endswith(LFS_SUFFIXES)) for p in sorted(folder.iterdir())
        }
        for name, data in (extra or {}).items():
            files[name] = FakeFile(name, data, name.endswith(LFS_SUFFIXES) or "/" in name)
        commit = commit or hashlib.sha1(repo_id.encode() + b"".join(f.data[:64] for f in files.values())).hexdigest()
        repo = FakeRepo(repo_id, commit, files)
        self.repos[repo_id] = repo
        return repo

    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        with self.lock:
            return [r for r in self.log if (method is None or r.method == method) and contains in r.path]

    def find_blob(self, sha256: str) -> FakeFile | None:
        for repo in self.repos.values():
            for f in repo.files.values():
                if f.lfs and f.sha256 == sha256:
                    return f
        return None


class _Server:
    def __init__(self, hub: FakeHub, *, cdn: bool) -> None:
        handler = type("Handler", (_Handler,), {"hub": hub, "cdn": cdn})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub
    cdn: bool

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> None:
        with self.hub.lock:
            self.hub.log.append(
                Logged(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.server.server_address[1],
                )
            )

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # -- routing ------------------------------------------------------------------------------

    def _route(self, *, head: bool) -> None:
        self._record()
        url = urlparse(self.path)
        path = unquote(url.path)
        if self.cdn:
            if path.startswith("/blobs/"):
                f = self.hub.find_blob(path[len("/blobs/") :])
                if f is not None:
                    return self._send_body(f, head=head, extra={"ETag": f'"{f.sha256}"'})
            return self._error(404, "EntryNotFound")
        if path.startswith("/api/models/"):
            return self._api(path[len("/api/models/") :], parse_qs(url.query))
        if "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, filename = rest.partition("/")
            return self._resolve(repo_id, revision, filename, head=head)
        return self._error(404, "EntryNotFound")

    def _repo(self, repo_id: str) -> FakeRepo | None:
        return self.hub.repos.get(repo_id)

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        if "/tree/" in rest:
            return self._tree(rest)
        if "api" in self.hub.faults.stall:
            return self._stall()
        if self.hub.faults.api_answer is not None:
            kind, body = self.hub.faults.api_answer
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        repo_id, _, revision = rest.partition("/revision/")
        repo = self._repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision and revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings: list[dict[str, Any]] = []
        for f in repo.files.values():
            item: dict[str, Any] = {"rfilename": f.name}
            if blobs:
                item["size"] = len(f.data)
                item["blobId"] = git_oid(f.data) if not f.lfs else hashlib.sha1(f.sha256.encode()).hexdigest()
                if f.lfs:
                    item["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}
            siblings.append(item)
        body = json.dumps(
            {
                "_id": "x",
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.commit,
                "private": False,
                "siblings": siblings,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _tree(self, rest: str) -> None:
        """The recursive file listing huggingface_hub's snapshot_download asks for."""
        repo_id, _, _revision = rest.partition("/tree/")
        repo = self._repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        entries: list[dict[str, Any]] = []
        for f in repo.files.values():
            entry: dict[str, Any] = {"type": "file", "oid": git_oid(f.data), "size": len(f.data), "path": f.name}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
            entries.append(entry)
        body = json.dumps(entries).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _resolve(self, repo_id: str, revision: str, filename: str, *, head: bool) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        f = repo.files.get(filename)
        if f is None:
            return self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
        if filename in self.hub.faults.stall:
            return self._stall()
        statuses = self.hub.faults.fail_status.get(filename)
        if statuses and not head:
            with self.hub.lock:
                status = statuses.pop(0)
            return self._error(status, "", "try again")
        if f.lfs:
            self.send_response(302)
            self.send_header("Location", f"{self.hub.cdn_url}/blobs/{f.sha256}?X-Signature=abc")
            self.send_header("ETag", f'"{git_oid(f.sha256.encode())}"')
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("X-Linked-Size", str(len(f.data)))
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._send_body(f, head=head, extra={"ETag": f'"{f.etag}"', "X-Repo-Commit": repo.commit})

    # -- bodies ---------------------------------------------------------------------------------

    def _send_body(self, f: FakeFile, *, head: bool, extra: dict[str, str]) -> None:
        data = f.data
        faults = self.hub.faults
        if not head:
            with self.hub.lock:
                left = faults.corrupt_times.get(f.name, 0)
                if left > 0:
                    faults.corrupt_times[f.name] = left - 1
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        size = len(data)
        start = 0
        rng = self.headers.get("Range")
        if rng:
            first = rng.removeprefix("bytes=").split("-")[0]
            start = int(first)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if head:
            return
        if f.name in faults.stall_body:
            self.wfile.flush()
            return self._stall()
        drop_at: int | None = None
        with self.hub.lock:
            if f.name in faults.drop_after:
                times = faults.drop_times.get(f.name)
                if times is None or times > 0:
                    drop_at = faults.drop_after[f.name]
                    if times is not None:
                        faults.drop_times[f.name] = times - 1
        body = data[start:]
        sent = 0
        chunk = 16 * 1024
        try:
            while sent < len(body):
                if self.hub.stopping.is_set():
                    break
                piece = body[sent : sent + chunk]
                if drop_at is not None and start + sent + len(piece) > drop_at:
                    piece = piece[: max(0, drop_at - start - sent)]
                    self.wfile.write(piece)
                    self.wfile.flush()
                    self._drop()
                    return
                self.wfile.write(piece)
                sent += len(piece)
                rate = faults.throttle.get(f.name)
                if rate:
                    self.wfile.flush()
                    time.sleep(len(piece) / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stall(self) -> None:
        """Accept the request and never answer, as a broken mirror or proxy does (until the hub stops)."""
        self.hub.stopping.wait()
        self.close_connection = True

    def _drop(self) -> None:
        """Cut the connection mid-body, as a flaky network does."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _error(self, status: int, code: str, message: str = "", commit: str | None = None) -> None:
        body = json.dumps({"error": message or code}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message or code)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def point_at(hub: FakeHub, monkeypatch: Any, cache: Path) -> None:
    """Send GPT Desk (and huggingface_hub) to this fake hub and a cache under the test's tmp dir."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; the test conftest set it before that.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
