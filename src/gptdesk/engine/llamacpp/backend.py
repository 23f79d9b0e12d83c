"""The sequence store's backend on llama.cpp: one context with a unified KV cache, fed through
llama-cpp-python's low-level API (llama_batch, llama_decode, llama_get_memory with
llama_memory_seq_cp and llama_memory_seq_rm)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gptdesk.errors import EngineError
from gptdesk.i18n import Text

#: Tokens per llama_decode call (and the size of the compute buffers).
BATCH = 256
#: The most sequences one context holds (llama.cpp's LLAMA_MAX_SEQ).
MAX_SEQ = 256


class LlamaBackend:
    """A context over a loaded llama.cpp model; made by `resize`, freed by `close`.

    `lib`: the llama_cpp module; `model`: a llama_model pointer the caller owns; `errors`: the
    latest lines of llama.cpp's log, for messages.
    """

    def __init__(
        self, lib: Any, model: Any, n_vocab: int, threads: int, errors: Callable[[], str], lora: Any = None
    ) -> None:
        """`lora`: a llama_adapter_lora pointer set, with scale 1 (its alpha / rank applied by llama.cpp), on
        every context this backend makes."""
        self.lib = lib
        self.lora = lora
        self.model = model
        self.n_vocab = n_vocab
        self.threads = threads
        self._errors = errors
        self.ctx: Any = None
        self._n_ctx = 0
        self._n_seq = 0
        self.batch_size = BATCH
        self._batch: Any = None

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_seq(self) -> int:
        return self._n_seq

    def resize(self, n_ctx: int, n_seq: int) -> None:
        lib = self.lib
        self.close()
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = min(BATCH, n_ctx)
        params.n_ubatch = min(BATCH, n_ctx)
        params.n_seq_max = min(n_seq, MAX_SEQ)
        params.kv_unified = True  # sequences share their common cells
        params.n_threads = self.threads
        params.n_threads_batch = self.threads
        params.no_perf = True
        ctx = lib.llama_init_from_model(self.model, params)
        if not ctx:
            raise EngineError(
                Text(
                    f"llama.cpp could not make a context of {n_ctx} tokens ({self._errors()}). "
                    "Close other programs, or use fewer new tokens, beams or variants.",
                    f"llama.cpp не смог создать контекст на {n_ctx} токенов ({self._errors()}). "
                    "Закройте другие программы или уменьшите число новых токенов, лучей или вариантов.",
                )
            )
        self.ctx = ctx
        if self.lora is not None:
            adapters = (lib.llama_adapter_lora_p_ctypes * 1)(self.lora)
            scales = (ctypes.c_float * 1)(1.0)
            if lib.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
                self.close()
                raise EngineError(
                    Text(
                        f"llama.cpp could not apply the LoRA adapter to its context ({self._errors()}). Use "
                        "--engine transformers with this adapter.",
                        f"llama.cpp не смог применить LoRA-адаптер к контексту ({self._errors()}). "
                        "Используйте с этим адаптером --engine transformers.",
                    )
                )
        self._n_ctx = int(lib.llama_n_ctx(ctx))
        self._n_seq = int(params.n_seq_max)
        self.batch_size = int(params.n_batch)
        self._batch = lib.llama_batch_init(self.batch_size, 0, 1)

    def decode(self, batch: Sequence[tuple[int, int, int, bool]]) -> np.ndarray[Any, np.dtype[np.float32]]:
        lib = self.lib
        native = self._batch
        out: list[np.ndarray[Any, np.dtype[np.float32]]] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            wanted = 0
            for i, (token, pos, seq, want) in enumerate(chunk):
                native.token[i] = token
                native.pos[i] = pos
                native.n_seq_id[i] = 1
                native.seq_id[i][0] = seq
                native.logits[i] = 1 if want else 0
                wanted += 1 if want else 0
            native.n_tokens = len(chunk)
            rc = lib.llama_decode(self.ctx, native)
            if rc != 0:
                raise EngineError(
                    Text(
                        f"llama.cpp failed to decode (code {rc}; {self._errors()}). Use fewer new "
                        "tokens, beams or variants.",
                        f"llama.cpp не смог выполнить шаг (код {rc}; {self._errors()}). Уменьшите "
                        "число новых токенов, лучей или вариантов.",
                    )
                )
            if wanted:
                # The logits of the entries that asked for them, in batch order.
                rows = np.ctypeslib.as_array(lib.llama_get_logits(self.ctx), shape=(wanted, self.n_vocab))
                out.append(rows.copy())
        if not out:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        return np.concatenate(out) if len(out) > 1 else out[0]

    @property
    def _memory(self) -> Any:
        return self.lib.llama_get_memory(self.ctx)

    def copy(self, src: int, dst: int) -> None:
        self.lib.llama_memory_seq_cp(self._memory, src, dst, -1, -1)

    def remove(self, seq: int, start: int) -> None:
        self.lib.llama_memory_seq_rm(self._memory, seq, start, -1)

    def close(self) -> None:
        """Free the context (the model stays the caller's)."""
        if self._batch is not None:
            self.lib.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        self._n_ctx = 0
        self._n_seq = 0
