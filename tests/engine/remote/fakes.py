"""Small real HTTP servers on 127.0.0.1 that answer as llama-cpp-python, llama-server, vLLM, TGI, Ollama… do.

Each imitates what identifies its program (owned_by, /props, /info, /api/version) and how it reads the
sampling parameters: a name it does not read is ignored, and a parameter not sent takes the server's own
default (llama-cpp-python's repeat_penalty 1.1, top_k 40). The "model" is a toy with three tokens whose
greedy text is « а а а…» without a repeat penalty and something else with one, so a text shows at once
whether the server applied the penalty GPT Desk meant.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VOCAB = [" а", " б", " в"]
LOGITS = [2.0, 1.9, 1.0]
MODEL_ID = "ai-forever/rugpt3small_based_on_gpt2"


def toy_generate(n: int, *, temperature: float, repeat_penalty: float, top_k: int, seed: int) -> list[str]:
    """The toy model: llama.cpp's repeat penalty (a seen token's positive logit divided by it), then greedy or
    sampling over the top_k."""
    out: list[int] = []
    rng = random.Random(seed)
    for _ in range(n):
        logits = [v / repeat_penalty if i in out and v > 0 else v for i, v in enumerate(LOGITS)]
        order = sorted(range(len(VOCAB)), key=lambda i: -logits[i])
        if temperature <= 0:
            out.append(order[0])
            continue
        kept = order[:top_k] if top_k > 0 else order
        weights = [math.exp(logits[i] / temperature) for i in kept]
        out.append(rng.choices(kept, weights)[0])
    return [VOCAB[i] for i in out]


def greedy_text(n: int, repeat_penalty: float = 1.0) -> str:
    return "".join(toy_generate(n, temperature=0, repeat_penalty=repeat_penalty, top_k=0, seed=0))


@dataclass
class Kind:
    """How one program answers."""

    owned_by: str | None  # None: no /v1/models at all (TGI before 2.1)
    gets: dict[str, Any] = field(default_factory=dict)  # GET endpoints that identify it
    card: dict[str, Any] = field(default_factory=dict)  # more of its /v1/models card
    # GPT Desk's meaning → (the name this server reads, its default when not sent); None: it cannot be set.
    temperature: tuple[str, float] = ("temperature", 1.0)
    repeat: tuple[str | None, float] = ("repetition_penalty", 1.0)
    top_k: tuple[str | None, int] = ("top_k", 0)
    usage: bool = True  # sends usage at the end of the stream
    tokenize: str | None = None  # its tokenize path
    tokens_answer: Callable[[list[int]], Any] = lambda ids: {"tokens": ids}
    refuse: Callable[[dict[str, Any]], str | None] = lambda body: None  # a 422 for a body it refuses
    hang: set[str] = field(default_factory=set)  # GET paths that never answer


KINDS: dict[str, Kind] = {
    # llama_cpp/server/app.py and types.py: owned_by "me"; temperature 0.8, top_k 40, repeat_penalty 1.1.
    "llama-cpp-python": Kind(
        "me",
        temperature=("temperature", 0.8),
        repeat=("repeat_penalty", 1.1),
        top_k=("top_k", 40),
        usage=False,
        tokenize="/extras/tokenize",
    ),
    # llama-server started with --repeat-penalty 1.1: its /props and owned_by "llamacpp".
    "llama.cpp": Kind(
        "llamacpp",
        gets={"/props": {"default_generation_settings": {"repeat_penalty": 1.1, "top_k": 40}, "total_slots": 1}},
        repeat=("repeat_penalty", 1.1),
        top_k=("top_k", 40),
        tokenize="/tokenize",
        tokens_answer=lambda ids: {"tokens": [{"id": i, "piece": VOCAB[i % 3]} for i in ids]},
    ),
    # vLLM with a model whose generation_config.json sets repetition_penalty 1.05.
    "vllm": Kind(
        "vllm",
        gets={"/version": {"version": "0.6.3"}},
        card={"max_model_len": 2048},
        repeat=("repetition_penalty", 1.05),
        tokenize="/tokenize",
        tokens_answer=lambda ids: {"count": len(ids), "tokens": ids, "max_model_len": 2048},
    ),
    # TGI 2.0: no /v1/models, /info names its router; top_p must be below 1; no top_k on /v1/completions.
    "tgi": Kind(
        None,
        gets={"/info": {"model_id": MODEL_ID, "router": "text-generation-router", "version": "2.0.4"}},
        top_k=(None, 0),
        usage=False,
        tokenize="/tokenize",
        tokens_answer=lambda ids: [{"id": i, "text": VOCAB[i % 3], "start": 0, "stop": 1} for i in ids],
        refuse=lambda body: "`top_p` must be > 0.0 and < 1.0" if body.get("top_p", 0.5) >= 1.0 else None,
    ),
    # Ollama serving a user's model (owned_by names the user): its OpenAI API cannot set repeat_penalty.
    "ollama": Kind("alice", gets={"/api/version": {"version": "0.5.7"}}, repeat=(None, 1.1), top_k=(None, 40)),
    # A server GPT Desk does not know, applying a repeat penalty of its own unless told in its own name.
    "unknown": Kind("acme", repeat=("repeat_penalty", 1.1), usage=False),
    # The same, with a /props that never answers.
    "silent-probe": Kind("acme", hang={"/props"}),
}


class FakeServer:
    """One fake program on 127.0.0.1: `url`, the completion bodies it got, and every path asked."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, data: Any) -> None:
                raw = json.dumps(data, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                server.paths.append(self.path)
                kind = server.kind
                if self.path in kind.hang:
                    server.release.wait(120)
                    return
                if self.path == "/v1/models" and kind.owned_by is not None:
                    card = {"id": MODEL_ID, "object": "model", "owned_by": kind.owned_by, **kind.card}
                    self._json(200, {"object": "list", "data": [card]})
                elif self.path in kind.gets:
                    self._json(200, kind.gets[self.path])
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                server.paths.append(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kind = server.kind
                if kind.tokenize is not None and self.path == kind.tokenize:
                    text = str(body.get("input") or body.get("content") or body.get("inputs") or body.get("prompt"))
                    self._json(200, kind.tokens_answer([len(w) for w in text.split()]))
                    return
                if self.path != "/v1/completions":
                    self._json(404, {"detail": "Not Found"})
                    return
                server.bodies.append(body)
                refused = kind.refuse(body)
                if refused:
                    self._json(422, {"error": refused, "error_type": "validation"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in server.chunks(body):
                    self.wfile.write(f"data: {chunk}\n\n".encode())
                    self.wfile.flush()

        return Handler

    def setting(self, body: dict[str, Any], meaning: tuple[str | None, float]) -> float:
        name, default = meaning
        value = body.get(name) if name is not None else None
        return float(value) if isinstance(value, int | float) else default

    def chunks(self, body: dict[str, Any]) -> Iterator[str]:
        kind = self.kind
        n = int(body.get("max_tokens", 16))
        pieces = toy_generate(
            n,
            temperature=self.setting(body, kind.temperature),
            repeat_penalty=self.setting(body, kind.repeat),
            top_k=int(self.setting(body, kind.top_k)),
            seed=int(body.get("seed") or 0),
        )
        for i, piece in enumerate(pieces):
            reason = "length" if i == len(pieces) - 1 else None
            choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": reason}
            yield json.dumps({"id": "cmpl-1", "object": "text_completion", "choices": [choice]}, ensure_ascii=False)
        if kind.usage:
            prompt_tokens = len(str(body["prompt"]).split())
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
            yield json.dumps({"id": "cmpl-1", "choices": [], "usage": usage})
        yield "[DONE]"
