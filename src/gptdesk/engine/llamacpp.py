"""The fast CPU engine: quantized GGUF models on llama.cpp, with the reference engine's semantics."""

from __future__ import annotations

import collections
import ctypes
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np

from gptdesk.engine.base import (
    Alternative,
    Engine,
    Finished,
    FinishReason,
    ModelInfo,
    Notice,
    ProgressCallback,
    StreamEvent,
    Timings,
    TokenEvent,
    TokenPiece,
)
from gptdesk.engine.pipeline import LogitsPipeline, log_softmax
from gptdesk.engine.tokens import IncrementalDecoder, load_tokenizer, piece_text, tokenize
from gptdesk.errors import EngineError, InvalidInputError, ModelCorruptError, SettingIssue, SettingsError
from gptdesk.estimate import ModelShape, check_affordable, estimate
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


def is_available() -> bool:
    """True when llama-cpp-python (the `fast` extra) is installed; does not load it."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def default_threads() -> int:
    """One thread per physical core this process may use: llama.cpp gains nothing from SMT siblings."""
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


def unsupported_reason(settings: GenerationSettings) -> Text | None:
    """Why the fast engine cannot honour these settings (beam search), or None when it can."""
    if settings.num_beams > 1:
        return Text(
            f"num_beams = {settings.num_beams}: llama.cpp has no beam search, so the transformers engine ran "
            "this generation (slower, and it needs the full-precision model in memory).",
            f"num_beams = {settings.num_beams}: в llama.cpp нет лучевого поиска, поэтому эту генерацию "
            "выполнил движок transformers (медленнее, и ему нужна модель полной точности в памяти).",
        )
    return None


# -- llama.cpp itself --------------------------------------------------------------------------


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
                llama_cpp.llama_backend_init()
                cls._module = llama_cpp
            return cls._module

    @classmethod
    def last_errors(cls) -> str:
        return " | ".join(line for line in cls.recent_log if line)[-600:]


class _Native:
    """A loaded llama.cpp model and its context; freed by close()."""

    def __init__(self, lib: Any, path: Path, threads: int) -> None:
        self.lib = lib
        self.threads = threads
        params = lib.llama_model_default_params()
        params.use_mmap = True
        _Library.recent_log.clear()
        self.model = lib.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self.model:
            raise _LoadFailed(_Library.last_errors() or "llama_model_load_from_file returned NULL")
        self.n_vocab = int(lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model)))
        self.ctx: Any = None
        self.n_ctx = 0
        self.batch_size = _BATCH

    def ensure_context(self, needed: int, limit: int) -> None:
        """A context whose cache holds `needed` tokens, made anew only when it must grow."""
        if self.ctx is not None and needed <= self.n_ctx:
            return
        lib = self.lib
        n_ctx = min(limit, -(-needed // _CTX_STEP) * _CTX_STEP)
        if self.ctx is not None:
            lib.llama_free(self.ctx)
            self.ctx = None
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = min(_BATCH, n_ctx)
        params.n_ubatch = min(_BATCH, n_ctx)
        params.n_seq_max = 1
        params.n_threads = self.threads
        params.n_threads_batch = self.threads
        params.no_perf = True
        ctx = lib.llama_init_from_model(self.model, params)
        if not ctx:
            raise EngineError(
                Text(
                    f"llama.cpp could not make a context of {n_ctx} tokens ({_Library.last_errors()}). "
                    "Close other programs or use fewer new tokens.",
                    f"llama.cpp не смог создать контекст на {n_ctx} токенов ({_Library.last_errors()}). "
                    "Закройте другие программы или уменьшите число новых токенов.",
                )
            )
        self.ctx = ctx
        self.n_ctx = n_ctx
        self.batch_size = params.n_batch

    def clear(self, keep: int = 0) -> None:
        """Forget the cache past position `keep` (0: all of it)."""
        memory = self.lib.llama_get_memory(self.ctx)
        if keep == 0:
            self.lib.llama_memory_clear(memory, True)
        else:
            self.lib.llama_memory_seq_rm(memory, 0, keep, -1)

    def decode(self, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Feed token ids after those already in the cache; the logits after the last one."""
        lib = self.lib
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            array = (lib.llama_token * len(chunk))(*chunk)
            rc = lib.llama_decode(self.ctx, lib.llama_batch_get_one(array, len(chunk)))
            if rc != 0:
                raise EngineError(
                    Text(
                        f"llama.cpp failed to decode (code {rc}; {_Library.last_errors()}).",
                        f"llama.cpp не смог выполнить шаг (код {rc}; {_Library.last_errors()}).",
                    )
                )
        pointer = lib.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def close(self) -> None:
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            self.lib.llama_model_free(self.model)
            self.model = None


class _LoadFailed(Exception):
    pass


# -- the engine ---------------------------------------------------------------------------------


class LlamaCppEngine:
    """GPT-2-family models converted to GGUF, run by llama.cpp; tokens from the Hugging Face tokenizer."""

    name = ENGINE_NAME

    def __init__(self, native: _Native, tokenizer: Any, info: ModelInfo, shape: ModelShape, gguf: Path) -> None:
        self._native: _Native | None = native
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
    ) -> LlamaCppEngine:
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
                estimate(shape, dtype=_ESTIMATE_DTYPE[quant], prompt_tokens=16, max_new_tokens=16),
                weights_loaded=False,
            )
        converted = ensure_gguf(resolved, quant, progress=progress)
        if progress is not None:
            progress(Text("Loading the model into llama.cpp", "Загрузка модели в llama.cpp"), None)
        tokenizer = load_tokenizer(resolved.path)
        n_threads = threads or default_threads()
        try:
            native = _Native(lib, converted.path, n_threads)
        except _LoadFailed as first:
            # A file that passed the quick check but that llama.cpp refuses is damaged: convert it
            # again once, and report the second failure if there is one.
            invalidate(converted.path)
            converted = ensure_gguf(resolved, quant, progress=progress)
            try:
                native = _Native(lib, converted.path, n_threads)
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
        native.ensure_context(_CTX_STEP, shape.n_positions)
        engine.converted_now = not converted.reused
        engine.load_seconds = time.perf_counter() - started
        if progress is not None:
            progress(Text("Ready", "Готово"), 1.0)
        return engine

    def close(self) -> None:
        with self._lock:
            if self._native is not None:
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
        """The model's raw scores for the token after `ids`, from an empty cache (for scoring)."""
        if not ids or len(ids) >= self.info.n_positions:
            raise InvalidInputError(
                Text(
                    f"{len(ids)} token ids: give between 1 and {self.info.n_positions - 1}.",
                    f"{len(ids)} токенов: нужно от 1 до {self.info.n_positions - 1}.",
                )
            )
        with self._lock:
            native = self._native
            if native is None:
                raise EngineError(Text("The engine is closed.", "Движок закрыт."))
            native.ensure_context(len(ids), self.info.n_positions)
            native.clear()
            return native.decode(ids)

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The raw log-probability of each of `ids` after `prompt_ids` (temperature 1, nothing applied).

        The prompt is decoded once and the tokens one by one on the cache, as in a generation (for the lab).
        """
        if not prompt_ids or len(prompt_ids) + len(ids) > self.info.n_positions:
            raise InvalidInputError(
                Text(
                    f"{len(prompt_ids)} + {len(ids)} token ids: give a prompt and at most "
                    f"{self.info.n_positions} tokens in all.",
                    f"{len(prompt_ids)} + {len(ids)} токенов: нужна затравка и не больше "
                    f"{self.info.n_positions} токенов всего.",
                )
            )
        out = np.zeros(len(ids), dtype=np.float32)
        with self._lock:
            native = self._native
            if native is None:
                raise EngineError(Text("The engine is closed.", "Движок закрыт."))
            native.ensure_context(len(prompt_ids) + len(ids), self.info.n_positions)
            native.clear()
            logits = native.decode(prompt_ids)
            for i, token in enumerate(ids):
                if i > 0:
                    logits = native.decode([ids[i - 1]])
                out[i] = log_softmax(logits)[token]
        return out

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        """Yield notices, then tokens as they are generated, then one Finished event."""
        if self._native is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        reason = unsupported_reason(settings)
        if reason is not None:
            raise SettingsError(
                [
                    SettingIssue(
                        "num_beams",
                        Text(
                            f"num_beams = {settings.num_beams}: the llama.cpp engine has no beam search. Use "
                            "num_beams = 1, or the engine 'auto' or 'transformers', which run beam search.",
                            f"num_beams = {settings.num_beams}: в движке llama.cpp нет лучевого поиска. "
                            "Укажите num_beams = 1 или движок «auto» либо «transformers», в них он есть.",
                        ),
                    )
                ]
            )
        started = time.perf_counter()
        # The reference engine's own preparation (truncation, length checks, notices), so both
        # engines cut the same prompts and say the same things about them.
        from gptdesk.engine.hf import TransformersEngine

        prep = TransformersEngine.prepare(cast(Any, self), prompt, settings)
        cost = estimate(
            self.shape,
            dtype=_ESTIMATE_DTYPE[self.info.dtype],
            prompt_tokens=len(prep.ids),
            max_new_tokens=prep.max_new,
            num_return_sequences=1,
            do_sample=settings.do_sample,
        )
        check_affordable(cost, weights_loaded=True)
        yield from prep.notices
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        with self._lock:
            native = self._native
            if native is None:
                raise EngineError(Text("The engine is closed.", "Движок закрыт."))
            yield from self._generate(
                native,
                prep.ids,
                prep.min_new,
                prep.max_new,
                prep.truncated,
                settings,
                seed,
                cancel,
                top_alternatives,
                started,
            )

    def _generate(
        self,
        native: _Native,
        ids: list[int],
        min_new: int,
        max_new: int,
        truncated: int,
        settings: GenerationSettings,
        seed: int,
        cancel: threading.Event | None,
        top_n: int,
        started: float,
    ) -> Iterator[StreamEvent]:
        from gptdesk.engine.hf import _StopMatcher

        eos = self._tokenizer.eos_token_id
        eos_id = int(eos) if eos is not None else None
        pipeline = LogitsPipeline(settings, eos_id, min_new, seed)
        native.ensure_context(len(ids) + max_new, self.info.n_positions)
        gen_start = time.perf_counter()
        timings = Timings(load_prompt=gen_start - started)
        texts: list[str] = []
        reasons: list[FinishReason] = []
        counts: list[int] = []
        all_events: list[list[TokenEvent]] = []
        prompt_logits: np.ndarray[Any, np.dtype[np.float32]] | None = None
        for seq in range(settings.num_return_sequences):
            if cancel is not None and cancel.is_set():
                break
            # Every sequence continues the same prompt: its cache and its logits are computed once.
            if prompt_logits is None:
                native.clear()
                prompt_logits = native.decode(ids)
            else:
                native.clear(keep=len(ids))
            logits = prompt_logits
            pipeline.start(ids)
            decoder = IncrementalDecoder(self._tokenizer)
            stops = _StopMatcher(settings.stop)
            events: list[TokenEvent] = []
            reason: FinishReason = "length"
            generated = 0
            # No torch op runs in this loop: torch's spinning thread pool beside llama.cpp's threads
            # slowed llama.cpp several times over when the app's reference engine had used it.
            while generated < max_new:
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                if generated > 0:
                    logits = native.decode([events[-1].token_id])
                scores = pipeline.process(logits)
                token = pipeline.choose(scores)
                logprobs = log_softmax(scores)
                pipeline.accept(token)
                generated += 1
                if timings.first_token is None:
                    timings.first_token = time.perf_counter() - gen_start
                if token == eos_id:
                    reason = "eos"
                    released = stops.release(decoder.flush(), final=True)
                else:
                    released = stops.release(decoder.push(token))
                if stops.matched:
                    reason = "stop"
                event = TokenEvent(
                    text=released,
                    token_id=token,
                    piece=self.piece(token),
                    logprob=float(logprobs[token]),
                    alternatives=self._alternatives(logprobs, top_n),
                    sequence=seq,
                )
                events.append(event)
                yield event
                if reason in ("eos", "stop"):
                    break
            if reason in ("length", "cancelled"):
                tail = stops.release(decoder.flush(), final=True)
                if tail:  # a held-back tail (a partial stop string or UTF-8 character) at the very end
                    tail_event = TokenEvent(text=tail, token_id=-1, piece="", sequence=seq)
                    events.append(tail_event)
                    yield tail_event
            texts.append("".join(e.text for e in events))
            reasons.append(reason)
            counts.append(generated)
            all_events.append(events)
        timings.generated_tokens = sum(counts)
        timings.total = time.perf_counter() - gen_start
        yield Finished(
            texts=texts,
            finish_reasons=reasons,
            prompt_tokens=len(ids),
            generated_tokens=counts,
            seed=seed,
            timings=timings,
            prompt_truncated_tokens=truncated,
            tokens=all_events,
        )

    def _alternatives(self, logprobs: np.ndarray[Any, np.dtype[np.float32]], top_n: int) -> tuple[Alternative, ...]:
        if top_n <= 0:
            return ()
        top_n = min(top_n, logprobs.shape[0])
        best = np.argpartition(logprobs, -top_n)[-top_n:]
        # Highest first; equal log-probabilities by token id, as torch.topk orders them on a CPU.
        best = best[np.lexsort((best, -logprobs[best]))]
        return tuple(Alternative(int(i), self.piece(int(i)), float(logprobs[i])) for i in best)

    # -- scoring a text (the perplexity tool) ---------------------------------------------------

    def score_tokens(self, ids: list[int], start: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
        """log p(ids[i] | ids[:i]) for i in start .. len(ids) - 1, as the reference engine's method.

        A context of its own (made and freed here, so generation's cache is left alone), fed in
        batches that ask llama.cpp for the logits of every position from start - 1 on.
        """
        n_positions = self.info.n_positions
        if not 1 <= start < len(ids) <= n_positions:
            raise InvalidInputError(
                Text(
                    f"{len(ids)} token ids scored from position {start}: give 2 to {n_positions} ids "
                    "and a start between 1 and their number - 1.",
                    f"{len(ids)} токенов с позиции {start}: нужно от 2 до {n_positions} токенов и "
                    "начало от 1 до их числа - 1.",
                )
            )
        with self._lock:
            native = self._native
            if native is None:
                raise EngineError(Text("The engine is closed.", "Движок закрыт."))
            lib = native.lib
            params = lib.llama_context_default_params()
            params.n_ctx = min(n_positions, -(-len(ids) // _CTX_STEP) * _CTX_STEP)
            params.n_batch = params.n_ubatch = min(_BATCH, params.n_ctx)
            params.n_seq_max = 1
            params.n_threads = params.n_threads_batch = native.threads
            params.no_perf = True
            ctx = lib.llama_init_from_model(native.model, params)
            if not ctx:
                raise EngineError(
                    Text(
                        f"llama.cpp could not make a context of {params.n_ctx} tokens ({_Library.last_errors()}). "
                        "Close other programs or use a shorter --context.",
                        f"llama.cpp не смог создать контекст на {params.n_ctx} токенов ({_Library.last_errors()}). "
                        "Закройте другие программы или уменьшите --context.",
                    )
                )
            n_batch = int(params.n_batch)
            batch = lib.llama_batch_init(n_batch, 0, 1)
            result = np.empty(len(ids) - start, dtype=np.float64)
            try:
                for a in range(0, len(ids), n_batch):
                    chunk = ids[a : a + n_batch]
                    wanted = [start - 1 <= a + j < len(ids) - 1 for j in range(len(chunk))]
                    batch.n_tokens = len(chunk)
                    for j, token in enumerate(chunk):
                        batch.token[j] = token
                        batch.pos[j] = a + j
                        batch.n_seq_id[j] = 1
                        batch.seq_id[j][0] = 0
                        batch.logits[j] = wanted[j]
                    rc = lib.llama_decode(ctx, batch)
                    if rc != 0:
                        raise EngineError(
                            Text(
                                f"llama.cpp failed to decode (code {rc}; {_Library.last_errors()}).",
                                f"llama.cpp не смог выполнить шаг (код {rc}; {_Library.last_errors()}).",
                            )
                        )
                    rows = [j for j in range(len(chunk)) if wanted[j]]
                    if not rows:
                        continue
                    # The logits of the positions that asked for them, in batch order.
                    logits = np.ctypeslib.as_array(lib.llama_get_logits(ctx), shape=(len(rows), native.n_vocab))
                    scores = logits.astype(np.float64)
                    top = scores.max(axis=1, keepdims=True)
                    norm = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
                    targets = np.array([ids[a + j + 1] for j in rows])
                    picked = scores[np.arange(len(rows)), targets] - norm
                    first = a + rows[0] + 1 - start
                    result[first : first + len(rows)] = picked
            finally:
                lib.llama_batch_free(batch)
                lib.llama_free(ctx)
            return result


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


class AutoEngine:
    """The llama.cpp engine, handing generations it cannot run (beam search) to the reference engine.

    The reference engine is loaded the first time it is needed. `info` describes the engine that
    ran the latest generation; each handed-over generation starts with a Notice("engine_fallback").
    """

    name = "auto"

    def __init__(self, fast: LlamaCppEngine, resolved: ResolvedModel, reference_options: dict[str, Any]) -> None:
        self.fast = fast
        self._resolved = resolved
        self._reference_options = reference_options
        self._reference: Any = None
        self._info = fast.info

    @property
    def info(self) -> ModelInfo:
        return self._info

    @info.setter
    def info(self, value: ModelInfo) -> None:
        self._info = value

    @property
    def tokenizer(self) -> Any:
        return self.fast.tokenizer

    def tokenize(self, text: str) -> list[TokenPiece]:
        return self.fast.tokenize(text)

    def piece(self, token_id: int) -> str:
        return self.fast.piece(token_id)

    def reference(self) -> Any:
        """The transformers engine for the same model, loaded on first use."""
        if self._reference is None:
            from gptdesk.engine.hf import TransformersEngine

            self._reference = TransformersEngine.load_resolved(self._resolved, **self._reference_options)
        return self._reference

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        reason = unsupported_reason(settings)
        if reason is None:
            self._info = self.fast.info
            yield from self.fast.stream(prompt, settings, cancel, top_alternatives=top_alternatives)
            return
        yield Notice("engine_fallback", reason)
        reference = self.reference()
        self._info = reference.info
        yield from reference.stream(prompt, settings, cancel, top_alternatives=top_alternatives)

    def close(self) -> None:
        self.fast.close()
        if self._reference is not None:
            self._reference.close()
            self._reference = None

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
    reference_options["device"] = "cpu"
    return AutoEngine(fast, resolved, reference_options)


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
    "unsupported_reason",
]
