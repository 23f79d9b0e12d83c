"""The fast CPU engine: quantized GGUF models on llama.cpp, with the reference engine's semantics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gptdesk.engine import drivers
from gptdesk.engine.base import Capabilities, ModelInfo, StreamEvent, TokenPiece
from gptdesk.engine.core import Clock, PreparedPrompt, choose_seed, fitted_prompt, prepare_prompt
from gptdesk.engine.llamacpp.backend import LlamaBackend
from gptdesk.engine.llamacpp.native import (
    LoadFailed,
    NativeModel,
    cache_tokens_from_environment,
    check_cache_tokens,
    default_threads,
    flash_attention_from_environment,
)
from gptdesk.engine.store import SequenceStore
from gptdesk.engine.tokens import piece_text, tokenize
from gptdesk.errors import DamagedAdapterError, EngineError, InvalidInputError, ModelCorruptError
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.adapters import Adapter, check_base, load_adapter
from gptdesk.models.cost import CostEstimate, check_affordable, estimate
from gptdesk.models.gguf.cache import invalidate
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.library import Library
from gptdesk.models.gguf.lora import ensure_lora_gguf
from gptdesk.models.gguf.sizes import DEFAULT_QUANT, QUANT_TYPES, check_quant
from gptdesk.models.locate import ResolvedModel, read_config
from gptdesk.models.obtain import obtain
from gptdesk.models.shape import ModelShape
from gptdesk.models.tokenizer import load_tokenizer
from gptdesk.settings.generation import GenerationSettings

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


_REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})


def _reads_whole(manifest: dict[str, Any]) -> bool:
    """Whether to read a file into memory rather than map it: when llama.cpp repacks its matrices.

    The mapped pages the repacked copy was made from stay resident beside it: ruGPT-3 Large held
    930 MB in q4_K_M and 1.0 GB in q4_0 mapped, 666 and 634 MB read (`gptdesk bench --configs
    q4_0,q4_K_M`). Files with nothing to repack are mapped: the same memory, and a faster load
    (q8_0: 1.3 s against 2.8 s), since the pages arrive as the first step reads them.
    """
    return bool(_REPACKED_TYPES & set(manifest.get("tensor_types") or ()))


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


def _load_lora(lib: Any, native: NativeModel, resolved: ResolvedModel, name: str) -> tuple[Adapter, Any]:
    """The stored adapter `name`, checked against the model, and llama.cpp's handle on its GGUF file.

    The handle belongs to the model: llama.cpp frees it with the model.
    """
    applied = load_adapter(name)
    check_base(applied, resolved.model_id, resolved.revision)
    path = ensure_lora_gguf(applied.path, applied.manifest.alpha, applied.digest)
    Library.recent_log.clear()
    handle = lib.llama_adapter_lora_init(native.model, str(path).encode("utf-8"))
    if not handle:  # a damaged GGUF copy: write it again from the peft files once
        path = ensure_lora_gguf(applied.path, applied.manifest.alpha, applied.digest, rewrite=True)
        Library.recent_log.clear()
        handle = lib.llama_adapter_lora_init(native.model, str(path).encode("utf-8"))
    if not handle:
        native.close()
        raise DamagedAdapterError(
            Text(
                f"llama.cpp cannot load adapter '{name}' ({Library.last_errors() or path}). Remove it with "
                f"`gptdesk adapters rm {name}` and tune it again, or use --engine transformers.",
                f"llama.cpp не может загрузить адаптер «{name}» ({Library.last_errors() or path}). Удалите его "
                f"(`gptdesk adapters rm {name}`) и обучите заново или используйте --engine transformers.",
            )
        )
    return applied, handle


# -- the engine ---------------------------------------------------------------------------------


class LlamaCppEngine:
    """GPT-2-family models converted to GGUF, run by llama.cpp; tokens from the Hugging Face tokenizer."""

    name = ENGINE_NAME

    def __init__(
        self,
        native: NativeModel,
        tokenizer: Any,
        info: ModelInfo,
        shape: ModelShape,
        gguf: Path,
        *,
        cache_tokens: int | None = None,
        lora: Any = None,
        flash_attention: bool | None = None,
    ) -> None:
        """`cache_tokens`: the most cells kept between calls for prefix reuse (None: one full context);
        `lora`: a LoRA adapter loaded for `native`'s model, applied to every context; `flash_attention`:
        llama.cpp's attention kernel on or off (None: llama.cpp's choice)."""
        self._native: NativeModel | None = native
        self._backend = LlamaBackend(
            native.lib,
            native.model,
            native.n_vocab,
            native.threads,
            Library.last_errors,
            lora=lora,
            flash_attention=flash_attention,
        )
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
        adapter: str | None = None,
        cache_tokens: int | None = None,
    ) -> LlamaCppEngine:
        """Load a model (None: the embedded one), converting it to GGUF on first use."""
        resolved = obtain(name, allow_download=allow_download)
        return cls.load_resolved(
            resolved,
            quant=quant,
            threads=threads,
            device=device,
            dtype=dtype,
            progress=progress,
            check_memory=check_memory,
            adapter=adapter,
            cache_tokens=cache_tokens,
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
        adapter: str | None = None,
        cache_tokens: int | None = None,
    ) -> LlamaCppEngine:
        """`tokenizer`: one already loaded for the same folder (a second copy of a model shares it);
        `adapter`: a LoRA adapter from `gptdesk tune`, written once as a GGUF adapter and applied at run time;
        `cache_tokens`: the most cells kept between calls for prefix reuse (None: GPTDESK_CACHE_TOKENS,
        else one full context; 0 keeps nothing)."""
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
        cache_tokens = cache_tokens_from_environment() if cache_tokens is None else check_cache_tokens(cache_tokens)
        flash_attention = flash_attention_from_environment()
        lib = Library.get()
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
            native = NativeModel(lib, converted.path, n_threads, read_whole=_reads_whole(converted.manifest))
        except LoadFailed as first:
            # A file that passed the quick check but that llama.cpp refuses is damaged: convert it
            # again once, and report the second failure if there is one.
            invalidate(converted.path)
            converted = ensure_gguf(resolved, quant, progress=progress)
            try:
                native = NativeModel(lib, converted.path, n_threads, read_whole=_reads_whole(converted.manifest))
            except LoadFailed as second:
                raise ModelCorruptError(
                    Text(
                        f"llama.cpp cannot load the converted model {converted.path} ({second}; before "
                        f"reconverting: {first}). Use --engine transformers, and report this with the model's name.",
                        f"llama.cpp не может загрузить преобразованную модель {converted.path} ({second}; до "
                        f"повторного преобразования: {first}). Используйте --engine transformers и сообщите "
                        "об ошибке, указав модель.",
                    )
                ) from second
        applied, lora = _load_lora(lib, native, resolved, adapter) if adapter is not None else (None, None)
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
            adapter=applied.name if applied else None,
            adapter_digest=applied.digest if applied else None,
        )
        engine = cls(
            native,
            tokenizer,
            info,
            shape,
            converted.path,
            cache_tokens=cache_tokens,
            lora=lora,
            flash_attention=flash_attention,
        )
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

    @property
    def kept_tokens(self) -> int:
        """Cells the sequence store keeps from earlier texts (counted by the memory estimate)."""
        return self.store.idle_cells

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

    def _open(self) -> NativeModel:
        if self._native is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        return self._native

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(local=True, beam_search=True, batched=True, logprobs=True, load_options=True)

    def check(self, prompt: str, settings: GenerationSettings, *, dtype: str | None = None) -> CostEstimate:
        """The cost of this generation on llama.cpp (on another GGUF type if `dtype` is given); raises when
        it cannot run (see Engine.check)."""
        if self._tokenizer is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        prep = prepare_prompt(self._tokenizer, self.info.n_positions, prompt, settings)
        return self._check(prep, settings, dtype=dtype)

    def _check(self, prep: PreparedPrompt, settings: GenerationSettings, *, dtype: str | None = None) -> CostEstimate:
        cost = self._estimate(len(prep.ids), prep.max_new, settings, dtype)
        check_affordable(cost, weights_loaded=True)
        return cost

    def cost(self, prompt_tokens: int, settings: GenerationSettings, *, dtype: str | None = None) -> CostEstimate:
        max_new = settings.resolve_lengths(prompt_tokens)[1]
        kept = fitted_prompt(prompt_tokens, max_new, self.info.n_positions)
        return self._estimate(kept, max_new, settings, dtype)

    def _estimate(
        self, prompt_tokens: int, max_new: int, settings: GenerationSettings, dtype: str | None
    ) -> CostEstimate:
        return estimate(
            self.shape,
            dtype=_ESTIMATE_DTYPE[dtype or self.info.dtype],
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new,
            num_beams=settings.num_beams,
            num_return_sequences=settings.num_return_sequences,
            do_sample=settings.do_sample,
            engine=ENGINE_NAME,
            kept_tokens=self.kept_tokens,  # kept from earlier texts, beside this request
        )

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
