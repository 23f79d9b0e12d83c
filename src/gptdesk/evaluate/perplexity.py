"""How well a model knows a text: bits per character and perplexity over strided windows (no Qt)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import ProgressCallback, Text

#: A scorer: (token ids of one window, first position to score) -> log p(ids[i] | ids[:i]) for
#: i = start .. len(ids) - 1, in nats. Both local engines' `score_tokens` are scorers.
Scorer = Callable[[list[int], int], Any]

#: Engines that can score a text (the remote protocol returns no log-probabilities of given text).
SCORING_ENGINES = ("auto", "transformers", "llamacpp")

#: The method, for the docs, --help and the dialog.
METHOD = Text(
    "The text is tokenized once, after the model's end-of-text token (so its first token is predicted "
    "too). Windows of CONTEXT tokens move by half a window; each token is scored once, in the first "
    "window that reaches it, so every token after the first window sees at least half a window of "
    "text before it (the last window ends at the text's end and reaches back a whole window). Bits "
    "per character = the summed negative log-likelihood / ln 2 / the number of characters; "
    "perplexity = exp(the mean negative log-likelihood per token).",
    "Текст токенизируется один раз, после токена конца текста (так предсказывается и его первый токен). "
    "Окна по CONTEXT токенов сдвигаются на пол-окна; каждый токен оценивается один раз, в первом окне, "
    "которое до него доходит, поэтому после первого окна каждый токен видит перед собой не меньше "
    "пол-окна текста (последнее окно кончается на конце текста и захватывает целое окно). Биты на "
    "символ = сумма отрицательных логарифмов правдоподобия / ln 2 / число символов; перплексия = "
    "exp(среднего отрицательного логарифма правдоподобия на токен).",
)


@dataclass(frozen=True)
class Window:
    """One forward pass: tokens [begin, end) of the text, of which [score_from, end) are scored."""

    begin: int
    end: int
    score_from: int


def plan_windows(n_ids: int, context: int) -> list[Window]:
    """Windows of `context` ids moving by context // 2 over `n_ids` ids; each position >= 1 scored once."""
    if context < 2:
        raise ValueError("context must be at least 2")
    stride = context // 2
    windows: list[Window] = []
    scored_to = 1  # position 0 is the end-of-text prefix: it has nothing to be predicted from
    begin = 0
    while scored_to < n_ids:
        end = min(begin + context, n_ids)
        # The last window reaches back a whole context from the text's end, not just to `begin`.
        windows.append(Window(max(0, end - context), end, scored_to))
        scored_to = end
        begin += stride
    return windows


@dataclass(frozen=True)
class PerplexityProgress:
    """Where a measurement stands, for a progress bar."""

    tokens_done: int
    tokens_total: int
    elapsed_s: float
    bits_per_char: float | None  # so far

    @property
    def fraction(self) -> float:
        return self.tokens_done / self.tokens_total if self.tokens_total else 1.0

    @property
    def eta_s(self) -> float | None:
        if self.tokens_done == 0:
            return None
        return self.elapsed_s * (self.tokens_total - self.tokens_done) / self.tokens_done


@dataclass(frozen=True)
class PerplexityResult:
    """The measure of one model on one text (or on the part of it scored before a Stop)."""

    characters: int  # of the text scored
    tokens: int  # scored
    nll_nats: float  # summed -log p over the scored tokens
    windows: int
    context: int
    seconds: float
    complete: bool  # False: stopped before the end; the figures cover the text scored so far
    total_characters: int
    total_tokens: int

    @property
    def bits_per_char(self) -> float:
        return self.nll_nats / math.log(2) / self.characters if self.characters else math.nan

    @property
    def bits_per_token(self) -> float:
        return self.nll_nats / math.log(2) / self.tokens if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_nats / self.tokens) if self.tokens else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "bits_per_char": self.bits_per_char,
            "bits_per_token": self.bits_per_token,
            "perplexity": self.perplexity,
            "stride": self.context // 2,
        }


def measure(
    text: str,
    tokenizer: Any,
    score: Scorer,
    *,
    context: int,
    progress: Callable[[PerplexityProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> PerplexityResult:
    """Bits per character and perplexity of `text` under the model behind `score` (see METHOD).

    `cancel` is checked between windows; a stopped run returns the figures of the text scored so far.
    """
    if not text.strip():
        raise InvalidInputError(
            Text(
                "The text is empty: give a file with some text in it (a few thousand characters or more "
                "give a steady figure).",
                "Текст пуст: укажите файл с текстом (устойчивая оценка получается от нескольких тысяч символов).",
            )
        )
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    token_ids = [int(i) for i in encoded["input_ids"]]
    # Where each token ends in the text, so a stopped run knows how many characters it covered.
    ends = [int(end) for _, end in encoded["offset_mapping"]]
    prefix = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    if prefix is not None:
        ids = [int(prefix), *token_ids]
        ends = [0, *ends]
    else:  # no end-of-text token: the first token has nothing to be predicted from and goes unscored
        ids = token_ids
    ends = list(np.maximum.accumulate(np.asarray(ends, dtype=np.int64))) if ends else []
    if len(ids) < 2:
        raise InvalidInputError(
            Text(
                f"The text is one token long ({text[:40]!r}): give a longer text.",
                f"Текст длиной в один токен ({text[:40]!r}): нужен текст длиннее.",
            )
        )
    windows = plan_windows(len(ids), context)
    total = len(ids) - 1
    started = time.perf_counter()
    nll = 0.0
    done = 0
    complete = True
    for window in windows:
        if cancel is not None and cancel.is_set():
            complete = False
            break
        logprobs = np.asarray(score(ids[window.begin : window.end], window.score_from - window.begin), dtype=np.float64)
        if logprobs.shape != (window.end - window.score_from,):
            raise ValueError(f"the scorer returned {logprobs.shape} log-probabilities for {window}")
        nll -= float(logprobs.sum())
        done = window.end - 1
        if progress is not None:
            characters = int(ends[window.end - 1])
            progress(
                PerplexityProgress(
                    done,
                    total,
                    time.perf_counter() - started,
                    nll / math.log(2) / characters if characters else None,
                )
            )
    # All of it when complete (trailing spaces that tokens may leave out count: they are text too).
    characters = len(text) if complete else int(ends[done]) if done else 0
    return PerplexityResult(
        characters=characters,
        tokens=done,
        nll_nats=nll,
        windows=len(windows),
        context=context,
        seconds=time.perf_counter() - started,
        complete=complete,
        total_characters=len(text),
        total_tokens=total,
    )


# -- a model to score with ------------------------------------------------------------------------


@dataclass
class LoadedScorer:
    """A local engine loaded for scoring; close() frees it."""

    engine: Any  # TransformersEngine or LlamaCppEngine
    label: str  # "llamacpp q8_0", "transformers float32"

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def n_positions(self) -> int:
        return int(self.engine.info.n_positions)

    def score(self, ids: list[int], start: int) -> Any:
        return self.engine.score_tokens(ids, start)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> LoadedScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_scorer(
    model: str | Path | None = None,
    *,
    engine: str = "auto",
    quant: str | None = None,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> LoadedScorer:
    """A local engine for scoring: "auto" is llama.cpp when installed (and the model runs on it), else
    transformers in float32; `quant` picks the llama.cpp type (default: the engine's default)."""
    from gptdesk.models.gguf.library import is_available
    from gptdesk.models.gguf.sizes import DEFAULT_QUANT, canonical_quant

    if engine not in SCORING_ENGINES:
        raise InvalidInputError(
            Text(
                f"engine = '{engine}' cannot score a text: use one of {', '.join(SCORING_ENGINES)} (a remote "
                "server does not return the probabilities of a given text).",
                f"engine = «{engine}» не умеет оценивать текст: используйте один из {', '.join(SCORING_ENGINES)} "
                "(удалённый сервер не возвращает вероятности заданного текста).",
            )
        )
    if quant is not None and engine == "transformers":
        raise InvalidInputError(
            Text(
                f"quant = '{quant}' is a llama.cpp type, but the engine is transformers (float32). Drop --quant, "
                "or use --engine llamacpp.",
                f"quant = «{quant}» — тип llama.cpp, а движок transformers (float32). Уберите --quant или "
                "укажите --engine llamacpp.",
            )
        )
    chosen = canonical_quant(quant) if quant is not None else DEFAULT_QUANT
    if engine == "llamacpp" or (engine == "auto" and is_available()):
        from gptdesk.engine.llamacpp.engine import LlamaCppEngine
        from gptdesk.errors import UnsupportedModelError

        try:
            fast = LlamaCppEngine.load(model, quant=chosen, progress=progress)
            return LoadedScorer(fast, f"llamacpp {chosen}")
        except UnsupportedModelError:
            if engine == "llamacpp" or quant is not None:
                raise
    from gptdesk.engine.hf import TransformersEngine

    reference = TransformersEngine.load(model, device=device, dtype="float32", progress=progress)
    return LoadedScorer(reference, f"transformers {reference.info.dtype}")


def read_text_file(path: Path) -> str:
    """A text file as UTF-8 (a BOM is dropped), with a message that says what to do when it is not text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            Text(
                f"Cannot read {path}: {exc.strerror or exc}. Check the path and that the file is readable.",
                f"Не удаётся прочитать {path}: {exc.strerror or exc}. Проверьте путь и права на чтение.",
            )
        ) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            Text(
                f"{path} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r}). Save it as "
                "UTF-8 (e.g. `iconv -f cp1251 -t utf-8`) and try again.",
                f"{path} — не текст в UTF-8 (байт {exc.start}: {data[exc.start : exc.start + 1]!r}). "
                "Сохраните его в UTF-8 (например, `iconv -f cp1251 -t utf-8`) и повторите.",
            )
        ) from exc
