"""How well a model knows a text: bits per character and perplexity over strided windows (no Qt)."""

from __future__ import annotations

import codecs
import math
import os
import re
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gptdesk.engine.base import LocalEngine
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


#: Characters tokenized per call: a call runs in native code that neither Ctrl+C nor a progress bar
#: can interrupt, so a long text goes in pieces of a fraction of a second each.
PIECE_CHARS = 65_536
#: A space between two non-spaces starts a new pre-token in GPT-2's byte-level BPE, and a newline
#: between two non-spaces is a pre-token of its own: cutting there gives the tokens of the whole text.
_CUT_BEFORE_SPACE = re.compile(r"(?<=\S) (?=\S)")
_CUT_AFTER_NEWLINE = re.compile(r"(?<=\S\n)(?=\S)")


@dataclass(frozen=True)
class Tokenized:
    """A text's tokens after the end-of-text prefix, and where each token ends in the text (characters)."""

    ids: list[int]
    ends: list[int]


def _cut(text: str, start: int, piece_chars: int) -> int:
    """Where the piece that begins at `start` ends: at a pre-token boundary in its second half, if any."""
    end = start + piece_chars
    if end >= len(text):
        return len(text)
    low = start + piece_chars // 2
    for pattern in (_CUT_BEFORE_SPACE, _CUT_AFTER_NEWLINE):
        last = deque(pattern.finditer(text, low, end), maxlen=1)
        if last:
            return last[0].start()
    return end  # a "word" longer than half a piece (not prose): cut inside it


def tokenize_text(
    text: str,
    tokenizer: Any,
    *,
    piece_chars: int = PIECE_CHARS,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Tokenized | None:
    """The tokens `measure` scores: after the model's end-of-text token, tokenized piece by piece (the same
    tokens as in one call, see _CUT_BEFORE_SPACE). `progress(characters done, characters)` after each piece;
    None when `cancel` was set."""
    if not text.strip():
        raise InvalidInputError(
            Text(
                "The text is empty: give a file with some text in it (a few thousand characters or more "
                "give a steady figure).",
                "Текст пуст: укажите файл с текстом (устойчивая оценка получается от нескольких тысяч символов).",
            )
        )
    prefix = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    ids: list[int] = []
    ends: list[int] = []
    if prefix is not None:
        ids.append(int(prefix))
        ends.append(0)
    # (else no end-of-text token: the first token has nothing to be predicted from and goes unscored)
    start = 0
    while start < len(text):
        if cancel is not None and cancel.is_set():
            return None
        stop = _cut(text, start, piece_chars)
        encoded = tokenizer(text[start:stop], add_special_tokens=False, return_offsets_mapping=True)
        ids.extend(int(i) for i in encoded["input_ids"])
        # Where each token ends in the text, so a stopped run knows how many characters it covered.
        ends.extend(start + int(end) for _, end in encoded["offset_mapping"])
        start = stop
        if progress is not None:
            progress(start, len(text))
    ends = [int(e) for e in np.maximum.accumulate(np.asarray(ends, dtype=np.int64))] if ends else []
    if len(ids) < 2:
        raise InvalidInputError(
            Text(
                f"The text is one token long ({text[:40]!r}): give a longer text.",
                f"Текст длиной в один токен ({text[:40]!r}): нужен текст длиннее.",
            )
        )
    return Tokenized(ids, ends)


def measure(
    text: str,
    tokenizer: Any,
    score: Scorer,
    *,
    context: int,
    progress: Callable[[PerplexityProgress], None] | None = None,
    cancel: threading.Event | None = None,
    tokenized: Tokenized | None = None,
) -> PerplexityResult:
    """Bits per character and perplexity of `text` under the model behind `score` (see METHOD).

    `cancel` is checked between windows; a stopped run returns the figures of the text scored so far.
    `tokenized`: tokenize_text's result for `text` when the caller tokenized it already (with its own progress).
    """
    if tokenized is None:
        tokenized = tokenize_text(text, tokenizer, cancel=cancel)
    if tokenized is None:  # stopped while tokenizing: nothing scored
        return PerplexityResult(0, 0, 0.0, 0, context, 0.0, False, len(text), 0)
    ids, ends = tokenized.ids, tokenized.ends
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

    engine: LocalEngine  # TransformersEngine or LlamaCppEngine
    label: str  # "llamacpp q8_0", "transformers float32"
    notice: Text | None = None  # why "auto" is not on llama.cpp (an unusable cache folder), to tell the user

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
    adapter: str | None = None,
) -> LoadedScorer:
    """A local engine for scoring: "auto" is llama.cpp when installed (and the model runs on it), else
    transformers in float32; `quant` picks the llama.cpp type (default: the engine's default); `adapter`:
    a LoRA adapter from `gptdesk tune`, applied on either engine."""
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
    notice: Text | None = None
    if engine == "llamacpp" or (engine == "auto" and is_available()):
        from gptdesk.engine.llamacpp.engine import LlamaCppEngine
        from gptdesk.errors import CacheFolderError, UnsupportedModelError

        try:
            fast = LlamaCppEngine.load(model, quant=chosen, progress=progress, adapter=adapter)
            return LoadedScorer(fast, f"llamacpp {chosen}" + (f" + {adapter}" if adapter else ""))
        except UnsupportedModelError:
            if engine == "llamacpp" or quant is not None:
                raise
        except CacheFolderError as exc:
            # As generate, next and serve do: llama.cpp needs its converted copy in the cache, the
            # reference engine reads the model's own folder; an unusable cache costs speed only.
            if engine == "llamacpp" or quant is not None:
                raise
            notice = Text("Scoring on transformers instead of llama.cpp: ", "Оценка на transformers вместо llama.cpp: ")
            notice += exc.text
    from gptdesk.engine.hf import TransformersEngine

    reference = TransformersEngine.load(model, device=device, dtype="float32", progress=progress, adapter=adapter)
    label = f"transformers {reference.info.dtype}" + (f" + {adapter}" if adapter else "")
    return LoadedScorer(reference, label, notice)


#: The longest text scored unless asked for more (--max-chars): about 10 MB of Russian, a shelf of books,
#: hours of scoring on a laptop. Beyond it a mistaken file (a disk image, /dev/zero) is refused at once.
DEFAULT_MAX_CHARS = 10_000_000
#: Bytes read per step: small enough that Ctrl+C and the progress line are never kept waiting.
_READ_BYTES = 1 << 20

#: (bytes read, characters read, the file's size when known) while a text is read.
ReadProgress = Callable[[int, int, "int | None"], None]


class TextTooLongError(InvalidInputError):
    """The text is longer than the limit the caller set (--max-chars)."""


def read_text_stream(
    stream: BinaryIO,
    name: str,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    size: int | None = None,
    progress: ReadProgress | None = None,
) -> str:
    """A stream read as UTF-8 (a BOM is dropped) step by step, refused as soon as it passes `max_chars`."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pieces: list[str] = []
    n_bytes = n_chars = 0
    while True:
        data = stream.read(_READ_BYTES)
        pending = len(decoder.getstate()[0])  # the bytes of a character cut by the previous step
        try:
            piece = decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = n_bytes - pending + exc.start
            bad = exc.object[exc.start : exc.start + 1]
            raise InvalidInputError(
                Text(
                    f"{name} is not UTF-8 text (byte {at}: {bad!r}). Save it as UTF-8 (e.g. `iconv -f cp1251 -t "
                    "utf-8`) and try again.",
                    f"{name} — не текст в UTF-8 (байт {at}: {bad!r}). Сохраните его в UTF-8 (например, "
                    "`iconv -f cp1251 -t utf-8`) и повторите.",
                )
            ) from None
        n_bytes += len(data)
        n_chars += len(piece)
        if n_chars > max_chars:
            raise TextTooLongError(
                Text(
                    f"{name} is longer than {max_chars:,} characters (the limit of --max-chars; "
                    f"{n_bytes / 1e6:,.0f} MB read so far"
                    + (f" of {size / 1e6:,.0f} MB" if size else "")
                    + "). Scoring that much takes hours and gigabytes of memory. Score a part (e.g. `head -c 10M "
                    "FILE > part.txt`), or raise the limit with --max-chars N if you mean it.",
                    f"{name} длиннее {max_chars:,} символов (предел --max-chars; прочитано {n_bytes / 1e6:,.0f} МБ"
                    + (f" из {size / 1e6:,.0f} МБ" if size else "")
                    + "). Оценка такого объёма займёт часы и гигабайты памяти. Оцените часть (например, "
                    "`head -c 10M ФАЙЛ > part.txt`) или поднимите предел: --max-chars N, если это нужно.",
                )
            )
        pieces.append(piece)
        if progress is not None:
            progress(n_bytes, n_chars, size)
        if not data:
            return "".join(pieces)


def read_text_file(path: Path, *, max_chars: int = DEFAULT_MAX_CHARS, progress: ReadProgress | None = None) -> str:
    """A text file as UTF-8 (a BOM is dropped), with a message that says what to do when it is not text."""
    shown = _shown(path)
    try:
        with path.open("rb") as stream:  # a FIFO waits here for its writer
            try:
                size: int | None = os.fstat(stream.fileno()).st_size
            except OSError:
                size = None
            if size is not None and not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                size = None  # a pipe, a device: no size to show
            return read_text_stream(stream, shown, max_chars=max_chars, size=size, progress=progress)
    except OSError as exc:
        raise InvalidInputError(
            Text(
                f"Cannot read {shown}: {exc.strerror or exc}. Check the path and that the file is readable.",
                f"Не удаётся прочитать {shown}: {exc.strerror or exc}. Проверьте путь и права на чтение.",
            )
        ) from exc


def _shown(path: Path) -> str:
    """A path for a message: the bytes of a non-UTF-8 name as escapes (it stays printable)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
