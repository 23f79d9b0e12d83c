"""One generation at a time, first come first served: a worker thread runs the engine, asyncio awaits its events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from gptdesk.engine.base import Engine, Finished, StreamEvent
from gptdesk.i18n import Text
from gptdesk.server.errors import QueueFullError, ShuttingDownError
from gptdesk.settings.generation import GenerationSettings

JobState = Literal["waiting", "running", "done", "cancelled", "failed", "abandoned"]


@dataclass(frozen=True)
class JobEvent:
    """One engine event of a job, with the index of the prompt it belongs to."""

    prompt_index: int
    event: StreamEvent


@dataclass(frozen=True)
class JobFailed:
    error: BaseException


@dataclass(frozen=True)
class JobEnded:
    pass


JobItem = JobEvent | JobFailed | JobEnded


@dataclass(frozen=True)
class JobRecord:
    """What became of a finished job (kept for statistics and tests)."""

    id: int
    state: JobState
    finish_reasons: tuple[str, ...]
    generated_tokens: int
    waited_s: float
    ran_s: float


class Job:
    """A request's generation: its prompts and settings, a cancel Event, and the events the worker sends."""

    def __init__(
        self,
        job_id: int,
        prompts: list[str],
        settings: GenerationSettings,
        top_alternatives: int,
        loop: asyncio.AbstractEventLoop,
        owner: GenerationQueue,
    ) -> None:
        self.id = job_id
        self.prompts = prompts
        self.settings = settings
        self.top_alternatives = top_alternatives
        self.cancel = threading.Event()
        self.state: JobState = "waiting"
        self.submitted = time.monotonic()
        self.started: float | None = None
        self._loop = loop
        self._items: asyncio.Queue[JobItem] = asyncio.Queue()
        self._owner = owner

    def emit(self, item: JobItem) -> None:
        """Hand an item to the request's task (called from the worker thread)."""
        # RuntimeError: the event loop is closed, so nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    async def next(self) -> JobItem:
        return await self._items.get()

    def abandon(self) -> None:
        """The client went away (or the response is over): stop generating and leave the queue."""
        self.cancel.set()
        self._owner.discard(self)


class GenerationQueue:
    """Runs jobs one at a time in submission order; at most `max_waiting` wait behind the running one.

    The engine holds its own lock, but a lock is not fair: this queue is, and it lets a waiting
    request whose client disconnected leave before it costs anything.
    """

    def __init__(self, engine: Engine, *, max_waiting: int) -> None:
        self.engine = engine
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self.history: deque[JobRecord] = deque(maxlen=1000)
        self.rejected = 0

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._work, name="gptdesk-server-worker", daemon=True)
            self._thread.start()

    def begin_shutdown(self) -> None:
        """The server is stopping: every open job fails at once with ShuttingDownError, the running
        generation is cancelled (it stops within one step) and the worker ends after it.

        Called on the event loop as soon as shutdown starts, before the server waits for open
        connections, so that streaming clients get a final error event rather than a cut connection.
        """
        with self._cond:
            self._closing = True
            waiting = list(self._waiting)
            self._waiting.clear()
            running = self._running
            for job in waiting:
                job.state = "abandoned"
                self._record(job, (), 0)
            self._cond.notify_all()
        # The error goes out before the cancel is set, so it reaches the client ahead of the
        # "cancelled" result the worker then sends (which nobody reads any more).
        for job in [*waiting, *([running] if running is not None else [])]:
            job.emit(JobFailed(_shutting_down()))
            job.cancel.set()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything, fail the open jobs and stop the worker."""
        self.begin_shutdown()
        with self._cond:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    # -- jobs ----------------------------------------------------------------------------------------

    def submit(self, prompts: list[str], settings: GenerationSettings, top_alternatives: int) -> Job:
        """Queue a job (from the event loop); QueueFullError when too many already wait."""
        loop = asyncio.get_running_loop()
        self.start()
        with self._cond:
            if self._closing:
                raise _shutting_down()
            busy = len(self._waiting) + (self._running is not None)
            if busy > self.max_waiting:
                self.rejected += 1
                raise QueueFullError(
                    Text(
                        f"The server is busy: one request is generating and {len(self._waiting)} are waiting, the "
                        f"most it queues (--max-queue {self.max_waiting}). Retry in a few seconds, or restart the "
                        "server with a larger --max-queue.",
                        f"Сервер занят: один запрос генерируется и {len(self._waiting)} ждут — это предел очереди "
                        f"(--max-queue {self.max_waiting}). Повторите через несколько секунд или перезапустите "
                        "сервер с большим --max-queue.",
                    )
                )
            job = Job(next(self._ids), prompts, settings, top_alternatives, loop, self)
            self._waiting.append(job)
            self._cond.notify_all()
        return job

    def discard(self, job: Job) -> None:
        """Take a job out of the queue if it has not started (it was abandoned)."""
        with self._cond:
            if job.state == "waiting" and job in self._waiting:
                self._waiting.remove(job)
                job.state = "abandoned"
                self._record(job, (), 0)

    def stats(self) -> dict[str, int]:
        with self._cond:
            done = [r for r in self.history if r.state == "done"]
            return {
                "waiting": len(self._waiting),
                "running": int(self._running is not None),
                "done": len(done),
                "cancelled": sum(r.state == "cancelled" for r in self.history),
                "failed": sum(r.state == "failed" for r in self.history),
                "abandoned": sum(r.state == "abandoned" for r in self.history),
                "rejected": self.rejected,
                "generated_tokens": sum(r.generated_tokens for r in self.history),
            }

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing runs or waits (for tests and shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # -- the worker ----------------------------------------------------------------------------------

    def _next_job(self) -> Job | None:
        with self._cond:
            while not self._waiting and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            job = self._waiting.popleft()
            job.state = "running"
            job.started = time.monotonic()
            self._running = job
            return job

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        reasons: list[str] = []
        tokens = 0
        state: JobState = "done"
        try:
            for index, prompt in enumerate(job.prompts):
                if job.cancel.is_set():
                    break
                stream = self.engine.stream(prompt, job.settings, job.cancel, top_alternatives=job.top_alternatives)
                for event in stream:
                    if isinstance(event, Finished):
                        reasons.extend(event.finish_reasons)
                        tokens += sum(event.generated_tokens)
                    job.emit(JobEvent(index, event))
            job.emit(JobEnded())
            complete = len(reasons) == len(job.prompts) * job.settings.num_return_sequences
            if "cancelled" in reasons or not complete:
                state = "cancelled"
        except BaseException as exc:  # handed to the request's task, which answers with the error
            state = "failed"
            job.emit(JobFailed(exc))
        finally:
            with self._cond:
                job.state = state
                self._running = None
                self._record(job, tuple(reasons), tokens)
                self._cond.notify_all()

    def _record(self, job: Job, reasons: tuple[str, ...], tokens: int) -> None:
        now = time.monotonic()
        started = job.started if job.started is not None else now
        self.history.append(JobRecord(job.id, job.state, reasons, tokens, started - job.submitted, now - started))


def _shutting_down() -> ShuttingDownError:
    return ShuttingDownError(
        Text(
            "The server is shutting down and takes no more requests. Start it again with `gptdesk serve`.",
            "Сервер завершает работу и больше не принимает запросы. Запустите его снова: `gptdesk serve`.",
        )
    )
