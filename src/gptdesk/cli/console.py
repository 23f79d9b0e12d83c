"""The CLI's terminal safety: checked arguments and input, guarded output, Ctrl+C at any moment."""

from __future__ import annotations

import argparse
import codecs
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO, cast

from gptdesk.errors import InvalidInputError, OutputClosedError, OutputError
from gptdesk.i18n import Text
from gptdesk.settings.escapes import decode_escapes

EXIT_INTERRUPTED = 130

# -- text the user gives: arguments, standard input, stop strings ----------------------------------


def _shown_bytes(value: str) -> str:
    """The raw bytes of an argument Python could not decode (kept as surrogates by surrogateescape)."""
    raw = value.encode("utf-8", "surrogateescape")
    shown = repr(raw)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def not_utf8_error(what: Text, shown: str) -> InvalidInputError:
    return InvalidInputError(
        Text(
            f"{what.en} is not valid UTF-8 text ({shown}). Save or type it as UTF-8 (the encoding of "
            "a Linux terminal and of most editors), or convert it first, e.g. `iconv -f cp1251 -t utf-8`.",
            f"{what.ru} — не текст в UTF-8 ({shown}). Сохраните или наберите его в UTF-8 (кодировка "
            "терминала Linux и большинства редакторов) или сначала перекодируйте, например "
            "`iconv -f cp1251 -t utf-8`.",
        )
    )


def check_utf8(value: str, what: Text) -> str:
    """`value` as given on the command line, or InvalidInputError when its bytes were not UTF-8."""
    if not _is_utf8(value):
        raise not_utf8_error(what, _shown_bytes(value))
    return value


#: Arguments that name files or folders: a Linux file name may be any bytes, and Python passes them on intact.
PATH_ARGUMENTS: frozenset[str] = frozenset(
    {"model", "file", "files", "data_dir", "png", "svg", "output", "json_path", "adapter"}
)
#: The longest file name (one component) and path Linux takes: longer ones fail with "File name too long".
NAME_MAX = 255
PATH_MAX = 4095


@dataclass(frozen=True)
class Argument:
    """How the command line spells one parsed value: `--stop`, or the positional's metavar."""

    shown: str
    positional: bool
    path: bool


def argument_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Argument]:
    """Each destination of the parsed command (its subcommands' included) and how the user wrote it."""
    found: dict[str, Argument] = {}
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = getattr(args, action.dest, None)
                if isinstance(chosen, str) and chosen in action.choices:
                    pending.append(action.choices[chosen])
                continue
            if action.option_strings:
                long = [o for o in action.option_strings if o.startswith("--")]
                shown = (long or action.option_strings)[0]
            else:
                metavar = action.metavar if isinstance(action.metavar, str) else None
                shown = metavar or action.dest.upper()
            path = action.dest in PATH_ARGUMENTS or action.type is Path
            found[action.dest] = Argument(shown, not action.option_strings, path)
    return found


def check_arguments(
    values: dict[str, Any],
    names: dict[str, Argument] | None = None,
    prompt_names: tuple[str, ...] = ("prompt", "text"),
) -> None:
    """Every text argument of a parsed command line must be UTF-8; a path must be short enough to exist.

    Paths are exempt from UTF-8: a Linux file name may be any bytes, and Python passes them on intact.
    Messages name each value as the user wrote it (`--stop`, or the positional FILE).
    """
    names = names or {}
    for name, value in values.items():
        known = names.get(name) or Argument("--" + name.replace("_", "-"), False, name in PATH_ARGUMENTS)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Path):
                item = str(item)
            if not isinstance(item, str):
                continue
            if known.path:
                _check_path_length(item, known)
                continue
            if not _is_utf8(item):
                if known.positional and name in prompt_names:
                    what = Text("the prompt", "затравка")  # `tokens TEXT` too: the text a prompt would be
                elif known.positional:
                    what = Text(f"the argument {known.shown}", f"аргумент {known.shown}")
                else:
                    what = Text(f"the value of {known.shown}", f"значение {known.shown}")
                raise not_utf8_error(_capitalized(what), _shown_bytes(item))


def _capitalized(text: Text) -> Text:
    return Text(text.en[:1].upper() + text.en[1:], text.ru[:1].upper() + text.ru[1:])


def _check_path_length(value: str, known: Argument) -> None:
    """A name no file system can hold is bad input, not an "Internal error (File name too long)"."""
    raw = os.fsencode(value)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest <= NAME_MAX and len(raw) <= PATH_MAX:
        return
    head = value[:40].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    model = known.shown == "--model"
    raise InvalidInputError(
        Text(
            f"{known.shown} '{head}…' is {len(value):,} characters long: no file or folder can have such a name "
            f"(Linux takes at most {NAME_MAX} bytes per name and {PATH_MAX + 1:,} per path). Give an existing "
            "file or folder" + (", a catalog name (`gptdesk models`) or a hub id owner/name." if model else "."),
            f"{known.shown} «{head}…» длиной {len(value):,} символов: такого имени не бывает ни у файла, ни у "
            f"папки (Linux допускает не больше {NAME_MAX} байт на имя и {PATH_MAX + 1:,} на путь). Укажите "
            "существующий файл или папку"
            + (", имя из каталога (`gptdesk models`) или id на хабе владелец/имя." if model else "."),
        )
    )


def read_text(value: str, stdin: IO[Any] | None = None) -> str:
    """A prompt argument, or standard input for '-', decoded strictly as UTF-8."""
    what = Text("The prompt", "Затравка")
    if value != "-":
        return check_utf8(value, what)
    stream = stdin if stdin is not None else sys.stdin
    raw = getattr(stream, "buffer", None)
    if raw is None:  # a text stream without bytes underneath (tests pass io.StringIO)
        return check_utf8(stream.read(), what)
    data: bytes = raw.read()
    try:
        return codecs.decode(data, "utf-8")
    except UnicodeDecodeError as exc:
        bad = data[max(0, exc.start - 4) : exc.end + 4]
        raise not_utf8_error(
            Text("The prompt (standard input)", "Затравка (стандартный ввод)"),
            f"{bad!r} at byte {exc.start}",
        ) from None


def stop_strings(values: list[str]) -> list[str]:
    """--stop values with their escapes decoded; a malformed escape is bad input that names the value."""
    decoded: list[str] = []
    for value in values:
        try:
            decoded.append(decode_escapes(value))
        except ValueError as exc:
            bad = str(exc)
            raise InvalidInputError(
                Text(
                    f"--stop '{value}' has a malformed escape '{bad}'. Write \\n for a new line, \\t for a "
                    "tab, \\\\ for a backslash, \\xHH with two hex digits or \\uHHHH with four "
                    "(e.g. --stop 'конец.\\n').",
                    f"--stop '{value}': неправильная escape-последовательность '{bad}'. Пишите \\n для "
                    "новой строки, \\t для табуляции, \\\\ для обратной косой черты, \\xHH с двумя "
                    "шестнадцатеричными цифрами или \\uHHHH с четырьмя (например, --stop 'конец.\\n').",
                )
            ) from None
    return decoded


# -- output: a closed pipe, a full disk, an encoding without Cyrillic -----------------------------


class GuardedOutput:
    """A text stream whose write failures become typed errors instead of tracebacks.

    A closed pipe raises OutputClosedError (the CLI then exits quietly); a full disk or an
    encoding that cannot hold the text raises OutputError with a message that says what to do.
    """

    def __init__(self, stream: TextIO, name: Text) -> None:
        self._stream = stream
        self._name = name

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError, UnicodeEncodeError) as exc:
            raise self._failure(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            raise self._failure(exc) from None

    def check_encodable(self, text: str) -> None:
        """Fail before any work when the text (e.g. the prompt to echo) cannot be written at all."""
        encoding = getattr(self._stream, "encoding", None)
        if not encoding:
            return
        try:
            text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise self._failure(exc) from None
        except LookupError:
            return

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _failure(self, exc: BaseException) -> OutputError:
        where = self._name
        if isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
            return OutputClosedError(Text(f"{where.en} was closed", f"{where.ru} закрыт"))
        if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError) and self._stream.closed:
            return OutputClosedError(Text(f"{where.en} was closed", f"{where.ru} закрыт"))
        if isinstance(exc, UnicodeEncodeError):
            char = exc.object[exc.start : exc.start + 1]
            encoding = getattr(self._stream, "encoding", None) or exc.encoding
            return OutputError(
                Text(
                    f"{where.en} uses the encoding {encoding}, which cannot hold the character {char!r} "
                    f"(U+{ord(char):04X}) of the text. Run GPT Desk with a UTF-8 locale (e.g. LANG=C.UTF-8) or set "
                    "PYTHONIOENCODING=utf-8.",
                    f"{where.ru} использует кодировку {encoding}, в которой нет символа {char!r} (U+{ord(char):04X}) "
                    "из текста. Запустите GPT Desk с локалью UTF-8 (например, LANG=C.UTF-8) или задайте "
                    "PYTHONIOENCODING=utf-8.",
                )
            )
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return OutputError(
                Text(
                    f"{where.en} cannot be written: no space is left on its device ({exc.strerror}). Free "
                    "some disk space or redirect the output to another disk.",
                    f"{where.ru}: запись невозможна, на устройстве нет места ({exc.strerror}). Освободите "
                    "место на диске или перенаправьте вывод на другой диск.",
                )
            )
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return OutputError(
            Text(
                f"{where.en} cannot be written ({detail}). Check where the output goes (a file, a pipe, a "
                "terminal) and try again.",
                f"{where.ru}: запись невозможна ({detail}). Проверьте, куда идёт вывод (файл, канал, "
                "терминал), и повторите.",
            )
        )


class _ClosedStream(io.StringIO):
    """Stands for a standard stream the process was started without (`gptdesk … >&-`: sys.stdout is None)."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def standard_streams(out: TextIO | None, err: TextIO | None) -> tuple[TextIO, TextIO]:
    """The output and error streams to use, guarded; a missing stdout fails on use, a missing stderr is silent."""
    out = out or sys.stdout or _ClosedStream()
    err = err or sys.stderr or io.StringIO()
    return guard(out, STDOUT_NAME), guard(err, STDERR_NAME)


STDOUT_NAME = Text("The standard output", "Стандартный вывод")
STDERR_NAME = Text("The standard error", "Поток ошибок")


def guard(stream: TextIO, name: Text) -> TextIO:
    """`stream` behind a GuardedOutput (typed as the TextIO the commands expect)."""
    if isinstance(stream, GuardedOutput):
        return cast(TextIO, stream)
    return cast(TextIO, GuardedOutput(stream, name))


def silence(stream: TextIO) -> None:
    """Point a failed standard stream at /dev/null, so the interpreter's final flush reports nothing.

    Python flushes sys.stdout at exit; with a closed pipe or a full disk that flush would print
    "Exception ignored … BrokenPipeError" after our own message (the recipe of Python's signal docs).
    """
    inner = stream.wrapped if isinstance(stream, GuardedOutput) else stream
    if inner not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        return
    try:
        fd = inner.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        return
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def printable(text: str) -> str:
    """`text` with the raw bytes of a non-UTF-8 file name shown as escapes (b'\\xff' → \\xff), never failing."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that no byte stands for
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def readable(stream: TextIO, text: Text) -> str:
    """The text in the user's language, or in English when the stream's encoding cannot hold Cyrillic."""
    chosen = printable(text.get())
    encoding = getattr(stream, "encoding", None)
    try:
        chosen.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return printable(text.en)
    return chosen


def say(err: TextIO, text: str) -> None:
    """Print a message to standard error, ignoring a standard error that itself cannot be written."""
    try:
        print(printable(text), file=err, flush=True)
    except (OSError, ValueError, OutputError):  # the exit status still tells what happened
        silence(err)


# -- Ctrl+C during start-up --------------------------------------------------------------------------


@contextmanager
def interrupt_exits_at_once(message: Text) -> Iterator[None]:
    """While imports and model loading run, Ctrl+C ends the process at once with status 130.

    Raising KeyboardInterrupt there is unsafe: it can land inside a native extension's import
    (pybind11 turns it into std::terminate and SIGABRT), be swallowed by a library that catches
    broad exceptions, or be re-raised as a misleading ModuleNotFoundError by transformers' lazy
    imports. Nothing the start-up does needs cleaning up: downloads keep their partial file for the
    next run, conversions write to a temporary name, and nothing has been printed yet.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: FrameType | None) -> None:
        # os.write, not print: the handler may run in the middle of a write to the buffered stderr.
        with suppress(OSError):
            os.write(2, ("\n" + message.get() + "\n").encode("utf-8", "backslashreplace"))
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, exit_now)
    try:
        yield
    finally:
        # None: the previous handler was not Python's (an embedding program's); leave ours then.
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def interrupt_raises() -> Iterator[None]:
    """Python's own Ctrl+C (KeyboardInterrupt) for a block that handles it, such as a running server.

    uvicorn shuts down gracefully on Ctrl+C and then raises the signal again for the handler it
    found; inside interrupt_exits_at_once that would end the process before "Server stopped."
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
