"""The engines the lab reads raw scores from: the local ones (transformers, llama.cpp), never a remote server."""

from __future__ import annotations

from gptdesk.engine.base import Engine, LocalEngine
from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text

#: The lab reads raw scores from a local engine (engine.base.LocalEngine: transformers, llama.cpp, auto).
LogitsSource = LocalEngine


def logits_source(engine: Engine) -> LocalEngine:
    """`engine` itself when it is local (auto gives its llama.cpp engine's scores).

    Raises InvalidInputError for the remote engine: an OpenAI-compatible server returns at most a few
    log-probabilities, not the scores of the whole vocabulary the lab needs.
    """
    if isinstance(engine, LocalEngine):
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
