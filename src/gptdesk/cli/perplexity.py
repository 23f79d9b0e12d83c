"""`gptdesk perplexity FILE`: bits per character and perplexity of a model on a text file."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from gptdesk.cli.engine_options import add_adapter_option
from gptdesk.evaluate.perplexity import (
    DEFAULT_MAX_CHARS,
    METHOD,
    SCORING_ENGINES,
    PerplexityProgress,
    PerplexityResult,
)
from gptdesk.i18n import Text, current_language
from gptdesk.models.measured import keep_measure

_BAR_WIDTH = 24


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(subparsers: Any) -> None:
    from gptdesk.models.gguf.sizes import QUANT_TYPES

    p = subparsers.add_parser(
        "perplexity",
        help=_t("how well a model knows a text (bits per character)", "насколько модель знает текст (бит на символ)"),
        description=_t(
            "Bits per character and perplexity of a model on a text file. ",
            "Биты на символ и перплексия модели на текстовом файле. ",
        )
        + METHOD.get()
        + _t(
            " Lower is better. The first Ctrl+C stops after the current window and prints the figures so far.",
            " Чем меньше, тем лучше. Первый Ctrl+C останавливает после текущего окна и печатает оценку "
            "на данный момент.",
        ),
    )
    p.add_argument(
        "file", help=_t("a UTF-8 text file ('-': standard input)", "текстовый файл в UTF-8 («-»: стандартный ввод)")
    )
    p.add_argument(
        "--model",
        default=None,
        help=_t(
            "catalog name, hub id or folder (default: the embedded model)",
            "имя из каталога, id на хабе или папка (по умолчанию встроенная)",
        ),
    )
    p.add_argument(
        "--engine",
        default="auto",
        choices=SCORING_ENGINES,
        help=_t(
            "auto: llama.cpp when installed, else transformers (float32)",
            "auto: llama.cpp, если установлен, иначе transformers (float32)",
        ),
    )
    add_adapter_option(p)
    p.add_argument(
        "--quant",
        default=None,
        help=_t("llama.cpp type: ", "тип llama.cpp: ") + ", ".join(QUANT_TYPES),
    )
    p.add_argument(
        "--context",
        type=int,
        default=None,
        help=_t(
            "window length in tokens (default: the model's context); windows move by half of it",
            "длина окна в токенах (по умолчанию — контекст модели); окна сдвигаются на половину",
        ),
    )
    p.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        metavar="N",
        help=_t(
            f"refuse a text longer than N characters (default {DEFAULT_MAX_CHARS:,}): a mistaken file fails at once",
            f"отказаться от текста длиннее N символов (по умолчанию {DEFAULT_MAX_CHARS:,}): ошибочный файл "
            "отвергается сразу",
        ),
    )
    p.add_argument("--json", action="store_true", help=_t("print the result as JSON", "вывести результат в JSON"))
    p.set_defaults(func=cmd_perplexity)


class BarProgress:
    """Draws PerplexityProgress: one redrawn line on a terminal, a line per 10% otherwise."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.last_decile = -1
        self.width = 0

    def __call__(self, p: PerplexityProgress) -> None:
        line = self.line(p)
        if self.tty:
            line = line[: shutil.get_terminal_size((100, 20)).columns - 1]
            self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
            self.width = len(line)
        elif int(p.fraction * 10) > self.last_decile:
            self.last_decile = int(p.fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0

    @staticmethod
    def line(p: PerplexityProgress) -> str:
        from gptdesk.models.hub.progress import format_duration

        lang = current_language()
        filled = round(p.fraction * _BAR_WIDTH)
        parts = [
            f"[{'█' * filled}{'░' * (_BAR_WIDTH - filled)}]",
            f"{p.fraction * 100:5.1f}%",
            _t(f"{p.tokens_done:,}/{p.tokens_total:,} tokens", f"{p.tokens_done:,}/{p.tokens_total:,} токенов"),
        ]
        if p.bits_per_char is not None:
            parts.append(_t(f"{p.bits_per_char:.4f} bits/char so far", f"пока {p.bits_per_char:.4f} бит/символ"))
        if p.eta_s is not None:
            parts.append(_t("ETA ", "осталось ") + format_duration(p.eta_s, lang))
        return "  ".join(parts)


def _load_progress(err: TextIO) -> Any:
    last: list[str] = [""]

    def report(text: Text, fraction: float | None) -> None:
        shown = text.get()
        if shown != last[0]:
            last[0] = shown
            print(shown + (f" ({fraction:.0%})" if fraction is not None else ""), file=err, flush=True)

    return report


class _Status:
    """One phase's progress on standard error: a redrawn line on a terminal; else a line at once, then one
    every few seconds (a log or a pipe gets a heartbeat, not a flood)."""

    def __init__(self, stream: TextIO, *, every_s: float = 5.0) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every_s = every_s
        self.shown_at: float | None = None
        self.width = 0

    def show(self, text: str, *, now: bool = False) -> None:
        moment = time.monotonic()
        if self.tty:
            if not now and self.shown_at is not None and moment - self.shown_at < 0.2:
                return
            line = text[: shutil.get_terminal_size((100, 20)).columns - 1]
            self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
            self.width = len(line)
        else:
            if not now and self.shown_at is not None and moment - self.shown_at < self.every_s:
                return
            self.stream.write(text + "\n")
        self.shown_at = moment
        self.stream.flush()

    def end(self, text: str | None = None) -> None:
        """The phase's last figure, then a new line for what follows."""
        if text is not None:
            self.show(text, now=True)
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
        self.width = 0
        self.shown_at = None


def _read_input(args: argparse.Namespace, err: TextIO) -> str:
    """The text to score, read step by step with progress; Ctrl+C ends the process at once."""
    from gptdesk.cli.console import printable
    from gptdesk.errors import InvalidInputError
    from gptdesk.evaluate.perplexity import read_text_file, read_text_stream

    name = _t("standard input", "стандартный ввод") if args.file == "-" else printable(args.file)
    status = _Status(err)
    # Said before the file is opened: a FIFO without a writer, or a terminal, waits here.
    status.show(
        _t(f"Reading {name}… (Ctrl+C stops)", f"Чтение: {name}… (Ctrl+C — остановить)")
        + (_t(" — type the text, then Ctrl+D", " — введите текст, затем Ctrl+D") if _stdin_is_terminal(args) else ""),
        now=True,
    )
    figures = [0, 0]

    def progress(n_bytes: int, n_chars: int, size: int | None) -> None:
        figures[:] = [n_bytes, n_chars]
        of = f" / {size / 1e6:,.1f}" if size else ""
        status.show(
            _t(
                f"Reading {name}: {n_bytes / 1e6:,.1f}{of} MB, {n_chars:,} characters",
                f"Чтение {name}: {n_bytes / 1e6:,.1f}{of} МБ, символов: {n_chars:,}",
            )
        )

    if args.file == "-":
        raw = getattr(sys.stdin, "buffer", None) if sys.stdin is not None else None
        if raw is None:
            if sys.stdin is None:
                raise InvalidInputError(
                    Text(
                        "There is no standard input to read ('-'). Give a file name instead.",
                        "Стандартного ввода нет («-»). Укажите имя файла.",
                    )
                )
            text = sys.stdin.read()  # a text stream without bytes underneath (tests pass io.StringIO)
        else:
            text = read_text_stream(
                raw, _t("The standard input", "Стандартный ввод"), max_chars=args.max_chars, progress=progress
            )
    else:
        text = read_text_file(Path(args.file), max_chars=args.max_chars, progress=progress)
    status.end(
        _t(
            f"Read {name}: {figures[0] / 1e6:,.1f} MB, {len(text):,} characters.",
            f"Прочитано ({name}): {figures[0] / 1e6:,.1f} МБ, символов: {len(text):,}.",
        )
    )
    return text


def _stdin_is_terminal(args: argparse.Namespace) -> bool:
    try:
        return args.file == "-" and sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def cmd_perplexity(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.cli.console import printable
    from gptdesk.errors import InvalidInputError
    from gptdesk.evaluate.perplexity import load_scorer, measure, tokenize_text

    if args.context is not None and args.context < 2:
        raise InvalidInputError(
            Text(
                f"--context = {args.context}: use at least 2 tokens (the default is the model's context).",
                f"--context = {args.context}: нужно не меньше 2 токенов (по умолчанию — контекст модели).",
            )
        )
    if args.max_chars < 1:
        raise InvalidInputError(
            Text(
                f"--max-chars = {args.max_chars}: use a number of characters, at least 1.",
                f"--max-chars = {args.max_chars}: укажите число символов, не меньше 1.",
            )
        )
    # Until the scoring starts, Ctrl+C ends the process at once with 130 (main's start-up handler):
    # reading, loading and tokenizing hold nothing that needs saving.
    text = _read_input(args, err)
    with load_scorer(
        args.model, engine=args.engine, quant=args.quant, adapter=args.adapter, progress=_load_progress(err)
    ) as scorer:
        if scorer.notice is not None:
            print("! " + scorer.notice.get(), file=err, flush=True)
        context = args.context or scorer.n_positions
        if context > scorer.n_positions:
            raise InvalidInputError(
                Text(
                    f"--context = {context}: the model reads at most {scorer.n_positions} tokens at once. Use "
                    f"{scorer.n_positions} or less.",
                    f"--context = {context}: модель читает не больше {scorer.n_positions} токенов за раз. Укажите "
                    f"{scorer.n_positions} или меньше.",
                )
            )
        status = _Status(err)

        def tokenizing(done: int, total: int) -> None:
            status.show(_t(f"Tokenizing: {done / total:.0%}", f"Токенизация: {done / total:.0%}"))

        status.show(_t("Tokenizing…", "Токенизация…"), now=True)
        tokenized = tokenize_text(text, scorer.tokenizer, progress=tokenizing)
        assert tokenized is not None  # no cancel was given
        status.end(
            _t(f"Tokenized: {len(tokenized.ids) - 1:,} tokens.", f"Токенизировано: {len(tokenized.ids) - 1:,} токенов.")
        )
        cancel = threading.Event()
        bar = BarProgress(err)
        previous = None
        if threading.current_thread() is threading.main_thread():

            def stop(signum: int, frame: FrameType | None) -> None:
                if cancel.is_set():
                    raise KeyboardInterrupt
                cancel.set()

            previous = signal.signal(signal.SIGINT, stop)
        try:
            bar(PerplexityProgress(0, len(tokenized.ids) - 1, 0.0, None))  # the bar from the first window on
            result = measure(
                text, scorer.tokenizer, scorer.score, context=context, progress=bar, cancel=cancel, tokenized=tokenized
            )
        finally:
            bar.end()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        label = scorer.label
        model_id = scorer.engine.info.model_id
    shown_name = "-" if args.file == "-" else printable(Path(args.file).name)
    # The model manager's quality column is the base model's: a figure with an adapter is not kept there.
    problem = keep_measure(result, model_id, label, shown_name, text) if args.adapter is None else None
    if problem is not None:
        print(problem.get(), file=err)
    if args.json:
        json.dump({"model": model_id, "engine": label, **result.as_dict()}, out, ensure_ascii=False)
        out.write("\n")
    else:
        _print_result(result, model_id, label, out)
    return 0 if result.complete else 130


def _print_result(r: PerplexityResult, model_id: str, label: str, out: TextIO) -> None:
    if not r.complete:
        print(
            _t(
                f"Stopped: the figures cover the first {r.characters:,} of {r.total_characters:,} characters.",
                f"Остановлено: оценка по первым {r.characters:,} из {r.total_characters:,} символов.",
            ),
            file=out,
        )
    print(f"{model_id} ({label})", file=out)
    print(_t(f"bits per character: {r.bits_per_char:.4f}", f"бит на символ:     {r.bits_per_char:.4f}"), file=out)
    print(_t(f"perplexity:         {r.perplexity:.3f}", f"перплексия:        {r.perplexity:.3f}"), file=out)
    print(
        _t(
            f"{r.tokens:,} tokens, {r.characters:,} characters, {r.windows} windows of {r.context} tokens "
            f"(stride {r.context // 2}), {r.seconds:.1f} s",
            f"{r.tokens:,} токенов, {r.characters:,} символов, окон: {r.windows} по {r.context} токенов "
            f"(шаг {r.context // 2}), {r.seconds:.1f} с",
        ),
        file=out,
    )
