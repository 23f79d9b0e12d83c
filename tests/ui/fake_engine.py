"""A scripted engine implementing the Engine protocol, with a configurable delay per token."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator, Sequence

from gptdesk.engine.base import (
    Alternative,
    Capabilities,
    Finished,
    FinishReason,
    LeadingBeam,
    ModelInfo,
    Notice,
    StreamEvent,
    Timings,
    TokenEvent,
    TokenPiece,
)
from gptdesk.errors import EmptyPromptError, EngineError
from gptdesk.i18n import Text
from gptdesk.models.cost import CostEstimate, check_affordable, estimate
from gptdesk.models.shape import ModelShape
from gptdesk.settings.generation import GenerationSettings

#: Pieces the fake model writes: Cyrillic, spaces and punctuation, like a Russian GPT-2.
SCRIPT: tuple[str, ...] = (
    " Жили",
    "-",
    "были",
    " старик",
    " со",
    " старухой",
    " у",
    " самого",
    " синего",
    " моря",
    ".",
)


class FakeEngine:
    """Writes `script` token by token (cycling), sleeping `delay` seconds per token as a model computes.

    Greedy decoding (do_sample off) writes the script in order; sampling picks pieces with a
    generator seeded by the settings' seed, so the same seed gives the same text. Cancellation is
    checked after each token, like transformers' stopping criteria.
    """

    name = "fake"

    def __init__(
        self,
        script: Sequence[str] = SCRIPT,
        *,
        delay: float = 0.0,
        model_id: str = "fake-model",
        revision: str = "fake-rev-1",
        fail_after: int | None = None,
        notice: Text | None = None,
        batched: bool = False,
    ) -> None:
        self.script = list(script)
        self.delay = delay
        self.fail_after = fail_after
        self.notice = notice
        self.batched = batched  # variants step together, as a batching engine sends them
        self.calls: list[tuple[str, GenerationSettings]] = []
        self.closed = False
        self.cancel_seen_at: float | None = None  # when the engine noticed Stop
        self.info = ModelInfo(
            model_id=model_id,
            source="(scripted)",
            revision=revision,
            engine="fake",
            device="cpu",
            dtype="float32",
            n_params=10_000,
            n_layer=2,
            n_embd=32,
            n_head=2,
            n_positions=512,
            vocab_size=len(self.script) + 10,
        )

    @property
    def shape(self) -> ModelShape | None:
        return None  # the window then reads the shape from info

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(local=self.name != "remote", beam_search=True, batched=True, logprobs=True)

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate | None:
        """As a local engine checks: the estimate for its shape, refused when memory cannot hold it."""
        if not prompt.strip():
            raise EmptyPromptError(Text("The prompt is empty.", "Затравка пуста."))
        cost = self.cost(len(self.tokenize(prompt)), settings)
        if cost is not None:
            check_affordable(cost, weights_loaded=True)
        return cost

    def cost(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate | None:
        """The estimate for its shape, as the transformers engine gives it (None when it plays a remote one)."""
        if not self.capabilities.local:
            return None
        info = self.info
        shape = ModelShape(info.n_layer, info.n_embd, info.n_head, info.n_positions, info.vocab_size)
        _min_new, max_new = settings.resolve_lengths(prompt_tokens)
        return estimate(
            shape,
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new,
            num_beams=settings.num_beams,
            num_return_sequences=settings.num_return_sequences,
            do_sample=settings.do_sample,
        )

    def _id(self, piece: str) -> int:
        return self.script.index(piece) + 10 if piece in self.script else 1

    def tokenize(self, text: str) -> list[TokenPiece]:
        words: list[str] = []
        for i, word in enumerate(text.split(" ")):
            if i == 0:
                if word:
                    words.append(word)
            else:
                words.append(" " + word)
        return [TokenPiece(self._id(w), w) for w in words]

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        if self.closed:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        if not prompt.strip():
            raise EmptyPromptError(Text("The prompt is empty.", "Затравка пуста."))
        self.calls.append((prompt, settings))
        started = time.perf_counter()
        _min_new, max_new = settings.resolve_lengths(len(self.tokenize(prompt)))
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        if self.notice is not None:
            yield Notice("test_notice", self.notice)
        if settings.num_beams > 1:
            yield from self._beam_search(prompt, settings, cancel, max_new, seed, started)
            return
        if self.batched:
            yield from self._batch(prompt, settings, cancel, max_new, seed, started)
            return
        timings = Timings()
        texts: list[str] = []
        reasons: list[FinishReason] = []
        counts: list[int] = []
        all_events: list[list[TokenEvent]] = []
        for sequence in range(settings.num_return_sequences):
            rng = random.Random(seed * 1000 + sequence)
            events: list[TokenEvent] = []
            reason: FinishReason = "length"
            for step in range(max_new):
                if self.fail_after is not None and step == self.fail_after:
                    raise EngineError(Text("Scripted failure.", "Запланированный сбой."))
                if self.delay:
                    time.sleep(self.delay)
                # Greedy: the script in order; sampling: pieces drawn with the seeded generator.
                piece = rng.choice(self.script) if settings.do_sample else self.script[step % len(self.script)]
                probs = sorted((rng.random() for _ in range(5)), reverse=True)
                total = sum(probs) * 1.25
                alternatives = tuple(
                    Alternative(self._id(p), p, math.log(q / total))
                    for p, q in zip([piece, *[s for s in self.script if s != piece][:4]], probs, strict=False)
                )
                event = TokenEvent(
                    text=piece,
                    token_id=self._id(piece),
                    piece=piece,
                    logprob=alternatives[0].logprob,
                    alternatives=alternatives[:top_alternatives],
                    sequence=sequence,
                )
                if timings.first_token is None:
                    timings.first_token = time.perf_counter() - started
                events.append(event)
                yield event
                if cancel is not None and cancel.is_set():
                    self.cancel_seen_at = time.perf_counter()
                    reason = "cancelled"
                    break
            texts.append("".join(e.text for e in events))
            reasons.append(reason)
            counts.append(len(events))
            all_events.append(events)
            if reason == "cancelled":
                break
        timings.generated_tokens = max(counts, default=0)
        timings.total = time.perf_counter() - started
        yield Finished(
            texts=texts,
            finish_reasons=reasons,
            prompt_tokens=len(self.tokenize(prompt)),
            generated_tokens=counts,
            seed=seed,
            timings=timings,
            tokens=all_events,
        )

    def _batch(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None,
        max_new: int,
        seed: int,
        started: float,
    ) -> Iterator[StreamEvent]:
        """Sampled variants decoded together: each step yields one token of every variant."""
        timings = Timings()
        count = settings.num_return_sequences
        rngs = [random.Random(seed * 1000 + sequence) for sequence in range(count)]
        events: list[list[TokenEvent]] = [[] for _ in range(count)]
        reason: FinishReason = "length"
        for _step in range(max_new):
            if self.delay:
                time.sleep(self.delay)
            for sequence, rng in enumerate(rngs):
                piece = rng.choice(self.script)
                event = TokenEvent(piece, self._id(piece), piece, -1.0, (), sequence)
                if timings.first_token is None:
                    timings.first_token = time.perf_counter() - started
                events[sequence].append(event)
                yield event
            if cancel is not None and cancel.is_set():
                self.cancel_seen_at = time.perf_counter()
                reason = "cancelled"
                break
        timings.generated_tokens = len(events[0])
        timings.total = time.perf_counter() - started
        yield Finished(
            texts=["".join(e.text for e in seq) for seq in events],
            finish_reasons=[reason] * count,
            prompt_tokens=len(self.tokenize(prompt)),
            generated_tokens=[len(seq) for seq in events],
            seed=seed,
            timings=timings,
            tokens=events,
        )

    def _beam_search(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None,
        max_new: int,
        seed: int,
        started: float,
    ) -> Iterator[StreamEvent]:
        """A scripted beam search: the leader grows one piece a step and, at every third step, is
        overtaken by another hypothesis (a different text, not a continuation); then the best
        beams follow token by token, as the real engines send them."""
        timings = Timings()
        reason: FinishReason = "length"
        leader: list[str] = []
        self.beam_steps: list[str] = []
        for step in range(1, max_new + 1):
            if self.delay:
                time.sleep(self.delay)
            if step % 3 == 0:  # overtaken: the new leader shares no tail with the old one
                leader = [self.script[(step + i) % len(self.script)] for i in range(step)]
            else:
                leader.append(self.script[step % len(self.script)])
            if timings.first_token is None:
                timings.first_token = time.perf_counter() - started
            text = "".join(leader)
            self.beam_steps.append(text)
            yield LeadingBeam(text, tuple(self._id(p) for p in leader), -0.5 * step, step)
            if cancel is not None and cancel.is_set():
                self.cancel_seen_at = time.perf_counter()
                reason = "cancelled"
                break
        beams = [list(leader)] + [
            [self.script[(i + 3 * k + 2) % len(self.script)] for i in range(len(leader))]
            for k in range(1, settings.num_return_sequences)
        ]
        all_events = []
        for sequence, pieces in enumerate(beams):
            events = [TokenEvent(p, self._id(p), p, -0.5, (), sequence) for p in pieces]
            yield from events
            all_events.append(events)
        timings.generated_tokens = len(leader)
        timings.total = time.perf_counter() - started
        yield Finished(
            texts=["".join(b) for b in beams],
            finish_reasons=[reason] * len(beams),
            prompt_tokens=len(self.tokenize(prompt)),
            generated_tokens=[len(b) for b in beams],
            seed=seed,
            timings=timings,
            tokens=all_events,
        )

    def close(self) -> None:
        self.closed = True
