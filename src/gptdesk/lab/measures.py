"""Measured properties of a generated text: repetition, variety, the model's own fluency, length, speed."""

from __future__ import annotations

import math
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

    One scoring call per generated token on the engine's `next_logits` (short texts; the lab's texts are).
    """
    if not generated_ids:
        return None
    limit = source.info.n_positions - 1
    total = 0.0
    for i, token in enumerate(generated_ids):
        context = (prompt_ids + generated_ids[:i])[-limit:]
        logits = np.asarray(source.next_logits(context), dtype=np.float64)
        top = float(np.max(logits))
        log_z = top + math.log(float(np.exp(logits - top).sum()))
        total += float(logits[token]) - log_z
    return total / len(generated_ids)


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
