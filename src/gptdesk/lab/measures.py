"""Measured properties of a generated text: repetition, variety, the model's own fluency, length, speed."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gptdesk.lab.source import LogitsSource

_WORD = re.compile(r"\w+(?:[-’']\w+)*")

#: The measures a heat map can show, with whether higher is better (None: neither).
MEASURES: dict[str, bool | None] = {
    "repeated_3grams": False,
    "distinct_2": True,
    "mean_logprob": True,
    "words": None,
    "tokens_per_second": True,
}


def words(text: str) -> list[str]:
    """The text's words, lower-cased (letters, digits, and inner hyphens as in «кто-то»)."""
    return [w.casefold() for w in _WORD.findall(text)]


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of the text's word n-grams that already occurred earlier in it (0: none repeats)."""
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct word n-grams over all word n-grams (1: no n-gram repeats; Li et al. 2016's distinct-n)."""
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def mean_logprob(source: LogitsSource, prompt_ids: list[int], generated_ids: list[int]) -> float | None:
    """The model's mean log-probability (nats per token) of the generated tokens after the prompt, under
    raw settings: temperature 1, no penalties, nothing cut. Higher reads as more fluent to the model.
    """
    if not generated_ids or not prompt_ids:
        return None
    keep = max(1, source.info.n_positions - len(generated_ids))  # the prompt's tail when both do not fit
    generated = generated_ids[: source.info.n_positions - 1]
    logprobs = np.asarray(source.token_logprobs(prompt_ids[-keep:], generated), dtype=np.float64)
    return float(logprobs.mean())


@dataclass(frozen=True)
class Measures:
    """The explorer's figures for one text."""

    repeated_3grams: float
    distinct_2: float
    mean_logprob: float | None
    words: int
    tokens: int
    tokens_per_second: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def get(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)


def measure(
    source: LogitsSource | None,
    text: str,
    prompt_ids: list[int],
    generated_ids: list[int],
    tokens_per_second: float | None,
) -> Measures:
    """Every measure of a generated text (fluency is None without a local model to score it)."""
    return Measures(
        repeated_3grams=repeated_ngram_share(text, 3),
        distinct_2=distinct_n(text, 2),
        mean_logprob=mean_logprob(source, prompt_ids, generated_ids) if source is not None else None,
        words=len(words(text)),
        tokens=len(generated_ids),
        tokens_per_second=tokens_per_second,
    )
