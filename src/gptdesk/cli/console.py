"""The CLI's terminal safety: checked arguments and input, guarded output, Ctrl+C at any moment."""

from __future__ import annotations

import codecs
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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


def check_arguments(
    values: dict[str, Any], prompt_names: tuple[str, ...] = ("prompt", "text"), paths: tuple[str, ...] = ("model",)
) -> None:
    """Every text argument of a parsed command line must be UTF-8 (the prompt is named as such).

    `paths` are exempt: a Linux file name may be any bytes, and Python passes them on intact.
    """
    for name, value in values.items():
        if name in paths:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str) and not _is_utf8(item):
                if name in prompt_names:
                    what = Text("the prompt", "затравка")
                else:
                    flag = "--" + name.replace("_", "-")
                    what = Text(f"the value of {flag}", f"значение {flag}")
                raise not_utf8_error(_capitalized(what), _shown_bytes(item))


def _capitalized(text: Text) -> Text:
    return Text(text.en[:1].upper() + text.en[1:], text.ru[:1].upper() + text.ru[1:])


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


def readable(stream: TextIO, text: Text) -> str:
    """The text in the user's language, or in English when the stream's encoding cannot hold Cyrillic."""
    chosen = text.get()
    encoding = getattr(stream, "encoding", None)
    try:
        chosen.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return text.en
    return chosen


def say(err: TextIO, text: str) -> None:
    """Print a message to standard error, ignoring a standard error that itself cannot be written."""
    try:
        print(text, file=err, flush=True)
    except (OSError, ValueError):
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
