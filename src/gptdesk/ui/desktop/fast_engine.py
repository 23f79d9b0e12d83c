"""Whether the fast CPU engine (llama-cpp-python, the `fast` extra) is installed, and what to tell the user if not."""

from __future__ import annotations

import re
import shlex
import sys
from importlib import metadata

from gptdesk.i18n import Text

#: Measured by `gptdesk bench` (docs/fast-engine.md): llama.cpp q8_0 against transformers fp32 on a
#: CPU, tokens per second, ruGPT-3 Large and the embedded model.
SPEEDUP_LARGE = 5.4
SPEEDUP_EMBEDDED = 6.9
#: The `fast` extra's pin in pyproject.toml; used when the installed metadata cannot be read (a frozen build).
_FALLBACK_REQUIREMENT = "llama-cpp-python==0.3.36"


def _ru(x: float) -> str:
    return f"{x:g}".replace(".", ",")  # the Russian decimal comma


def fast_engine_installed() -> bool:
    from gptdesk.models.gguf.library import is_available

    return is_available()


def fast_requirement() -> str:
    """The `fast` extra's requirement as the installed package declares it (e.g. llama-cpp-python==0.3.36)."""
    try:
        requires = metadata.requires("gptdesk") or []
    except metadata.PackageNotFoundError:
        return _FALLBACK_REQUIREMENT
    for req in requires:
        spec, _, marker = req.partition(";")
        if re.search(r"extra\s*==\s*['\"]fast['\"]", marker) and spec.strip().lower().startswith("llama"):
            return re.sub(r"\s+", "", spec)
    return _FALLBACK_REQUIREMENT


def fast_engine_notice(installed: bool | None = None) -> Text | None:
    """One line for the user when the fast engine is missing (None when it is installed)."""
    if installed is None:
        installed = fast_engine_installed()
    if installed:
        return None
    # This interpreter's pip: the command installs into the environment GPT Desk runs from.
    pip = f"{shlex.quote(sys.executable)} -m pip install {shlex.quote(fast_requirement())}"
    return Text(
        "The fast CPU engine (llama.cpp) is not installed, so GPT Desk runs on transformers. With it, "
        f"generation on a CPU is about {SPEEDUP_LARGE:g}× faster (q8_0 against fp32 tokens per second on "
        f"ruGPT-3 Large, {SPEEDUP_EMBEDDED:g}× on the embedded model; `gptdesk bench`). To install it you need "
        f"a C++ compiler and CMake (Debian/Ubuntu: sudo apt-get install build-essential cmake), then: {pip}",
        "Быстрый движок для процессора (llama.cpp) не установлен, поэтому GPT Desk работает на transformers. "
        f"С ним генерация на процессоре примерно в {_ru(SPEEDUP_LARGE)} раза быстрее (q8_0 против fp32, токены в "
        f"секунду на ruGPT-3 Large; в {_ru(SPEEDUP_EMBEDDED)} раза на встроенной модели; `gptdesk bench`). Для "
        "установки нужны компилятор C++ и CMake (Debian/Ubuntu: sudo apt-get install build-essential cmake), "
        f"затем: {pip}",
    )


def fast_engine_status(installed: bool | None = None) -> Text | None:
    """The notice's short form for the window's status bar (the full one is its tooltip)."""
    if installed is None:
        installed = fast_engine_installed()
    if installed:
        return None
    return Text(
        f"The fast engine (llama.cpp) is not installed: about {SPEEDUP_LARGE:g}× faster on a CPU. "
        f"Install: pip install {fast_requirement()} (needs a C++ compiler)",
        f"Быстрый движок (llama.cpp) не установлен: на процессоре он примерно в {_ru(SPEEDUP_LARGE)} раза быстрее. "
        f"Установка: pip install {fast_requirement()} (нужен компилятор C++)",
    )
