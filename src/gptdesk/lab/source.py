"""The engines the lab reads raw scores from: the local ones (transformers, llama.cpp), never a remote server."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from gptdesk.engine.base import Engine, ModelInfo, TokenPiece
from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text


@runtime_checkable
class LogitsSource(Protocol):
    """A loaded local model that gives its raw next-token scores (both local engines are one)."""

    info: ModelInfo

    @property
    def tokenizer(self) -> Any: ...

    def tokenize(self, text: str) -> list[TokenPiece]: ...

    def piece(self, token_id: int) -> str: ...

    def next_logits(self, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]: ...

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]: ...


def logits_source(engine: Engine) -> LogitsSource:
    """The engine that gives raw scores for `engine`: itself, or the llama.cpp engine inside 'auto'.

    Raises InvalidInputError for the remote engine: an OpenAI-compatible server returns at most a few
    log-probabilities, not the scores of the whole vocabulary the lab needs.
    """
    from gptdesk.engine.auto import AutoEngine

    if isinstance(engine, AutoEngine):
        return engine.fast
    if isinstance(engine, LogitsSource):
        return engine
    raise InvalidInputError(
        Text(
            f"The engine '{engine.name}' gives no raw next-token scores: the lab needs a local model "
            "(engine auto, transformers or llamacpp). Load the model locally, e.g. `--engine auto`.",
            f"Движок «{engine.name}» не отдаёт исходные оценки следующего токена: лаборатории нужна "
            "локальная модель (движок auto, transformers или llamacpp). Загрузите модель локально, "
            "например `--engine auto`.",
        )
    )


def eos_id(source: LogitsSource) -> int | None:
    eos = source.tokenizer.eos_token_id
    return int(eos) if eos is not None else None


def encode(source: LogitsSource, text: str) -> list[int]:
    """The prompt's token ids, as the engines tokenize it (no special tokens added)."""
    return [piece.id for piece in source.tokenize(text)]
