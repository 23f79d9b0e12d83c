"""llama.cpp's side of the engine: how many threads to run, and a loaded model's weights."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.models.gguf.library import Library


def default_threads() -> int:
    """GPTDESK_THREADS when set, else one thread per physical core this process may use (llama.cpp
    gains nothing from SMT siblings). Fewer threads help when other programs keep a core busy: a
    llama.cpp thread that waits for a descheduled sibling at every step stalls the whole step."""
    wanted = threads_from_environment()
    return wanted if wanted is not None else physical_cores()


def threads_from_environment() -> int | None:
    """GPTDESK_THREADS as a thread count (None when unset or "auto"); bad values name the fix."""
    return _count_from_environment("GPTDESK_THREADS", check_thread_count)


def _count_from_environment(name: str, check: Callable[[int, str, str], int]) -> int | None:
    """The whole number in the variable `name`, as `check` accepts it (None when unset or "auto")."""
    raw = os.environ.get(name, "").strip()
    if raw in ("", "auto"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1  # refused by every check, which names the variable and the range
    return check(value, name, raw)


#: The most cells the prefix cache may keep (GPTDESK_CACHE_TOKENS, --cache-tokens): 2**20 cells of
#: ruGPT-3 Large are 384 GB of float16 keys and values, far past any machine this runs on.
MAX_CACHE_TOKENS = 1 << 20


def cache_tokens_from_environment() -> int | None:
    """GPTDESK_CACHE_TOKENS as a cell count (None when unset or "auto": one full context)."""
    return _count_from_environment("GPTDESK_CACHE_TOKENS", check_cache_tokens)


def check_cache_tokens(value: int, name: str = "cache_tokens", raw: str | None = None) -> int:
    """`value` when it is a cell count from 0 (keep nothing between calls) to MAX_CACHE_TOKENS."""
    if 0 <= value <= MAX_CACHE_TOKENS:
        return value
    shown = raw if raw is not None else str(value)
    raise InvalidInputError(
        Text(
            f"{name} = '{shown}': use a whole number of tokens from 0 (keep nothing between generations) to "
            f"{MAX_CACHE_TOKENS}, or 'auto' (one full context of the model).",
            f"{name} = «{shown}»: укажите целое число токенов от 0 (ничего не хранить между генерациями) до "
            f"{MAX_CACHE_TOKENS} или 'auto' (один полный контекст модели).",
        )
    )


#: GPTDESK_FLASH_ATTENTION's values and what each gives llama.cpp's context (None: llama.cpp decides, which on a
#: CPU means on).
FLASH_ATTENTION = {"auto": None, "on": True, "off": False}


def flash_attention_from_environment() -> bool | None:
    """GPTDESK_FLASH_ATTENTION: "auto" (unset) lets llama.cpp choose, "on" or "off" forces its attention kernel.

    Which is faster depends on the model and the CPU (docs/fast-engine.md, "Attention"): off reads every cell
    the cache holds once for all of a step's tokens; on reads only a sequence's own cells, but once per token
    and at a cost per cell that grows with the head's width."""
    raw = os.environ.get("GPTDESK_FLASH_ATTENTION", "").strip().lower()
    if raw == "":
        return None
    if raw in FLASH_ATTENTION:
        return FLASH_ATTENTION[raw]
    shown = os.environ.get("GPTDESK_FLASH_ATTENTION", "")
    raise InvalidInputError(
        Text(
            f"GPTDESK_FLASH_ATTENTION = '{shown}': use 'auto' (llama.cpp decides), 'on' or 'off', or unset it.",
            f"GPTDESK_FLASH_ATTENTION = «{shown}»: укажите 'auto' (решает llama.cpp), 'on' или 'off' либо "
            "уберите переменную.",
        )
    )


def logical_cpus() -> int:
    """The machine's logical CPUs: the most threads worth starting (llama.cpp allocates per thread)."""
    return max(1, os.cpu_count() or 1)


def check_thread_count(value: int, name: str = "threads", raw: str | None = None) -> int:
    """`value` when it is between 1 and the logical CPUs; else InvalidInputError naming `name` and the range.

    Far more threads than CPUs only slow llama.cpp down, and an absurd count makes it allocate
    without bound (std::bad_alloc, the process aborts)."""
    limit = logical_cpus()
    if 1 <= value <= limit:
        return value
    shown = raw if raw is not None else str(value)
    raise InvalidInputError(
        Text(
            f"{name} = '{shown}': use a whole number of threads from 1 to {limit} (this machine's logical CPUs), "
            f"or 'auto' (one per physical core: {physical_cores()} here).",
            f"{name} = «{shown}»: укажите целое число потоков от 1 до {limit} (логических процессоров на этом "
            f"компьютере) или 'auto' (по одному на физическое ядро: здесь {physical_cores()}).",
        )
    )


def physical_cores() -> int:
    """The physical cores this process may use."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        allowed = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except Exception:  # pragma: no cover - psutil cannot read the topology
        physical = allowed
    return max(1, min(allowed, physical))


class LoadFailed(Exception):
    """llama.cpp could not load a model file; the engine says why and what to do."""


class NativeModel:
    """A loaded llama.cpp model (its weights); freed by close(). Contexts and their caches are the backend's."""

    def __init__(self, lib: Any, path: Path, threads: int, *, read_whole: bool = False) -> None:
        """`read_whole`: read the file into memory instead of mapping it (see _reads_whole)."""
        self.lib = lib
        self.threads = check_thread_count(threads)
        params = lib.llama_model_default_params()
        if read_whole and "load_mode" in {name for name, _ in type(params)._fields_}:
            params.load_mode = lib.LLAMA_LOAD_MODE_NONE
        Library.recent_log.clear()
        self.model = lib.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self.model:
            raise LoadFailed(Library.last_errors() or "llama_model_load_from_file returned NULL")
        self.n_vocab = int(lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model)))

    def close(self) -> None:
        if self.model is not None:
            self.lib.llama_model_free(self.model)
            self.model = None


#: Tensor types llama.cpp repacks at load into a buffer of its own for its AVX2/AVX-512 and NEON
#: kernels (its CPU_REPACK buffer): Q4_0, Q4_K and IQ4_NL.
