"""The `gptdesk` command: generate, tokens, models (and the window when run bare)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from types import FrameType
from typing import Any, TextIO

from gptdesk import __version__
from gptdesk.cli.console import (
    GuardedOutput,
    argument_names,
    check_arguments,
    interrupt_exits_at_once,
    read_text,
    readable,
    say,
    silence,
    standard_streams,
    stop_strings,
)
from gptdesk.cli.engine_options import (
    adapter_option,
    add_adapter_option,
    add_ban_option,
    add_cache_option,
    ban_overrides,
    cache_option,
)
from gptdesk.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    epilog,
)
from gptdesk.errors import GptDeskError, OutputClosedError, OutputError, SettingsError
from gptdesk.i18n import Text, set_language

#: Modules that add their own subcommands: each has `register(subparsers)`, whose parsers set
#: `func(args, out, err) -> int`. Keeps each face's command next to its code, out of this file.
SUBCOMMAND_MODULES: list[str] = [
    "gptdesk.ui.command",
    "gptdesk.cli.models",
    "gptdesk.cli.serve",
    "gptdesk.cli.bench",
    "gptdesk.cli.lab",
    "gptdesk.cli.desktop",
    "gptdesk.cli.perplexity",
    "gptdesk.cli.story",
    "gptdesk.cli.tune",
]


__all__ = ["EXIT_BAD_INPUT", "EXIT_CODES", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PIPE_CLOSED", "main"]

_SETTING_TYPES: dict[str, Callable[[str], Any]] = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "num_beams": int,
    "num_return_sequences": int,
    "repetition_penalty": float,
    "no_repeat_ngram_size": int,
    "max_new_tokens": int,
    "max_length": int,
    "min_new_tokens": int,
    "min_length": int,
    "seed": int,
}


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def build_parser() -> argparse.ArgumentParser:
    from gptdesk.settings.help import FIELD_HELP
    from gptdesk.settings.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="gptdesk",
        description=_t(
            "GPT Desk: a workbench for GPT-2-family language models (ruGPT-3 first).",
            "GPT Desk: рабочее место для языковых моделей семейства GPT-2 (прежде всего ruGPT-3).",
        ),
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gptdesk {__version__}")
    parser.add_argument("--lang", choices=("ru", "en"), help=_t("language of messages", "язык сообщений"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = sub.add_parser(
        "generate",
        help=_t("continue a prompt and stream the text", "продолжить затравку, печатая текст по мере генерации"),
        description=_t(
            "Continue PROMPT with a model and print the text as it is generated. Ctrl+C stops.",
            "Продолжить ЗАТРАВКУ моделью, печатая текст по мере генерации. Ctrl+C останавливает.",
        ),
    )
    gen.add_argument(
        "prompt", help=_t("the prompt; '-' reads it from standard input", "затравка; «-» — читать из stdin")
    )
    _model_options(gen)
    add_adapter_option(gen)
    gen.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "transformers", "llamacpp"),
        help=_t(
            "auto: llama.cpp (fast, quantized) on a CPU when installed, transformers for beam search and GPUs; "
            "transformers: the reference engine; llamacpp: always llama.cpp",
            "auto: llama.cpp (быстрый, квантованный) на процессоре, если установлен, transformers для "
            "лучевого поиска и GPU; transformers: эталонный движок; llamacpp: всегда llama.cpp",
        ),
    )
    gen.add_argument(
        "--quant",
        default=None,
        help=_t(
            "the llama.cpp engine's type (default q8_0): f16, q8_0, q6_K, q5_K_M, q4_K_M, q4_0; "
            "`gptdesk bench` shows what each costs",
            "тип весов для llama.cpp (по умолчанию q8_0): f16, q8_0, q6_K, q5_K_M, q4_K_M, q4_0; "
            "`gptdesk bench` показывает цену каждого",
        ),
    )
    gen.add_argument(
        "--preset",
        default="balanced",
        help=_t("settings preset: ", "набор настроек: ")
        + "; ".join(f"{p.id} ({p.when.get()})" for p in PRESETS.values()),
    )
    for name, kind in _SETTING_TYPES.items():
        flag = "--" + name.replace("_", "-")
        gen.add_argument(flag, type=kind, default=None, help=FIELD_HELP[name].help.get())
    sample = gen.add_mutually_exclusive_group()
    sample.add_argument(
        "--sample", dest="do_sample", action="store_true", default=None, help=FIELD_HELP["do_sample"].help.get()
    )
    sample.add_argument(
        "--greedy", dest="do_sample", action="store_false", help=_t("do_sample off", "do_sample выключен")
    )
    gen.add_argument("--stop", action="append", default=None, help=FIELD_HELP["stop"].help.get())
    add_ban_option(gen)
    gen.add_argument(
        "--json", action="store_true", help=_t("print one JSON result at the end", "вывести итог одним JSON")
    )
    gen.add_argument(
        "--show-tokens",
        action="store_true",
        help=_t("print the prompt's tokens first", "сначала вывести токены затравки"),
    )
    gen.add_argument(
        "--remote",
        metavar="URL",
        default=None,
        help=_t(
            "generate on an OpenAI-compatible server instead (gptdesk serve, vLLM, llama.cpp server, Ollama), "
            "e.g. http://127.0.0.1:8000; --model then names the server's model (default: the first it serves)",
            "генерировать на сервере, совместимом с OpenAI (gptdesk serve, vLLM, llama.cpp server, Ollama), "
            "например http://127.0.0.1:8000; тогда --model — модель на сервере (по умолчанию первая)",
        ),
    )
    gen.add_argument(
        "--api-key",
        default=None,
        help=_t(
            "the --remote server's API key (default: $GPTDESK_API_KEY)",
            "ключ API сервера --remote (по умолчанию $GPTDESK_API_KEY)",
        ),
    )
    gen.set_defaults(func=cmd_generate)

    tok = sub.add_parser(
        "tokens",
        help=_t("show how a text splits into tokens", "показать, как текст делится на токены"),
    )
    tok.add_argument("text", help=_t("the text; '-' reads standard input", "текст; «-» — читать из stdin"))
    tok.add_argument("--model", default=None, help=_t("model (default: embedded)", "модель (по умолчанию встроенная)"))
    tok.add_argument("--json", action="store_true")
    tok.set_defaults(func=cmd_tokens)

    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help=_t(
            "catalog name, hub id or folder (default: the embedded model); see `gptdesk models`",
            "имя из каталога, id на хабе или папка (по умолчанию встроенная); см. `gptdesk models`",
        ),
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    add_cache_option(p)


def _quant_option(args: argparse.Namespace) -> dict[str, str]:
    """--quant for the engines that take it (a K-quant in any case: Q4_K_M, q4_k_m)."""
    if args.quant is None:
        return {}
    from gptdesk.errors import InvalidInputError
    from gptdesk.models.gguf.sizes import canonical_quant

    if args.engine == "transformers":
        raise InvalidInputError(
            Text(
                f"--quant {args.quant} is a llama.cpp type, but --engine is transformers. Drop --quant, or use "
                "--engine auto or llamacpp.",
                f"--quant {args.quant} — тип llama.cpp, а --engine transformers. Уберите --quant или укажите "
                "--engine auto или llamacpp.",
            )
        )
    return {"quant": canonical_quant(args.quant)}


def _settings_from_args(args: argparse.Namespace) -> Any:
    from gptdesk.settings.presets import get_preset

    overrides: dict[str, Any] = {k: getattr(args, k) for k in _SETTING_TYPES if getattr(args, k) is not None}
    if args.do_sample is not None:
        overrides["do_sample"] = args.do_sample
    if args.stop is not None:
        overrides["stop"] = stop_strings(args.stop)
    overrides.update(ban_overrides(args))
    return get_preset(args.preset).settings(**overrides)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _LiveLine:
    """Text shown on a terminal and rewritten in place (the leading beam of a beam search)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.rows = 0  # terminal rows the text shown now takes

    def show(self, text: str) -> None:
        import shutil

        self.clear()
        width = max(20, shutil.get_terminal_size().columns)
        self.rows = sum(max(1, -(-len(line) // width)) for line in text.split("\n"))
        self.out.write(text)
        self.out.flush()

    def clear(self) -> None:
        if self.rows:
            # Back to the first row of the text, then erase to the end of the screen.
            up = f"\x1b[{self.rows - 1}A" if self.rows > 1 else ""
            self.out.write(f"{up}\r\x1b[J")
            self.out.flush()
            self.rows = 0


class _CtrlC:
    """First Ctrl+C stops the generation at the next token; a second one aborts.

    With `at_once` (downloads) the first one also raises KeyboardInterrupt, which fetch() turns into
    its clean cancel even inside a read that a stalled server never completes.
    """

    def __init__(self, cancel: threading.Event, *, at_once: bool = False) -> None:
        self.cancel = cancel
        self.at_once = at_once
        self.previous: Any = None

    def __enter__(self) -> _CtrlC:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt
        self.cancel.set()
        if self.at_once:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)


def cmd_generate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.engine import Finished, Notice, TokenEvent, load_engine
    from gptdesk.engine.base import LeadingBeam

    prompt = read_text(args.prompt)
    settings = _settings_from_args(args)
    if isinstance(out, GuardedOutput):
        out.check_encodable(prompt)  # the text starts with the prompt: fail before loading anything
    adapter = adapter_option(args)
    if args.remote:
        api_key = args.api_key or os.environ.get("GPTDESK_API_KEY") or None
        engine = load_engine(args.model, engine="remote", base_url=args.remote, api_key=api_key)
    else:
        _fetch_if_missing(args.model, err)
        engine = load_engine(
            args.model,
            engine=args.engine,
            device=args.device,
            dtype=args.dtype,
            **_quant_option(args),
            **cache_option(args),
            **adapter,
        )
        if args.engine == "auto":
            _say_fast_engine_missing(err)
    try:
        if args.show_tokens:
            _print_tokens(engine.tokenize(prompt), out)
        cancel = threading.Event()
        notices: list[str] = []
        finished: Finished | None = None
        current_seq = -1
        # A beam search's best hypothesis is shown live on a terminal, rewritten in place; piped
        # output gets only the final text.
        live = _LiveLine(out) if not args.json and _is_terminal(out) else None
        events = engine.stream(prompt, settings, cancel)
        with _CtrlC(cancel), _closing(events):
            for event in events:
                if isinstance(event, Notice):
                    notices.append(event.text.get())
                    print("! " + event.text.get(), file=err, flush=True)
                elif isinstance(event, LeadingBeam):
                    if live is not None:
                        live.show(prompt + event.text)
                elif isinstance(event, TokenEvent):
                    if args.json:
                        continue
                    if live is not None:
                        live.clear()
                    if event.sequence != current_seq:
                        # The prompt is echoed so the output reads as one text, as generate() returns it.
                        current_seq = event.sequence
                        if settings.num_return_sequences > 1:
                            print(f"\n--- {_t('variant', 'вариант')} {current_seq + 1} ---", file=out)
                        out.write(prompt)
                    out.write(event.text)
                    out.flush()
                elif isinstance(event, Finished):
                    finished = event
        assert finished is not None
        info = engine.info
        if args.json:
            result = {
                "model": info.model_id,
                "revision": info.revision,
                "engine": info.engine,
                "device": info.device,
                "dtype": info.dtype,
                "prompt": prompt,
                "text": finished.text,
                "texts": finished.texts,
                "finish_reason": finished.finish_reason,
                "finish_reasons": finished.finish_reasons,
                "seed": finished.seed,
                "settings": settings.model_dump(),
                # 0 means not known (a remote server that reported no usage and has no tokenizer): a prompt
                # is never empty, so a real count is at least 1.
                "prompt_tokens": finished.prompt_tokens or None,
                "prompt_truncated_tokens": finished.prompt_truncated_tokens,
                "generated_tokens": finished.generated_tokens[0] if finished.generated_tokens else 0,
                "generated_tokens_per_sequence": finished.generated_tokens,
                "timings": {
                    "time_to_first_token_s": finished.timings.first_token,
                    "total_s": finished.timings.total,
                    "tokens_per_second": finished.timings.tokens_per_second,
                },
                "notices": notices,
            }
            json.dump(result, out, ensure_ascii=False, indent=1)
            out.write("\n")
        else:
            if live is not None:
                live.clear()
            out.write("\n")
            timings = finished.timings
            # tokens/s over all sequences (base.Timings); "—" when too few tokens to measure.
            tps = f"{timings.tokens_per_second:.1f}" if timings.tokens_per_second is not None else "—"
            ttft = timings.first_token
            print(
                _t(
                    f"[{timings.generated_tokens} tokens, {tps} tok/s, first token {ttft or 0:.2f} s, "
                    f"seed {finished.seed}, {finished.finish_reason}; {info.model_id} on {info.engine} "
                    f"{info.device} {info.dtype}]",
                    f"[{timings.generated_tokens} токенов, {tps} ток/с, первый токен {ttft or 0:.2f} с, "
                    f"seed {finished.seed}, {finished.finish_reason}; {info.model_id} на {info.engine} "
                    f"{info.device} {info.dtype}]",
                ),
                file=err,
            )
        return EXIT_INTERRUPTED if finished.finish_reason == "cancelled" else EXIT_OK
    finally:
        engine.close()


def _say_fast_engine_missing(err: TextIO) -> None:
    """Once per run: "auto" fell back to transformers because llama.cpp is not installed; say what it would give."""
    from gptdesk.ui.desktop.fast_engine import fast_engine_notice

    notice = fast_engine_notice()
    if notice is not None:
        print("! " + notice.get(), file=err, flush=True)


@contextlib.contextmanager
def _closing(events: Iterator[Any]) -> Iterator[None]:
    """A write that fails (a closed pipe) stops the generation too, not only the output."""
    try:
        yield
    finally:
        if isinstance(events, Generator):
            events.close()


def _fetch_if_missing(name: str | None, err: TextIO) -> None:
    """A hub model used for the first time is downloaded here with a progress bar, not silently."""
    from pathlib import Path

    from gptdesk.models.catalog import EMBEDDED_ID, find_entry
    from gptdesk.models.locate import find_local

    if not name or Path(name).expanduser().exists():
        return
    entry = find_entry(name)
    looks_like_hub_id = name.count("/") == 1 and not name.startswith(("/", ".", "~"))
    if entry is None and not looks_like_hub_id:
        return  # a folder path or an unknown name: resolve() explains
    if (entry is not None and entry.id == EMBEDDED_ID) or find_local(name) is not None:
        return
    from gptdesk.cli.models import TerminalProgress
    from gptdesk.models.hub.download import fetch
    from gptdesk.models.hub.plan import plan

    print(
        _t(f"{name} is not on this computer yet: downloading it.", f"{name} ещё нет на компьютере: скачиваю."), file=err
    )
    # Asking the hub what to fetch is start-up (Ctrl+C ends it at once, even in a stalled request);
    # the transfer itself stops cleanly and keeps its bytes for the next run.
    the_plan = plan(name)
    cancel = threading.Event()
    with _CtrlC(cancel, at_once=True):
        fetch(the_plan, progress=TerminalProgress(err), cancel=cancel)


def _print_tokens(pieces: Sequence[Any], out: TextIO) -> None:
    width = max((len(str(p.id)) for p in pieces), default=2)
    print(f"{'#':>4}  {'id':>{width}}  {_t('piece', 'фрагмент')}", file=out)
    for n, p in enumerate(pieces):
        shown = p.text.replace("\n", "\\n")
        print(f"{n:>4}  {p.id:>{width}}  «{shown}»", file=out)
    print(_t(f"{len(pieces)} tokens", f"токенов: {len(pieces)}"), file=out)


def cmd_tokens(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.engine.tokens import tokenize
    from gptdesk.models.obtain import obtain
    from gptdesk.models.tokenizer import load_tokenizer

    text = read_text(args.text)
    resolved = obtain(args.model)
    pieces = tokenize(load_tokenizer(resolved.path), text)
    if args.json:
        json.dump([{"id": p.id, "piece": p.text} for p in pieces], out, ensure_ascii=False)
        out.write("\n")
    else:
        _print_tokens(pieces, out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    # Output failures (a closed pipe, a full disk, an encoding without Cyrillic) become typed errors.
    out, err = standard_streams(out, err)
    with interrupt_exits_at_once(Text("Interrupted.", "Прервано.")):
        try:
            return _run(argv, out, err)
        except (OutputClosedError, BrokenPipeError):
            # Like any Unix tool whose reader went away: no message, 141 (see errors.OutputClosedError).
            silence(out)
            silence(err)
            return EXIT_PIPE_CLOSED


def _parse(argv: Sequence[str] | None, out: TextIO) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out):  # --help and --version go through the output guard too
            args = parser.parse_args(argv)
    except SystemExit:
        out.flush()  # inside the guard, as for every command
        raise
    if args.lang:
        set_language(args.lang)
    if args.command is None:
        # Bare `gptdesk` opens the window; gptdesk.ui.command imports Qt only when it runs.
        from gptdesk.ui.command import cmd_gui

        args.func = cmd_gui
    return parser, args


def _run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        parser, args = _parse(argv, out)
        func: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.func
        check_arguments(vars(args), argument_names(parser, args))
        code = func(args, out, err)
        # Flushed here, inside the guard: the interpreter's own flush at exit would report a closed
        # pipe as "Exception ignored … BrokenPipeError" (and exit 120), a full disk as a traceback.
        out.flush()
        return code
    except SettingsError as exc:
        lines = [_t("Invalid settings:", "Неверные настройки:")] + ["  - " + i.text.get() for i in exc.issues]
        say(err, "\n".join(lines))
        return exc.exit_code
    except OutputClosedError:
        raise
    except OutputError as exc:
        silence(out)  # the interpreter's last flush of what could not be written stays quiet
        say(err, readable(err, Text("Error: ", "Ошибка: ") + exc.text))
        return exc.exit_code
    except GptDeskError as exc:
        say(err, readable(err, Text("Error: ", "Ошибка: ") + exc.text))
        return exc.exit_code
    except KeyboardInterrupt:
        say(err, _t("\nInterrupted.", "\nПрервано."))
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug: say so plainly, with the type, and exit with the internal code
        say(
            err,
            _t(
                f"Internal error ({type(exc).__name__}: {exc}). Please report it with the command you ran.",
                f"Внутренняя ошибка ({type(exc).__name__}: {exc}). Сообщите о ней вместе с командой.",
            ),
        )
        return EXIT_INTERNAL
