"""The Engine protocol and the events it streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from gptdesk.i18n import Text
from gptdesk.models.cost import CostEstimate
from gptdesk.models.shape import ModelShape
from gptdesk.settings.generation import GenerationSettings

FinishReason = Literal["length", "eos", "stop", "cancelled"]


@dataclass(frozen=True)
class TokenPiece:
    """One token of a text: its id and its piece as readable text."""

    id: int
    text: str


@dataclass(frozen=True)
class Alternative:
    """A token the model also considered at a step, with its log-probability."""

    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class TokenEvent:
    """One generated token: the text it adds, its id, log-probability and alternatives.

    `text` is what this token adds to the output; a token that ends in the middle of a UTF-8
    character adds "" and the next one carries the whole character, so joining `text` over the
    events always gives the decoded output. `piece` is the token on its own, for display.
    """

    text: str
    token_id: int
    piece: str
    logprob: float | None = None
    alternatives: tuple[Alternative, ...] = ()
    sequence: int = 0  # which returned sequence (num_return_sequences > 1) this token belongs to
    # token_id is -1 for text released at the very end without a new token (a held-back tail).


@dataclass(frozen=True)
class Notice:
    """Something the user should know about this generation (a truncated prompt, a warning)."""

    code: str
    text: Text


@dataclass
class Timings:
    """Wall-clock figures of one generation, in seconds; the same meaning on every engine.

    `generated_tokens` counts the tokens of all returned sequences together (each variant's, or
    each returned beam's), the end-of-text token included. `first_token` is the time to the first
    step's tokens, which includes reading the prompt. `tokens_per_second` is the decode speed over
    all sequences: the tokens after each sequence's first one, over the time after the first step.
    """

    load_prompt: float = 0.0  # tokenizing and preparing
    first_token: float | None = None  # from the start of generation to the first step's tokens
    total: float = 0.0
    generated_tokens: int = 0  # over all returned sequences
    sequences: int = 1  # returned sequences that generated at least one token

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed over all sequences, excluding each one's first token (whose time is the prefill)."""
        if self.first_token is None:
            return None
        after_first = self.generated_tokens - max(1, self.sequences)
        decode = self.total - self.first_token
        if after_first < 1 or decode <= 0:
            return None
        return after_first / decode


@dataclass
class Finished:
    """The last event of a stream: the full result."""

    texts: list[str]
    finish_reasons: list[FinishReason]
    prompt_tokens: int
    generated_tokens: list[int]
    seed: int
    timings: Timings
    prompt_truncated_tokens: int = 0
    tokens: list[list[TokenEvent]] = field(default_factory=list)
    #: The stop string that ended each text (None where it ended otherwise, or the engine cannot tell).
    stop_strings: list[str | None] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    @property
    def finish_reason(self) -> FinishReason:
        return self.finish_reasons[0] if self.finish_reasons else "length"


@dataclass(frozen=True)
class LeadingBeam:
    """While a beam search runs: the best hypothesis so far. It may change completely from one step
    to the next, so a consumer replaces what it shows rather than appending to it."""

    text: str  # the hypothesis's generated text so far (decoded, stop strings applied)
    token_ids: tuple[int, ...]
    score: float  # its beam score: sum of log-probabilities / length ** length_penalty
    step: int  # generation steps taken so far


StreamEvent = TokenEvent | Notice | LeadingBeam | Finished


@dataclass(frozen=True)
class ModelInfo:
    """What is loaded: identity, shape and where it runs."""

    model_id: str  # as the user named it (catalog id, hub id or folder)
    source: str  # the folder it was read from
    revision: str  # hub commit, or a digest of a local folder's files
    engine: str
    device: str
    dtype: str
    n_params: int
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    vocab_size: int
    adapter: str | None = None  # a LoRA adapter applied (gptdesk adapters ls), recorded with its digest
    adapter_digest: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, so callers ask instead of probing."""

    local: bool  # runs in this process: tokenizes, estimates and gives next-token scores here
    beam_search: bool  # runs num_beams > 1 itself
    batched: bool  # steps several sequences (variants, beams) together, streaming them as they grow
    logprobs: bool  # reports each token's log-probability (see docs/fast-engine.md for its meaning)
    load_options: bool = False  # its GGUF type, threads and kept cache are chosen at load: a change loads it again


@runtime_checkable
class Engine(Protocol):
    """A loaded model that streams tokens. Heavy: use as a context manager or call close()."""

    name: str

    @property
    def info(self) -> ModelInfo:
        """What is loaded (for the auto engine: the engine that runs its generations)."""
        ...

    @property
    def shape(self) -> ModelShape | None:
        """The model's shape for estimates; None where the model runs elsewhere (remote)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate | None:
        """What this generation would cost, before it runs: raises EmptyPromptError, SettingsError
        or InsufficientMemoryError when it cannot run; None where the engine cannot estimate (remote)."""
        ...

    def cost(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate | None:
        """What a generation from a prompt of `prompt_tokens` tokens would cost here, refused or not (the
        window's cost line); None where the engine cannot estimate (remote)."""
        ...

    def tokenize(self, text: str) -> list[TokenPiece]: ...

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]: ...

    def close(self) -> None: ...


@runtime_checkable
class LocalEngine(Engine, Protocol):
    """A model loaded on this computer (transformers, llama.cpp, and auto over them): beyond generating, it gives
    its tokenizer and the scores callers read directly (the lab's next-token view and explorer, perplexity, the
    bench's quality). A remote server gives at most a few log-probabilities, so it is not one."""

    @property
    def tokenizer(self) -> Any: ...

    def tokenize(self, text: str) -> list[TokenPiece]: ...

    def piece(self, token_id: int) -> str: ...

    def next_logits(self, ids: list[int]) -> Any:
        """The raw scores of the token after `ids` (float32, one per vocabulary entry)."""

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> Any:
        """The processed log-probabilities of each of `ids` after `prompt_ids` and the ids before it."""

    def score_tokens(self, ids: list[int], start: int = 1) -> Any:
        """The natural-log probability of each token of `ids` from position `start` on, given those before."""

    @property
    def kept_tokens(self) -> int:
        """Cells kept from earlier texts for the next request (llama.cpp's sequence store; 0 elsewhere)."""


def run_to_end(events: Iterator[StreamEvent]) -> Finished:
    """Consume a stream and return its Finished event."""
    finished: Finished | None = None
    for event in events:
        if isinstance(event, Finished):
            finished = event
    if finished is None:  # pragma: no cover - every engine ends with Finished
        raise RuntimeError("the engine's stream ended without a Finished event")
    return finished
