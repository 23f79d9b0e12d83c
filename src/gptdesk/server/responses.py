"""Building responses: OpenAI completion chunks and whole completions from engine events, and JSON errors."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from gptdesk.engine.base import Finished, LeadingBeam, Notice, TokenEvent, TokenPiece
from gptdesk.errors import GptDeskError
from gptdesk.i18n import Lang
from gptdesk.server.errors import error_body, internal_error
from gptdesk.server.protocol import (
    NEG_INF_LOGPROB,
    Alternative,
    Choice,
    Completion,
    CompletionRequest,
    LeadingBeamOut,
    Logprobs,
    NoticeOut,
    TokenOut,
    Usage,
    finite_logprob,
)
from gptdesk.server.queue import Job, JobEnded, JobEvent, JobFailed
from gptdesk.settings.generation import GenerationSettings

log = logging.getLogger("gptdesk.server")

#: How GPT Desk's finish reasons read in the OpenAI protocol.
FINISH_REASONS: dict[str, str] = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "cancelled"}


def error_response(exc: GptDeskError, lang: Lang) -> JSONResponse:
    headers = {"Retry-After": "2"} if exc.http_status == 429 else None
    return JSONResponse(error_body(exc, lang), status_code=exc.http_status, headers=headers)


@dataclass
class Builder:
    """Turns a job's engine events into OpenAI completion chunks and the final response."""

    req: CompletionRequest
    settings: GenerationSettings
    model: str
    fingerprint: str
    lang: Lang
    id: str = field(default_factory=lambda: "cmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    notices: list[NoticeOut] = field(default_factory=list)
    finished: dict[int, Finished] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)
    streamed: dict[int, str] = field(default_factory=dict)  # each choice's text sent so far (prompt not counted)

    @property
    def n(self) -> int:
        return self.settings.num_return_sequences

    def _prefix(self, index: int) -> str:
        """The prompt, in front of a choice's first text when echo is on."""
        if not self.req.echo or index in self.offsets:
            return ""
        return self.req.prompts[index // self.n]

    def notice(self, notice: Notice) -> None:
        self.notices.append(
            NoticeOut(code=notice.code, message=notice.text.get(self.lang), en=notice.text.en, ru=notice.text.ru)
        )

    def token_choice(self, prompt_index: int, event: TokenEvent) -> Choice:
        index = prompt_index * self.n + event.sequence
        prefix = self._prefix(index)
        offset = self.offsets.get(index, 0) + len(prefix)
        self.offsets[index] = offset + len(event.text)
        self.streamed[index] = self.streamed.get(index, "") + event.text
        real = event.token_id >= 0
        logprobs = None
        if self.req.logprobs is not None:
            logprobs = _logprobs([event] if real else [], offset)
        ids = ([event.token_id] if real else []) if self.req.return_token_ids else None
        return Choice(index=index, text=prefix + event.text, logprobs=logprobs, token_ids=ids)

    def final_choices(self, prompt_index: int, finished: Finished) -> list[Choice]:
        self.finished[prompt_index] = finished
        choices = []
        for seq, reason in enumerate(finished.finish_reasons):
            index = prompt_index * self.n + seq
            prefix = self._prefix(index)
            self.offsets.setdefault(index, len(prefix))
            # An engine that sent no token events for a text (or not all of them) still returns it whole.
            final = finished.texts[seq] if seq < len(finished.texts) else ""
            sent = self.streamed.get(index, "")
            rest = final[len(sent) :] if final.startswith(sent) else ""
            choices.append(
                Choice(
                    index=index,
                    text=prefix + rest,
                    finish_reason=FINISH_REASONS.get(reason, reason),
                    stop_reason=self._stop_reason(reason, finished, seq),
                )
            )
        return choices

    def _stop_reason(self, reason: str, finished: Finished, seq: int) -> str | None:
        """The stop string that ended a text, as the engine reports it (vLLM's stop_reason); None for the end
        of text or length."""
        if reason != "stop":
            return None
        return finished.stop_strings[seq] if seq < len(finished.stop_strings) else None

    def leading_beam(self, prompt_index: int, beam: LeadingBeam) -> LeadingBeamOut:
        return LeadingBeamOut(
            index=prompt_index * self.n,
            text=beam.text,
            token_ids=list(beam.token_ids),
            score=_finite(beam.score),
            step=beam.step,
        )

    def chunk(self, choices: list[Choice], **extra: Any) -> Completion:
        notices, self.notices = self.notices or None, []
        return Completion(
            id=self.id,
            created=self.created,
            model=self.model,
            system_fingerprint=self.fingerprint,
            choices=choices,
            notices=notices,
            **extra,
        )

    def usage(self) -> Usage:
        prompt = sum(f.prompt_tokens for f in self.finished.values())
        completion = sum(sum(f.generated_tokens) for f in self.finished.values())
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def response(self) -> Completion:
        choices: list[Choice] = []
        for prompt_index, finished in sorted(self.finished.items()):
            for seq, text in enumerate(finished.texts):
                index = prompt_index * self.n + seq
                events = finished.tokens[seq] if seq < len(finished.tokens) else []
                prefix = self.req.prompts[prompt_index] if self.req.echo else ""
                reason = finished.finish_reasons[seq]
                real = [e for e in events if e.token_id >= 0]
                choices.append(
                    Choice(
                        index=index,
                        text=prefix + text,
                        logprobs=_logprobs(events, len(prefix)) if self.req.logprobs is not None else None,
                        finish_reason=FINISH_REASONS.get(reason, reason),
                        stop_reason=self._stop_reason(reason, finished, seq),
                        token_ids=[e.token_id for e in real] if self.req.return_token_ids else None,
                    )
                )
        seeds = {f.seed for f in self.finished.values()}
        return self.chunk(
            choices,
            usage=self.usage(),
            seed=seeds.pop() if len(seeds) == 1 else None,
            prompt_truncated_tokens=max((f.prompt_truncated_tokens for f in self.finished.values()), default=0),
        )


def _logprobs(events: list[TokenEvent], offset: int) -> Logprobs:
    """OpenAI's logprobs for these events; text_offset counts from `offset` in the returned text."""
    out = Logprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[], top_alternatives=[])
    assert out.top_logprobs is not None and out.top_alternatives is not None
    for event in events:
        if event.token_id >= 0:
            out.tokens.append(event.piece)
            out.token_logprobs.append(finite_logprob(event.logprob))
            top: dict[str, float] = {}
            for alt in event.alternatives:
                top.setdefault(alt.text, _finite(alt.logprob))
            out.top_logprobs.append(top)
            out.top_alternatives.append(
                [Alternative(id=a.token_id, piece=a.text, logprob=_finite(a.logprob)) for a in event.alternatives]
            )
            out.text_offset.append(offset)
        offset += len(event.text)
    return out


def _finite(logprob: float) -> float:
    value = finite_logprob(logprob)
    return NEG_INF_LOGPROB if value is None else value


def token_pieces(text: str, pieces: list[TokenPiece]) -> list[TokenOut]:
    """The tokens of `text` as /v1/tokenize gives them: id, readable piece and exact bytes.

    A byte-level vocabulary splits a character it has no token for (Ё in a small vocabulary, 😀) into
    tokens of one or more of its UTF-8 bytes, which the engine's pieces show as <0xD0>. Here each
    such token's piece is the whole character it is part of, so a client shows text rather than
    byte codes; `bytes` holds the token's own bytes, and joining every token's bytes gives `text`
    exactly (its pieces, where a character is split, repeat that character).
    """
    data = text.encode("utf-8")
    raw = [_piece_bytes(p.text) for p in pieces]
    if b"".join(raw) != data:
        # Not a byte-level vocabulary, or a piece that only looks like <0x..>: the pieces taken as they are.
        raw = [p.text.encode("utf-8") for p in pieces]
        if b"".join(raw) != data:
            return [TokenOut(id=p.id, piece=p.text, bytes=list(r)) for p, r in zip(pieces, raw, strict=True)]
    out: list[TokenOut] = []
    start = 0
    for piece, own in zip(pieces, raw, strict=True):
        end = start + len(own)
        first, last = start, end
        while 0 < first < len(data) and _continues(data[first]):  # back to the start of its first character
            first -= 1
        while last < len(data) and _continues(data[last]):  # on to the end of its last character
            last += 1
        shown = data[first:last].decode("utf-8") if own else piece.text
        out.append(TokenOut(id=piece.id, piece=shown, bytes=list(own)))
        start = end
    return out


_BYTE_PLACEHOLDER = re.compile(r"<0x([0-9A-F]{2})>")


def _piece_bytes(piece: str) -> bytes:
    """The bytes of an engine's piece: its text, with a lone byte of a split character written as <0xD0>."""
    out = bytearray()
    at = 0
    for found in _BYTE_PLACEHOLDER.finditer(piece):
        out += piece[at : found.start()].encode("utf-8")
        out.append(int(found.group(1), 16))
        at = found.end()
    out += piece[at:].encode("utf-8")
    return bytes(out)


def _continues(byte: int) -> bool:
    """A UTF-8 continuation byte (10xxxxxx): the middle or end of a character, never its start."""
    return byte & 0xC0 == 0x80


def to_json(data: Completion | dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; a completion leaves out GPT Desk's extras where they are empty."""
    if isinstance(data, Completion):
        data = data.model_dump()
        for key in ("usage", "seed", "prompt_truncated_tokens", "notices", "leading_beam"):
            if data.get(key) is None:
                data.pop(key, None)
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def _collect(job: Job, build: Builder) -> Completion:
    while True:
        item = await job.next()
        if isinstance(item, JobEnded):
            return build.response()
        if isinstance(item, JobFailed):
            raise as_gptdesk_error(item.error)
        assert isinstance(item, JobEvent)
        if isinstance(item.event, Notice):
            build.notice(item.event)
        elif isinstance(item.event, Finished):
            build.finished[item.prompt_index] = item.event


async def _until_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def complete(job: Job, build: Builder, request: Request) -> Response:
    """Wait for a whole completion; if the client leaves first, stop its generation."""
    collect = asyncio.ensure_future(_collect(job, build))
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collect.done():
            job.abandon()
            collect.cancel()
            return Response(status_code=499)  # nobody reads it: the client has gone
        return Response(to_json(collect.result()), media_type="application/json")
    finally:
        gone.cancel()
        job.abandon()


def as_gptdesk_error(exc: BaseException) -> GptDeskError:
    if isinstance(exc, GptDeskError):
        return exc
    log.error("generation failed", exc_info=exc)
    return internal_error(exc)
