"""llama-cpp-python's bindings, loaded once, with llama.cpp's log kept off the terminal.

A leaf both the llama.cpp engine and the GGUF quantizer use.
"""

from __future__ import annotations

import collections
import ctypes
import threading
from typing import Any, ClassVar

from gptdesk.errors import EngineError
from gptdesk.i18n import Text


def is_available() -> bool:
    """True when llama-cpp-python (the `fast` extra) is installed; does not load it."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


_devnull_closing = False


def close_devnull_at_exit() -> None:
    """llama-cpp-python opens os.devnull twice at import and never closes it; Python then warns
    "unclosed file" at every exit. Close them at exit (GPT Desk never uses the helper that writes to them)."""
    import atexit

    global _devnull_closing
    if _devnull_closing:
        return
    try:
        from llama_cpp import _utils
    except ImportError:  # pragma: no cover - a llama-cpp-python without the module
        return
    _devnull_closing = True
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(_utils, name, None)
        if handle is not None and hasattr(handle, "close"):
            atexit.register(handle.close)


#: ggml_log_level values (ggml.h) of the lines kept for messages, and of a line's continuation.
GGML_LOG_WARN = 3
GGML_LOG_ERROR = 4
GGML_LOG_CONT = 5


class Library:
    """llama-cpp-python's ctypes bindings, imported once, with llama.cpp's log kept off the terminal."""

    _lock = threading.Lock()
    _module: Any = None
    _log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it
    recent_log: ClassVar[collections.deque[str]] = collections.deque(maxlen=40)

    @classmethod
    def get(cls) -> Any:
        with cls._lock:
            if cls._module is None:
                try:
                    import llama_cpp
                except ImportError as exc:
                    raise EngineError(
                        Text(
                            "The llama.cpp engine is not installed. Install it with "
                            "`pip install 'gptdesk[fast]'` (it compiles for a few minutes), or use "
                            "--engine transformers.",
                            "Движок llama.cpp не установлен. Установите его командой "
                            "`pip install 'gptdesk[fast]'` (сборка займёт несколько минут) или "
                            "используйте --engine transformers.",
                        )
                    ) from exc

                @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
                def _log(level: int, text: bytes, user_data: Any) -> None:
                    # Kept for error messages; llama.cpp's chatter (INFO, DEBUG) never reaches the terminal
                    # nor a message.
                    cls.keep_log_line(level, text.decode("utf-8", "replace"))

                llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
                cls._log_callback = _log
                close_devnull_at_exit()
                llama_cpp.llama_backend_init()
                cls._module = llama_cpp
            return cls._module

    #: Whether the last line llama.cpp logged was kept (a CONT line continues it).
    _kept_last: ClassVar[bool] = False

    @classmethod
    def keep_log_line(cls, level: int, text: str) -> None:
        """Keep llama.cpp's warning and error lines (ggml.h's enum ggml_log_level: DEBUG 1, INFO 2, WARN 3,
        ERROR 4, CONT 5 continues the previous line; llama-cpp-python's comment gives an older order)."""
        if level == GGML_LOG_CONT:
            if cls._kept_last and cls.recent_log:
                cls.recent_log[-1] += text.rstrip("\n")
            return
        cls._kept_last = level in (GGML_LOG_WARN, GGML_LOG_ERROR)
        if cls._kept_last:
            cls.recent_log.append(text.rstrip())

    @classmethod
    def last_errors(cls) -> str:
        return " | ".join(line for line in cls.recent_log if line)[-600:]
