"""Server-sent events: a streamed completion as OpenAI's chunks, then [DONE]."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from gptdesk.engine.base import Finished, LeadingBeam, Notice, TokenEvent
from gptdesk.server.errors import error_body
from gptdesk.server.protocol import Completion
from gptdesk.server.queue import Job, JobEnded, JobEvent, JobFailed
from gptdesk.server.responses import Builder, as_gptdesk_error, to_json


def sse(data: Completion | dict[str, Any]) -> bytes:
    return b"data: " + to_json(data) + b"\n\n"


async def events(
    job: Job, build: Builder, include_usage: bool, include_beam: bool, keepalive: float
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed completion.

    While a beam search runs, its leading hypothesis becomes a chunk with no choices and a
    `leading_beam` member only when the client asked for it (stream_options.include_leading_beam):
    other clients read choices[0] of every chunk. They get an SSE comment at least every
    `keepalive` seconds instead, so that a long search does not trip their read timeout.
    """
    last = time.monotonic()
    try:
        while True:
            try:
                item = await asyncio.wait_for(job.next(), keepalive)
            except TimeoutError:
                yield b": waiting for the model\n\n"  # an SSE comment: keeps the client's read timeout at bay
                last = time.monotonic()
                continue
            if isinstance(item, JobEnded):
                break
            if isinstance(item, JobFailed):
                error = as_gptdesk_error(item.error)
                yield sse(error_body(error, build.lang))
                break
            assert isinstance(item, JobEvent)
            event = item.event
            out: bytes | None = None
            if isinstance(event, Notice):
                build.notice(event)
            elif isinstance(event, TokenEvent):
                out = sse(build.chunk([build.token_choice(item.prompt_index, event)]))
            elif isinstance(event, LeadingBeam):
                if include_beam:
                    out = sse(build.chunk([], leading_beam=build.leading_beam(item.prompt_index, event)))
                elif time.monotonic() - last >= keepalive:
                    out = b": beam search running\n\n"
            elif isinstance(event, Finished):
                # One final chunk per choice, each with its own finish_reason, as the OpenAI API ends a stream.
                extra = {"seed": event.seed, "prompt_truncated_tokens": event.prompt_truncated_tokens}
                choices = build.final_choices(item.prompt_index, event)
                out = b"".join(sse(build.chunk([choice], **extra)) for choice in choices)
            if out is not None:
                yield out
                last = time.monotonic()
        if include_usage:
            yield sse(build.chunk([], usage=build.usage()))
        yield b"data: [DONE]\n\n"
    finally:
        job.abandon()


class EventStream(StreamingResponse):
    """A streamed completion whose generation stops as soon as the response ends for any reason."""

    def __init__(self, job: Job, events: AsyncIterator[bytes]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._job = job
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass  # the client went away mid-stream: the finally below stops its generation
        finally:
            # Starlette cancels the sending task when the client disconnects; the event generator may be
            # left suspended, so the job is stopped here rather than in its own finally.
            self._job.abandon()
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
