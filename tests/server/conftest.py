"""Server fixtures: real servers on 127.0.0.1 over tiny models, and a scripted engine for timing-sensitive tests."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gptdesk.engine.base import Capabilities, Finished, ModelInfo, StreamEvent, Timings, TokenEvent, TokenPiece
from gptdesk.models.cost import CostEstimate
from gptdesk.models.shape import ModelShape
from gptdesk.settings.generation import GenerationSettings
from tests.conftest import build_tiny_gpt2


@pytest.fixture(scope="session")
def long_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 with a 1024-token context: long generations to interrupt."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-long") / "tiny-gpt2-1024", n_positions=1024, seed=1)


@pytest.fixture(scope="session")
def long_engine(long_model_dir: Path) -> Iterator[Any]:
    from gptdesk.engine.hf import TransformersEngine

    engine = TransformersEngine.load(long_model_dir, device="cpu", dtype="float32")
    yield engine
    engine.close()


ServeFactory = Callable[..., Any]


@pytest.fixture
def serve() -> Iterator[ServeFactory]:
    """serve(engine, **ServerConfig fields) -> a started BackgroundServer on a free 127.0.0.1 port."""
    from gptdesk.server.app import create_app
    from gptdesk.server.config import ServerConfig
    from gptdesk.server.runner import BackgroundServer

    started: list[BackgroundServer] = []

    def start(engine: Any, **config: Any) -> BackgroundServer:
        cfg = ServerConfig(port=0, **config)
        server = BackgroundServer(create_app(engine, cfg), cfg).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def queue_of(server: Any) -> Any:
    """The GenerationQueue of a running BackgroundServer (its FastAPI app's state)."""
    return server.app.state.queue


def listening_url(process: subprocess.Popen[str]) -> str:
    """The base URL a `gptdesk serve` child process prints on its standard error once it listens."""
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", line)
        if found:
            return found.group(1)
    raise AssertionError("the server never said where it listens")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until `predicate()` holds (state, not time, is what the tests check)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class ScriptedEngine:
    """An Engine that yields "x" tokens one by one; with `gated`, each token waits for `release`.

    It records the prompts it starts and whether each generation saw its cancel Event.
    """

    name = "scripted"

    def __init__(self, *, gated: bool = False) -> None:
        self.gated = gated
        self.release = threading.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.active = 0  # generations running now, and the most ever at once
        self.max_active = 0
        self._count = threading.Lock()
        self.info = ModelInfo(
            model_id="scripted",
            source="-",
            revision="test",
            engine="scripted",
            device="cpu",
            dtype="float32",
            n_params=0,
            n_layer=0,
            n_embd=0,
            n_head=0,
            n_positions=2048,
            vocab_size=1,
        )

    shape: ModelShape | None = None
    capabilities = Capabilities(local=True, beam_search=False, batched=False, logprobs=False)

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate | None:
        return None

    def cost(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate | None:
        return None

    def tokenize(self, text: str) -> list[TokenPiece]:
        return [TokenPiece(ord(ch), ch) for ch in text]

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        self.started.append(prompt)
        with self._count:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            yield from self._tokens(prompt, settings, cancel or threading.Event())
        finally:
            with self._count:
                self.active -= 1

    def _tokens(self, prompt: str, settings: GenerationSettings, cancel: threading.Event) -> Iterator[StreamEvent]:
        limit = settings.max_new_tokens or 16
        events: list[TokenEvent] = []
        while len(events) < limit and not cancel.is_set():
            if self.gated and not self.release.wait(0.01):
                continue
            event = TokenEvent(text="x", token_id=1, piece="x", logprob=-0.5)
            events.append(event)
            yield event
        if cancel.is_set():
            self.cancelled.append(prompt)
        reason = "cancelled" if len(events) < limit else "length"
        yield Finished(
            texts=["x" * len(events)],
            finish_reasons=[reason],
            prompt_tokens=len(prompt),
            generated_tokens=[len(events)],
            seed=settings.seed or 0,
            timings=Timings(),
            tokens=[events],
        )

    def close(self) -> None:
        pass
