"""The next-token view: the model's raw distribution beside the one the current settings sample from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gptdesk.engine.pipeline import LogitsPipeline
from gptdesk.errors import EmptyPromptError
from gptdesk.i18n import Text
from gptdesk.lab.source import LogitsSource, encode, eos_id
from gptdesk.settings.generation import GenerationSettings

#: Why a candidate has no chance under the current settings ("kept" when it has one).
Status = Literal["kept", "top_k", "top_p", "no_repeat_ngram", "min_length", "not_greedy"]

#: Candidates a chart shows by default.
DEFAULT_TOP = 30


@dataclass(frozen=True)
class Candidate:
    """One possible next token: its raw and final probabilities and what the settings did to it."""

    token_id: int
    piece: str
    raw: float  # softmax of the model's scores: temperature 1, nothing cut
    final: float  # the probability the engine samples it with under the current settings
    status: Status
    penalized: bool  # already in the context, so the repetition penalty lowered its score


@dataclass(frozen=True)
class NextTokenView:
    """What the settings do to one next-token choice. `candidates` are ranked as the cut-offs see them:
    by the score after penalties (temperature does not change the order); banned tokens come last."""

    candidates: list[Candidate]
    entropy_bits: float  # of the final distribution
    in_play: int  # tokens with a non-zero final probability
    mass_kept: float  # share of the penalized, tempered distribution that top-k and top-p keep
    greedy_id: int  # the arg-max after penalties and bans
    greedy_piece: str
    greedy_final: float  # its final probability (1 when sampling is off)
    raw_entropy_bits: float
    top_k_rank: int | None  # candidates[:top_k_rank] survive top-k (None: top-k cuts nothing)
    top_p_rank: int | None  # candidates[:top_p_rank] survive top-p after top-k (None: cuts nothing)
    mode: Literal["sample", "greedy", "beams"]
    notes: list[Text] = field(default_factory=list)
    context_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "context_tokens": self.context_tokens,
            "entropy_bits": self.entropy_bits,
            "raw_entropy_bits": self.raw_entropy_bits,
            "tokens_in_play": self.in_play,
            "mass_kept": self.mass_kept,
            "greedy": {"id": self.greedy_id, "piece": self.greedy_piece, "probability": self.greedy_final},
            "top_k_rank": self.top_k_rank,
            "top_p_rank": self.top_p_rank,
            "notes": [n.get() for n in self.notes],
            "candidates": [
                {
                    "id": c.token_id,
                    "piece": c.piece,
                    "raw": c.raw,
                    "final": c.final,
                    "status": c.status,
                    "penalized": c.penalized,
                }
                for c in self.candidates
            ],
        }


class NextTokenContext:
    """One context's raw scores, fetched from the model once; every view of it is numpy only.

    `prompt_ids` are the prompt's tokens and `generated_ids` those generated after it (the context up
    to a token clicked in the inspector): the minimum length counts only generated tokens, as in a run.
    """

    def __init__(
        self,
        source: LogitsSource,
        prompt_ids: list[int],
        generated_ids: list[int] | None = None,
        *,
        logits: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    ) -> None:
        if not prompt_ids:
            raise EmptyPromptError(
                Text(
                    "The prompt is empty: the next-token view needs at least one token of context, "
                    "e.g. «Москва — столица».",
                    "Затравка пуста: окну следующего токена нужен хотя бы один токен контекста, "
                    "например «Москва — столица».",
                )
            )
        self.source = source
        self.prompt_ids = list(prompt_ids)
        self.generated_ids = list(generated_ids or [])
        self.eos_id = eos_id(source)
        if logits is None:  # the one model call: everything below reuses these scores
            logits = source.next_logits(self.prompt_ids + self.generated_ids)
        self.logits: np.ndarray[Any, np.dtype[np.float32]] = np.asarray(logits, dtype=np.float32)
        self.raw = _softmax(self.logits)
        self.raw_entropy_bits = _entropy_bits(self.raw)
        self._raw_top: dict[int, list[int]] = {}
        self._pieces: dict[int, str] = {}

    @classmethod
    def for_prompt(cls, source: LogitsSource, prompt: str) -> NextTokenContext:
        if not prompt.strip():
            return cls(source, [])  # raises the empty-prompt message
        return cls(source, encode(source, prompt))

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.generated_ids

    def piece(self, token_id: int) -> str:
        if token_id not in self._pieces:
            self._pieces[token_id] = self.source.piece(token_id)
        return self._pieces[token_id]

    def _raw_order(self, top: int) -> list[int]:
        """The `top` most likely tokens under the raw scores, best first (computed once per size)."""
        if top not in self._raw_top:
            m = min(top, self.raw.shape[0])
            best = np.argpartition(-self.raw, m - 1)[:m]
            self._raw_top[top] = [int(t) for t in best[np.argsort(-self.raw[best], kind="stable")]]
        return self._raw_top[top]

    def pipeline(self, settings: GenerationSettings) -> LogitsPipeline:
        """The engines' own pipeline, in the state it has at this point of a run with `settings`."""
        min_new, _ = settings.resolve_lengths(len(self.prompt_ids))
        pipe = LogitsPipeline(settings, self.eos_id, min_new, seed=0)
        pipe.start(self.prompt_ids)
        for token in self.generated_ids:
            pipe.accept(token)
        return pipe

    def final_distribution(self, settings: GenerationSettings) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The probability of every token of the vocabulary under `settings`, as the engine draws it."""
        pipe = self.pipeline(settings)
        scores = pipe.process(self.logits)
        final = np.zeros(scores.shape[0], dtype=np.float64)
        if settings.do_sample and settings.num_beams == 1:
            kept, probs = pipe.warp(scores)
            final[kept] = probs
        elif settings.num_beams == 1:
            final[int(np.argmax(scores))] = 1.0
        else:
            final = _softmax(scores)  # beams rank continuations by these log-probabilities
        return final

    def view(self, settings: GenerationSettings, top: int = DEFAULT_TOP) -> NextTokenView:
        """The view under `settings`: no model call, only the logits pipeline on the cached scores."""
        s = settings
        pipe = self.pipeline(s)
        scores = pipe.process(self.logits)
        finite = np.isfinite(scores)
        greedy = int(np.argmax(scores))
        sampling = s.do_sample and s.num_beams == 1
        final = np.zeros(scores.shape[0], dtype=np.float64)
        mass_kept = 1.0
        notes: list[Text] = []
        if sampling:
            kept, probs = pipe.warp(scores)
            final[kept] = probs
            tempered = _softmax(scores / np.float32(s.temperature))
            mass_kept = float(tempered[kept].sum())
            mode: Literal["sample", "greedy", "beams"] = "sample"
        elif s.num_beams == 1:
            final[greedy] = 1.0
            mode = "greedy"
            notes.append(
                Text(
                    "Sampling is off (do_sample = false): temperature, top-k and top-p change nothing. "
                    f"The model always takes the most likely token, «{self.piece(greedy)}».",
                    "Сэмплирование выключено (do_sample = false): температура, top-k и top-p ничего не "
                    f"меняют. Модель всегда берёт самый вероятный токен, «{self.piece(greedy)}».",
                )
            )
        else:
            final = _softmax(scores)
            mode = "beams"
            notes.append(
                Text(
                    f"With {s.num_beams} beams the model does not pick one token here: it keeps the "
                    f"{s.num_beams} continuations with the best total log-probability and extends each. "
                    "Shown: the probabilities after penalties and bans, which the beams add up.",
                    f"С {s.num_beams} лучами модель не выбирает здесь один токен: она хранит {s.num_beams} "
                    "продолжений с лучшей суммарной лог-вероятностью и продлевает каждое. Показаны "
                    "вероятности после штрафов и запретов, которые лучи складывают.",
                )
            )
        # Rank by the penalized score (the order top-k and top-p cut in); banned tokens last, by raw score.
        # Only the best `top` are sorted: a partition finds them without sorting the vocabulary.
        n_finite = int(finite.sum())
        m = min(top, n_finite)
        best = np.argpartition(-scores, m - 1)[:m] if m < scores.shape[0] else np.arange(scores.shape[0])
        shown = [int(t) for t in best[np.argsort(-scores[best], kind="stable")] if finite[t]][:m]
        shown += [t for t in self._raw_order(top) if not finite[t]]
        top_k_rank: int | None = None
        top_p_rank: int | None = None
        if sampling:
            if s.top_k and s.top_k < n_finite:
                # Ties with the k-th score survive too, as in TopKLogitsWarper.
                kth = np.partition(scores[finite], -s.top_k)[-s.top_k]
                top_k_rank = int((scores[finite] >= kth).sum())
            after_k = top_k_rank if top_k_rank is not None else n_finite
            in_play = int((final > 0).sum())
            if in_play < after_k:
                top_p_rank = in_play
        seen = set(pipe.history)
        ban_eos = self.eos_id is not None and len(self.generated_ids) < s.resolve_lengths(len(self.prompt_ids))[0]
        candidates = []
        for rank, t in enumerate(int(x) for x in shown):
            status: Status = "kept"
            if not finite[t]:
                status = "min_length" if ban_eos and t == self.eos_id else "no_repeat_ngram"
            elif final[t] == 0:
                if not sampling:
                    status = "not_greedy"
                elif top_k_rank is not None and rank >= top_k_rank:
                    status = "top_k"
                else:
                    status = "top_p"
            candidates.append(
                Candidate(
                    token_id=t,
                    piece=self.piece(t),
                    raw=float(self.raw[t]),
                    final=float(final[t]),
                    status=status,
                    penalized=s.repetition_penalty != 1.0 and t in seen,
                )
            )
        return NextTokenView(
            candidates=candidates,
            entropy_bits=_entropy_bits(final),
            in_play=int((final > 0).sum()),
            mass_kept=mass_kept,
            greedy_id=greedy,
            greedy_piece=self.piece(greedy),
            greedy_final=float(final[greedy]),
            raw_entropy_bits=self.raw_entropy_bits,
            top_k_rank=top_k_rank,
            top_p_rank=top_p_rank,
            mode=mode,
            notes=notes,
            context_tokens=len(self.ids),
        )


def _softmax(values: np.ndarray[Any, np.dtype[Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    work = values.astype(np.float64)
    top = np.max(work[np.isfinite(work)]) if np.isfinite(work).any() else 0.0
    e = np.exp(work - top)
    result: np.ndarray[Any, np.dtype[np.float64]] = e / e.sum()
    return result


def _entropy_bits(p: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum()) + 0.0 if nz.size else 0.0


def format_probability(p: float) -> str:
    """A probability as a short percentage: 42.1%, 0.03%, <0.01%."""
    if p <= 0:
        return "0%"
    if p < 0.0001:
        return "<0.01%"
    return f"{p * 100:.{2 if p < 0.01 else 1}f}%"
