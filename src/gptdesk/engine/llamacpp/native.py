"""llama.cpp's side of the engine: how many threads to run, and a loaded model's weights."""

from __future__ import annotations

import os
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
    raw = os.environ.get("GPTDESK_THREADS", "").strip()
    if raw in ("", "auto"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInputError(
            Text(
                f"GPTDESK_THREADS = '{raw}': use a whole number of threads, at least 1, or 'auto' (one per "
                f"physical core: {physical_cores()} here).",
                f"GPTDESK_THREADS = «{raw}»: укажите целое число потоков, не меньше 1, или 'auto' (по одному "
                f"на физическое ядро: здесь {physical_cores()}).",
            )
        )
    return value


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
        self.threads = threads
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
