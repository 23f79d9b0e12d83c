"""The shared logits pipeline: transformers' processors and warpers in numpy, used by every local engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from gptdesk.settings.generation import GenerationSettings


@dataclass
class LogitsPipeline:
    """transformers' logits processors and warpers in numpy, in generate()'s order.

    Repetition penalty, no-repeat n-grams and the minimum length shape the model's scores (these
    are what the log-probabilities report, as in the reference engine); temperature, top-k and
    top-p then shape the sampling distribution. Greedy decoding takes the arg-max.
    """

    settings: GenerationSettings
    eos_id: int | None
    min_new: int
    seed: int
    history: list[int] = field(default_factory=list)  # prompt + generated ids
    #: settings.bad_words as token sequences (engine.core.bad_words_ids): NoBadWordsLogitsProcessor's input.
    bad_words_ids: list[list[int]] = field(default_factory=list)
    prompt_len: int = 0
    _ngrams: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def start(self, prompt_ids: list[int]) -> None:
        """Begin a sequence after this prompt (the random stream carries on across sequences)."""
        self.history = []
        self._ngrams = {}
        self._seen = set()
        self.prompt_len = len(prompt_ids)
        for token in prompt_ids:
            self._append(token)

    def _append(self, token: int) -> None:
        self.history.append(token)
        self._seen.add(token)
        n = self.settings.no_repeat_ngram_size
        if n > 0 and len(self.history) >= n:
            gram = self.history[-n:]
            self._ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def accept(self, token: int) -> None:
        self._append(token)

    def fork(self) -> LogitsPipeline:
        """A copy that continues this sequence on its own (a beam that splits); it shares the random stream."""
        twin = LogitsPipeline(self.settings, self.eos_id, self.min_new, self.seed, bad_words_ids=self.bad_words_ids)
        twin.rng = self.rng
        twin.history = list(self.history)
        twin.prompt_len = self.prompt_len
        twin._ngrams = {k: set(v) for k, v in self._ngrams.items()}
        twin._seen = set(self._seen)
        return twin

    def process(self, logits: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The scores after repetition penalty, no-repeat n-grams and min_new_tokens."""
        s = self.settings
        scores = logits.astype(np.float32, copy=True)
        if s.repetition_penalty != 1.0 and self._seen:
            # RepetitionPenaltyLogitsProcessor: every token of the prompt and the output, once.
            ids = np.fromiter(self._seen, dtype=np.int64, count=len(self._seen))
            ids = ids[ids < scores.shape[0]]
            picked = scores[ids]
            scores[ids] = np.where(picked < 0, picked * s.repetition_penalty, picked / s.repetition_penalty)
        n = s.no_repeat_ngram_size
        if n > 0 and len(self.history) >= n:
            # NoRepeatNGramLogitsProcessor: a token that would complete an n-gram seen before is banned.
            prefix = tuple(self.history[len(self.history) - n + 1 :]) if n > 1 else ()
            banned = self._ngrams.get(prefix)
            if banned:
                scores[[t for t in banned if t < scores.shape[0]]] = -np.inf
        for banned_seq in self.bad_words_ids:
            # NoBadWordsLogitsProcessor: a one-token word always; a longer one's last token where the
            # tokens before it end the text so far (the prompt counts).
            *before, last = banned_seq
            if last < scores.shape[0] and (not before or self.history[len(self.history) - len(before) :] == before):
                scores[last] = -np.inf
        if self.eos_id is not None and len(self.history) - self.prompt_len < self.min_new:
            scores[self.eos_id] = -np.inf  # MinNewTokensLengthLogitsProcessor
        return scores

    def choose(self, scores: np.ndarray[Any, np.dtype[np.float32]]) -> int:
        """The next token from processed scores: the arg-max, or a draw from warp()'s distribution."""
        if not self.settings.do_sample:
            return int(np.argmax(scores))  # the first of equal maxima, as torch.argmax
        candidates, probs = self.warp(scores)
        cdf = np.cumsum(probs)
        draw = self.rng.random() * cdf[-1]
        index = min(int(np.searchsorted(cdf, draw, side="right")), len(candidates) - 1)
        return int(candidates[index])

    def warp(
        self, scores: np.ndarray[Any, np.dtype[np.float32]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float64]]]:
        """The sampling distribution after temperature, top-k and top-p: token ids and probabilities.

        Only the tokens that keep a chance are returned, so top-p sorts k values, not the vocabulary.
        """
        s = self.settings
        work = scores / np.float32(s.temperature) if s.temperature != 1.0 else scores
        candidates = np.flatnonzero(np.isfinite(work))
        values = work[candidates]
        if s.top_k and s.top_k < values.shape[0]:
            # TopKLogitsWarper keeps every token scoring at least the k-th best (ties included).
            kth = np.partition(values, -s.top_k)[-s.top_k]
            keep = values >= kth
            candidates, values = candidates[keep], values[keep]
        if s.top_p < 1.0:
            # TopPLogitsWarper drops a token when the probability of it and every less likely
            # token is at most 1 - top_p, i.e. when the tokens more likely than it already hold
            # top_p. Those are all among the best m tokens once the best m hold top_p, so only
            # they are sorted; when the best 64 do not hold top_p (a flat distribution, a high
            # temperature) one stable sort of all of them costs less than growing m step by step,
            # which sorted the vocabulary several times over (40% of a batched step's time).
            probs = _softmax(values)
            n = values.shape[0]
            m = min(n, 64)
            best = np.argpartition(-probs, m - 1)[:m] if m < n else np.arange(n)
            best = best[np.argsort(-probs[best], kind="stable")]
            if m < n and probs[best].sum() < s.top_p:
                best = np.argsort(-probs, kind="stable")
            above = np.cumsum(probs[best]) - probs[best]
            best = best[above < s.top_p]  # the most likely token has nothing above it: it stays
            candidates, values = candidates[best], values[best]
        return candidates.astype(np.int64), _softmax(values)


def warp_beam_scores(
    settings: GenerationSettings, scores: np.ndarray[Any, np.dtype[np.float32]], min_keep: int = 2
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Beam sampling's warpers over one beam's processed log-probabilities, as generate() runs them.

    Temperature, then top-k and top-p each keeping at least `min_keep` tokens (generate() keeps one
    more than the number of end-of-text tokens with beams); removed tokens become -inf.
    """
    s = settings
    work = scores / np.float32(s.temperature) if s.temperature != 1.0 else scores.copy()
    if s.top_k:
        k = min(max(s.top_k, min_keep), work.shape[0])
        kth = np.partition(work, -k)[-k]
        work[work < kth] = -np.inf
    if s.top_p < 1.0:
        order = np.argsort(work, kind="stable")  # ascending, as TopPLogitsWarper sorts
        cumulative = np.cumsum(_softmax(work[order]))
        remove = cumulative <= (1 - s.top_p)
        remove[-min_keep:] = False
        work[order[remove]] = -np.inf
    return work


def _softmax(values: np.ndarray[Any, np.dtype[Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    shifted = values.astype(np.float64) - np.max(values)
    e = np.exp(shifted)
    return cast("np.ndarray[Any, np.dtype[np.float64]]", e / e.sum())


def log_softmax(scores: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    finite_max = np.max(scores)
    shifted = scores - finite_max
    return cast(
        "np.ndarray[Any, np.dtype[np.float32]]",
        shifted - np.float32(np.log(np.sum(np.exp(shifted, dtype=np.float32), dtype=np.float64))),
    )
