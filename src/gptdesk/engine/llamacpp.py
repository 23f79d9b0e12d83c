"""The fast CPU engine: quantized GGUF models on llama.cpp, with the reference engine's semantics."""

from __future__ import annotations

import collections
import ctypes
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gptdesk.engine import drivers
from gptdesk.engine.base import (
    Capabilities,
    Engine,
    ModelInfo,
    Notice,
    ProgressCallback,
    StreamEvent,
    TokenPiece,
)
from gptdesk.engine.core import Clock, PreparedPrompt, choose_seed, prepare_prompt
from gptdesk.engine.llama_backend import LlamaBackend
from gptdesk.engine.pipeline import LogitsPipeline
from gptdesk.engine.store import SequenceStore
from gptdesk.engine.tokens import load_tokenizer, piece_text, tokenize
from gptdesk.errors import EngineError, InvalidInputError, ModelCorruptError
from gptdesk.estimate import CostEstimate, ModelShape, check_affordable, estimate
from gptdesk.i18n import Text
from gptdesk.models.convert import DEFAULT_QUANT, QUANT_TYPES, check_quant, ensure_gguf, invalidate
from gptdesk.models.locate import ResolvedModel, read_config, resolve
from gptdesk.settings import GenerationSettings

ENGINE_NAME = "llamacpp"
#: The quantization each llama.cpp type stands for in the memory estimate (estimate.DTYPE_BYTES).
_ESTIMATE_DTYPE = {
    "f16": "float16",
    "q8_0": "q8_0",
    "q4_0": "q4_0",
    "f32": "float32",
    "q6_K": "q6_K",
    "q5_K_M": "q5_K_M",
    "q4_K_M": "q4_K_M",
}
#: The context (KV cache) grows in steps of this many tokens, up to the model's own context:
#: llama.cpp clears the whole cache buffer when it makes it, so a 2048-token cache for
#: ruGPT-3 Large would cost 300 MB of memory even for a short text.
_CTX_STEP = 256
#: Tokens per llama_decode call during the prompt (and the size of the compute buffers).
_BATCH = 256
#: The most sequences one context holds (llama.cpp's LLAMA_MAX_SEQ).
_MAX_SEQ = 256


def is_available() -> bool:
    """True when llama-cpp-python (the `fast` extra) is installed; does not load it."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


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


# -- llama.cpp itself --------------------------------------------------------------------------


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


class _Library:
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
                    # Kept for error messages; llama.cpp's chatter never reaches the terminal.
                    if level in (2, 3):  # warnings and errors
                        cls.recent_log.append(text.decode("utf-8", "replace").rstrip())

                llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
                cls._log_callback = _log
                close_devnull_at_exit()
                llama_cpp.llama_backend_init()
                cls._module = llama_cpp
            return cls._module

    @classmethod
    def last_errors(cls) -> str:
        return " | ".join(line for line in cls.recent_log if line)[-600:]


class _Native:
    """A loaded llama.cpp model and its context; freed by close().

    The context has a unified KV cache shared by up to `n_seq` sequences: the prompt is decoded once
    into sequence 0 and shared with the others by llama_memory_seq_cp (its cells are tagged with
    every sequence id, not copied), and each step decodes one token of every live sequence in one
    llama_decode call.
    """

    def __init__(self, lib: Any, path: Path, threads: int, *, read_whole: bool = False) -> None:
        """`read_whole`: read the file into memory instead of mapping it (see _reads_whole)."""
        self.lib = lib
        self.threads = threads
        params = lib.llama_model_default_params()
        if read_whole and "load_mode" in {name for name, _ in type(params)._fields_}:
            params.load_mode = lib.LLAMA_LOAD_MODE_NONE
        _Library.recent_log.clear()
        self.model = lib.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self.model:
            raise _LoadFailed(_Library.last_errors() or "llama_model_load_from_file returned NULL")
        self.n_vocab = int(lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model)))
        self.ctx: Any = None
        self.n_ctx = 0
        self.n_seq = 0
        self.batch_size = _BATCH
        self._batch: Any = None

    def ensure_context(self, needed: int, limit: int, n_seq: int = 1) -> None:
        """A context whose cache holds `needed` cells for `n_seq` sequences, made anew only when it must grow.

        `limit` caps one sequence's cells (the model's context); several sequences may need more in all.
        """
        if self.ctx is not None and needed <= self.n_ctx and n_seq <= self.n_seq:
            return
        lib = self.lib
        cap = limit * max(1, n_seq)
        n_ctx = min(cap, -(-max(needed, self.n_ctx if self.ctx is not None else 0) // _CTX_STEP) * _CTX_STEP)
        n_seq = max(n_seq, self.n_seq if self.ctx is not None else 1)
        self._free_context()
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = min(_BATCH, n_ctx)
        params.n_ubatch = min(_BATCH, n_ctx)
        params.n_seq_max = min(n_seq, _MAX_SEQ)
        params.kv_unified = True  # sequences share the prompt's cells
        params.n_threads = self.threads
        params.n_threads_batch = self.threads
        params.no_perf = True
        ctx = lib.llama_init_from_model(self.model, params)
        if not ctx:
            raise EngineError(
                Text(
                    f"llama.cpp could not make a context of {n_ctx} tokens ({_Library.last_errors()}). "
                    "Close other programs, or use fewer new tokens, beams or variants.",
                    f"llama.cpp не смог создать контекст на {n_ctx} токенов ({_Library.last_errors()}). "
                    "Закройте другие программы или уменьшите число новых токенов, лучей или вариантов.",
                )
            )
        self.ctx = ctx
        self.n_ctx = n_ctx
        self.n_seq = params.n_seq_max
        self.batch_size = params.n_batch
        self._batch = lib.llama_batch_init(self.batch_size, 0, 1)

    def _free_context(self) -> None:
        if self._batch is not None:
            self.lib.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None

    @property
    def _memory(self) -> Any:
        return self.lib.llama_get_memory(self.ctx)

    def clear(self) -> None:
        """Forget the whole cache."""
        self.lib.llama_memory_clear(self._memory, True)

    def share(self, src: int, dst: int) -> None:
        """Sequence `dst` becomes a copy of `src` (its cells gain the id; nothing is copied)."""
        self.lib.llama_memory_seq_rm(self._memory, dst, -1, -1)
        self.lib.llama_memory_seq_cp(self._memory, src, dst, -1, -1)

    def drop(self, seq: int) -> None:
        """Forget a sequence; cells no other sequence uses become free."""
        self.lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    def decode(self, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Decode a prompt into sequence 0 of an empty cache; the logits after its last token."""
        rows = self.decode_batch([(token, pos, 0) for pos, token in enumerate(ids)], last_only=True)
        row: np.ndarray[Any, np.dtype[np.float32]] = rows[0]
        return row

    def decode_batch(
        self, tokens: list[tuple[int, int, int]], *, last_only: bool = False
    ) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Decode (token, position, sequence) triples; one row of logits per token (or for the last only)."""
        lib = self.lib
        batch = self._batch
        out: list[np.ndarray[Any, np.dtype[np.float32]]] = []
        for start in range(0, len(tokens), self.batch_size):
            chunk = tokens[start : start + self.batch_size]
            final_chunk = start + self.batch_size >= len(tokens)
            for i, (token, pos, seq) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = 1 if (not last_only) or (final_chunk and i == len(chunk) - 1) else 0
            batch.n_tokens = len(chunk)
            rc = lib.llama_decode(self.ctx, batch)
            if rc != 0:
                raise EngineError(
                    Text(
                        f"llama.cpp failed to decode (code {rc}; {_Library.last_errors()}). Use fewer new "
                        "tokens, beams or variants.",
                        f"llama.cpp не смог выполнить шаг (код {rc}; {_Library.last_errors()}). Уменьшите "
                        "число новых токенов, лучей или вариантов.",
                    )
                )
            wanted = [len(chunk) - 1] if last_only else range(len(chunk))
            if last_only and not final_chunk:
                continue
            for i in wanted:
                pointer = lib.llama_get_logits_ith(self.ctx, i)
                out.append(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy())
        return np.stack(out)

    def close(self) -> None:
        self._free_context()
        if self.model is not None:
            self.lib.llama_model_free(self.model)
            self.model = None


#: Tensor types llama.cpp repacks at load into a buffer of its own for its AVX2/AVX-512 and NEON
#: kernels (its CPU_REPACK buffer): Q4_0, Q4_K and IQ4_NL.
_REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})


def _reads_whole(manifest: dict[str, Any]) -> bool:
    """Whether to read a file into memory rather than map it: when llama.cpp repacks its matrices.

    The mapped pages the repacked copy was made from stay resident beside it: ruGPT-3 Large held
    930 MB in q4_K_M and 1.0 GB in q4_0 mapped, 666 and 634 MB read (`gptdesk bench --configs
    q4_0,q4_K_M`). Files with nothing to repack are mapped: the same memory, and a faster load
    (q8_0: 1.3 s against 2.8 s), since the pages arrive as the first step reads them.
    """
    return bool(_REPACKED_TYPES & set(manifest.get("tensor_types") or ()))


class _LoadFailed(Exception):
    pass


# -- the engine ---------------------------------------------------------------------------------


class LlamaCppEngine:
    """GPT-2-family models converted to GGUF, run by llama.cpp; tokens from the Hugging Face tokenizer."""

    name = ENGINE_NAME

    def __init__(
        self,
        native: _Native,
        tokenizer: Any,
        info: ModelInfo,
        shape: ModelShape,
        gguf: Path,
        *,
        cache_tokens: int | None = None,
    ) -> None:
        """`cache_tokens`: the most cells kept between calls for prefix reuse (None: one full context)."""
        self._native: _Native | None = native
        self._backend = LlamaBackend(native.lib, native.model, native.n_vocab, native.threads, _Library.last_errors)
        #: The model's cache: one store across calls, so a Continue or a second request reuses the prefix.
        self.store = SequenceStore(self._backend, info.n_positions, limit=cache_tokens, batch=_BATCH)
        self._tokenizer = tokenizer
        self.info = info
        self.shape = shape
        self.gguf = gguf
        self.load_seconds = 0.0
        self.converted_now = False
        self._lock = threading.Lock()  # one generation at a time per loaded model

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        name: str | Path | None = None,
        *,
        quant: str = DEFAULT_QUANT,
        threads: int | None = None,
        device: str = "auto",
        dtype: str = "auto",
        progress: ProgressCallback | None = None,
        check_memory: bool = True,
        allow_download: bool = True,
    ) -> LlamaCppEngine:
        """Load a model (None: the embedded one), converting it to GGUF on first use."""
        resolved = resolve(name, allow_download=allow_download)
        return cls.load_resolved(
            resolved,
            quant=quant,
            threads=threads,
            device=device,
            dtype=dtype,
            progress=progress,
            check_memory=check_memory,
        )

    @classmethod
    def load_resolved(
        cls,
        resolved: ResolvedModel,
        *,
        quant: str = DEFAULT_QUANT,
        threads: int | None = None,
        device: str = "auto",
        dtype: str = "auto",
        progress: ProgressCallback | None = None,
        check_memory: bool = True,
        tokenizer: Any = None,
    ) -> LlamaCppEngine:
        """`tokenizer`: one already loaded for the same folder (a second copy of a model shares it)."""
        started = time.perf_counter()
        quant = _quant_for(quant, dtype)
        if device not in ("auto", "cpu"):
            raise InvalidInputError(
                Text(
                    f"device = '{device}': the llama.cpp engine runs on the CPU only. Use device 'cpu' or "
                    "'auto', or --engine transformers for a GPU.",
                    f"device = «{device}»: движок llama.cpp работает только на процессоре. Укажите "
                    "«cpu» или «auto» либо --engine transformers для GPU.",
                )
            )
        if threads is not None and threads < 1:
            raise InvalidInputError(
                Text(
                    f"threads = {threads}: use at least 1 (the default is one per physical core).",
                    f"threads = {threads}: нужен хотя бы 1 (по умолчанию — по одному на физическое ядро).",
                )
            )
        lib = _Library.get()
        config = read_config(resolved.path)
        shape = ModelShape.from_config(config)
        if check_memory:
            check_affordable(
                estimate(shape, dtype=_ESTIMATE_DTYPE[quant], prompt_tokens=16, max_new_tokens=16, engine=ENGINE_NAME),
                weights_loaded=False,
            )
        converted = ensure_gguf(resolved, quant, progress=progress)
        if progress is not None:
            progress(Text("Loading the model into llama.cpp", "Загрузка модели в llama.cpp"), None)
        if tokenizer is None:
            tokenizer = load_tokenizer(resolved.path)
        n_threads = threads or default_threads()
        try:
            native = _Native(lib, converted.path, n_threads, read_whole=_reads_whole(converted.manifest))
        except _LoadFailed as first:
            # A file that passed the quick check but that llama.cpp refuses is damaged: convert it
            # again once, and report the second failure if there is one.
            invalidate(converted.path)
            converted = ensure_gguf(resolved, quant, progress=progress)
            try:
                native = _Native(lib, converted.path, n_threads, read_whole=_reads_whole(converted.manifest))
            except _LoadFailed as second:
                raise ModelCorruptError(
                    Text(
                        f"llama.cpp cannot load the converted model {converted.path} ({second}; before "
                        f"reconverting: {first}). Use --engine transformers, and report this with the model's name.",
                        f"llama.cpp не может загрузить преобразованную модель {converted.path} ({second}; до "
                        f"повторного преобразования: {first}). Используйте --engine transformers и сообщите "
                        "об ошибке, указав модель.",
                    )
                ) from second
        n_params = int(lib.llama_model_n_params(native.model))
        info = ModelInfo(
            model_id=resolved.model_id,
            source=str(resolved.path),
            revision=resolved.revision,
            engine=ENGINE_NAME,
            device="cpu",
            dtype=quant,
            n_params=n_params,
            n_layer=shape.n_layer,
            n_embd=shape.n_embd,
            n_head=shape.n_head,
            n_positions=shape.n_positions,
            vocab_size=shape.vocab_size,
        )
        engine = cls(native, tokenizer, info, shape, converted.path)
        engine.store.reserve(_CTX_STEP)
        engine.converted_now = not converted.reused
        engine.load_seconds = time.perf_counter() - started
        if progress is not None:
            progress(Text("Ready", "Готово"), 1.0)
        return engine

    def close(self) -> None:
        with self._lock:
            if self._native is not None:
                self.store.clear()
                self._backend.close()
                self._native.close()
                self._native = None
            self._tokenizer = None

    def __enter__(self) -> LlamaCppEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ----------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def tokenize(self, text: str) -> list[TokenPiece]:
        return tokenize(self._tokenizer, text)

    def piece(self, token_id: int) -> str:
        return piece_text(self._tokenizer, token_id)  # cached per tokenizer in engine.tokens

    @property
    def threads(self) -> int:
        return self._native.threads if self._native is not None else 0

    # -- generation ------------------------------------------------------------------------------

    def next_logits(self, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The model's raw scores for the token after `ids` (the lab), from the cache's longest common prefix."""
        with self._lock:
            self._open()
            return drivers.next_logits(self.store, ids)

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The raw log-probability of each of `ids` after `prompt_ids` (temperature 1, nothing applied; the lab)."""
        with self._lock:
            self._open()
            return drivers.token_logprobs(self.store, prompt_ids, ids)

    def _open(self) -> _Native:
        if self._native is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        return self._native

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(local=True, beam_search=True, batched=True, logprobs=True)

    def check(self, prompt: str, settings: GenerationSettings, *, dtype: str | None = None) -> CostEstimate:
        """The cost of this generation on llama.cpp (on another GGUF type if `dtype` is given); raises when
        it cannot run (see Engine.check)."""
        if self._tokenizer is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        prep = prepare_prompt(self._tokenizer, self.info.n_positions, prompt, settings)
        return self._check(prep, settings, dtype=dtype)

    def _check(self, prep: PreparedPrompt, settings: GenerationSettings, *, dtype: str | None = None) -> CostEstimate:
        cost = estimate(
            self.shape,
            dtype=_ESTIMATE_DTYPE[dtype or self.info.dtype],
            prompt_tokens=len(prep.ids),
            max_new_tokens=prep.max_new,
            num_beams=settings.num_beams,
            num_return_sequences=settings.num_return_sequences,
            do_sample=settings.do_sample,
            engine=ENGINE_NAME,
        )
        check_affordable(cost, weights_loaded=True)
        return cost

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        """Yield notices, then tokens as they are generated (a leading beam in beam search), then Finished."""
        if self._native is None or self._tokenizer is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        started = time.perf_counter()
        prep = prepare_prompt(self._tokenizer, self.info.n_positions, prompt, settings)
        self._check(prep, settings)
        yield from prep.notices
        seed = choose_seed(settings)
        with self._lock:
            native = self._native
            if native is None:
                raise EngineError(Text("The engine is closed.", "Движок закрыт."))
            run = drivers.beam_search if settings.num_beams > 1 else drivers.sample
            # No torch op runs in these loops: torch's spinning thread pool beside llama.cpp's threads
            # slowed llama.cpp several times over when the app's reference engine had used it.
            yield from run(
                self.store,
                prep,
                settings,
                seed,
                cancel,
                tokenizer=self._tokenizer,
                piece=self.piece,
                eos_id=self._eos(),
                top_n=top_alternatives,
                clock=Clock(started),
            )

    def _eos(self) -> int | None:
        eos = self._tokenizer.eos_token_id
        return int(eos) if eos is not None else None

    # -- scoring a text (the perplexity tool) ---------------------------------------------------

    def score_tokens(self, ids: list[int], start: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
        """log p(ids[i] | ids[:i]) for i in start .. len(ids) - 1, as the reference engine's method
        (the perplexity tool), from the cache's longest common prefix."""
        with self._lock:
            self._open()
            return drivers.score(self.store, ids, start)


def _quant_for(quant: str, dtype: str) -> str:
    """The GGUF type to load: `quant`, unless the caller's dtype asks for f16 explicitly."""
    if dtype in ("auto", *QUANT_TYPES):
        chosen = quant if dtype == "auto" else dtype
    elif dtype == "float16":
        chosen = "f16"
    else:
        raise InvalidInputError(
            Text(
                f"dtype = '{dtype}' is not available on the llama.cpp engine: it runs {', '.join(QUANT_TYPES)} "
                "(dtype float16 means f16). Use one of those, or --engine transformers for float32 or bfloat16.",
                f"dtype = «{dtype}» недоступен на движке llama.cpp: он работает с {', '.join(QUANT_TYPES)} "
                "(dtype float16 — это f16). Выберите один из них или --engine transformers для float32 "
                "и bfloat16.",
            )
        )
    check_quant(chosen)
    return chosen


# -- auto: the fast engine by default, the reference engine when the settings need it ------------


#: Sequences per step from which the auto engine runs the batch quantization instead of q8_0.
BATCH_ROWS = 4
#: The quantization the auto engine uses for many sequences at once, chosen by measurement: llama.cpp
#: has repacked batched kernels for q4_0 on x86 and none for q8_0, so one step of B sequences costs
#: (ruGPT-3 Large, 2 threads, after a 20-token prompt) q8_0 29 / 96 / 148-176 ms for B = 1 / 4 / 10,
#: f16 44 / 64 / 103 ms and q4_0 16 / 33 / 74 ms. q4_0 is also the smallest in memory.
BATCH_QUANT = "q4_0"


class AutoEngine:
    """The engine for engine="auto" on a CPU: llama.cpp, beam search included.

    Runs of BATCH_ROWS or more sequences per step (beams or variants) go to a second llama.cpp
    engine on BATCH_QUANT, loaded (and converted) on first use, and start with
    Notice("batch_quant") naming it; `info` describes the engine that ran the latest generation.
    """

    name = "auto"

    def __init__(
        self,
        fast: LlamaCppEngine,
        resolved: ResolvedModel | None = None,
        *,
        batch_quant: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.fast = fast
        self._resolved = resolved
        self.batch_quant = batch_quant if resolved is not None and batch_quant != fast.info.dtype else None
        self._options = options or {}
        self._batched: LlamaCppEngine | None = None
        self._info = fast.info

    @property
    def info(self) -> ModelInfo:
        return self._info

    def engine_for(self, settings: GenerationSettings) -> LlamaCppEngine:
        """The engine that runs these settings: the batch quantization for many sequences per step."""
        rows = settings.num_beams if settings.num_beams > 1 else settings.num_return_sequences
        if self.batch_quant is None or rows < BATCH_ROWS or self._resolved is None:
            return self.fast
        if self._batched is None:
            self._batched = LlamaCppEngine.load_resolved(
                self._resolved, quant=self.batch_quant, tokenizer=self.fast.tokenizer, **self._options
            )
        return self._batched

    @property
    def shape(self) -> ModelShape:
        return self.fast.shape

    @property
    def capabilities(self) -> Capabilities:
        return self.fast.capabilities

    @property
    def tokenizer(self) -> Any:
        return self.fast.tokenizer

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate:
        rows = settings.num_beams if settings.num_beams > 1 else settings.num_return_sequences
        if self.batch_quant is None or rows < BATCH_ROWS:
            return self.fast.check(prompt, settings)
        if self._batched is not None:
            return self._batched.check(prompt, settings)
        # Estimated on the batch quantization without loading it.
        return self.fast.check(prompt, settings, dtype=self.batch_quant)

    def tokenize(self, text: str) -> list[TokenPiece]:
        return self.fast.tokenize(text)

    def piece(self, token_id: int) -> str:
        return self.fast.piece(token_id)

    def next_logits(self, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return self.fast.next_logits(ids)

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        engine = self.engine_for(settings)
        self._info = engine.info
        if engine is not self.fast:
            yield Notice(
                "batch_quant",
                Text(
                    f"{settings.num_beams if settings.num_beams > 1 else settings.num_return_sequences} sequences "
                    f"per step run on the {engine.info.dtype} copy of the model: llama.cpp steps many sequences "
                    f"about twice as fast on it as on {self.fast.info.dtype}.",
                    f"{settings.num_beams if settings.num_beams > 1 else settings.num_return_sequences} "
                    f"последовательностей за шаг считаются на копии модели {engine.info.dtype}: на ней "
                    f"llama.cpp ведёт много последовательностей примерно вдвое быстрее, чем на "
                    f"{self.fast.info.dtype}.",
                ),
            )
        yield from engine.stream(prompt, settings, cancel, top_alternatives=top_alternatives)

    def close(self) -> None:
        self.fast.close()
        if self._batched is not None:
            self._batched.close()
            self._batched = None

    def __enter__(self) -> AutoEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score_tokens(self, ids: list[int], start: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Scored by the llama.cpp engine (see LlamaCppEngine.score_tokens)."""
        return self.fast.score_tokens(ids, start)


def load_auto(
    name: str | Path | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    quant: str = DEFAULT_QUANT,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    check_memory: bool = True,
    allow_download: bool = True,
) -> Engine:
    """The engine for engine="auto": llama.cpp on a CPU when it is installed, else transformers.

    The reference engine runs when llama.cpp is not installed, when a GPU is asked for or present
    (device 'auto'), when a torch dtype (float32, bfloat16) is asked for, and when the model is a
    GPT-2 variant llama.cpp computes differently.
    """
    from gptdesk.engine.hf import TransformersEngine, pick_device

    reference_options: dict[str, Any] = {
        "device": device,
        "dtype": dtype,
        "progress": progress,
        "check_memory": check_memory,
    }
    resolved = resolve(name, allow_download=allow_download)
    wants_torch_dtype = dtype in ("float32", "bfloat16")
    if not is_available() or wants_torch_dtype or (device != "cpu" and _cuda_present(device, pick_device)):
        return TransformersEngine.load_resolved(resolved, **reference_options)
    from gptdesk.errors import CacheFolderError, UnsupportedModelError

    try:
        fast = LlamaCppEngine.load_resolved(
            resolved, quant=quant, threads=threads, dtype=dtype, progress=progress, check_memory=check_memory
        )
    except UnsupportedModelError:
        return TransformersEngine.load_resolved(resolved, **reference_options)
    except CacheFolderError as exc:
        # The fast engine needs its converted copy in the cache; the reference engine reads the
        # model's own folder, so an unusable cache costs speed, not the generation.
        return _reference_saying_why(resolved, reference_options, exc.text)
    # The batch quantization only when the caller left the type to the engine.
    batch_quant = BATCH_QUANT if dtype == "auto" and quant == DEFAULT_QUANT else None
    options = {"threads": threads, "check_memory": check_memory}
    return AutoEngine(fast, resolved, batch_quant=batch_quant, options=options)


def _reference_saying_why(resolved: ResolvedModel, options: dict[str, Any], reason: Text) -> Engine:
    """The reference engine in place of llama.cpp; each generation starts with a notice that says why."""
    from gptdesk.engine.hf import TransformersEngine

    notice = Notice(
        "engine_fallback",
        Text("Running on transformers instead of llama.cpp: ", "Работает transformers вместо llama.cpp: ") + reason,
    )

    class ReferenceFallback(TransformersEngine):
        def stream(
            self,
            prompt: str,
            settings: GenerationSettings,
            cancel: threading.Event | None = None,
            *,
            top_alternatives: int = 0,
        ) -> Iterator[StreamEvent]:
            yield notice
            yield from super().stream(prompt, settings, cancel, top_alternatives=top_alternatives)

    return ReferenceFallback.load_resolved(resolved, **options)


def _cuda_present(device: str, pick_device: Any) -> bool:
    if device == "cuda":
        return True
    # Importing torch costs a second and 170 MB, so ask it only where a GPU may be present; with a
    # GPU, device 'auto' means the reference engine on the GPU, the faster choice.
    if "torch" not in sys.modules and not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/dxg")):
        return False
    return bool(pick_device("auto") == "cuda")


__all__ = [
    "DEFAULT_QUANT",
    "ENGINE_NAME",
    "QUANT_TYPES",
    "AutoEngine",
    "LlamaCppEngine",
    "LogitsPipeline",
    "default_threads",
    "is_available",
    "load_auto",
]
