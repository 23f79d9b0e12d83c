"""The sequence store's backend on llama.cpp: one context with a unified KV cache, fed through
llama-cpp-python's low-level API (llama_batch, llama_decode, llama_get_memory with
llama_memory_seq_cp and llama_memory_seq_rm)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path
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
        self,
        lib: Any,
        model: Any,
        n_vocab: int,
        threads: int,
        errors: Callable[[], str],
        lora: Any = None,
        *,
        flash_attention: bool | None = None,
    ) -> None:
        """`lora`: a llama_adapter_lora pointer set, with scale 1 (its alpha / rank applied by llama.cpp), on
        every context this backend makes; `flash_attention`: llama.cpp's attention kernel on or off (None: its
        choice)."""
        self.lib = lib
        self.flash_attention = flash_attention
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
        if self.flash_attention is not None:
            params.flash_attn_type = (
                lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attention else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
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
                raise self._decode_failed(int(rc), chunk)
            if wanted:
                # The logits of the entries that asked for them, in batch order.
                rows = np.ctypeslib.as_array(lib.llama_get_logits(self.ctx), shape=(wanted, self.n_vocab))
                out.append(rows.copy())
        if not out:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        return np.concatenate(out) if len(out) > 1 else out[0]

    def _decode_failed(self, rc: int, chunk: Sequence[tuple[int, int, int, bool]]) -> EngineError:
        """llama_decode's codes: 1 is no room in the cache (the user can ask for less); 2 is aborted; any other
        (-1: an invalid batch) is GPT Desk's bug, and the batch goes to a log file the message names."""
        errors = self._errors()
        said = f"; {errors}" if errors else ""
        if rc == 1:
            return EngineError(
                Text(
                    f"llama.cpp found no room in its cache for this step (code 1{said}). Use fewer new tokens, "
                    "beams or variants.",
                    f"llama.cpp не нашёл места в кэше для этого шага (код 1{said}). Уменьшите число новых "
                    "токенов, лучей или вариантов.",
                )
            )
        path = _write_decode_log(rc, chunk, self._n_ctx, self._n_seq, errors)
        where = Text(f" The batch is in {path}.", f" Пакет записан в {path}.") if path else Text("", "")
        return EngineError(
            Text(
                f"Internal error: llama.cpp refused a batch of {len(chunk)} tokens (code {rc}{said}).",
                f"Внутренняя ошибка: llama.cpp отклонил пакет из {len(chunk)} токенов (код {rc}{said}).",
            )
            + where
            + Text(" Please report it with that file.", " Сообщите о ней, приложив этот файл.")
        )

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


def _write_decode_log(
    rc: int, chunk: Sequence[tuple[int, int, int, bool]], n_ctx: int, n_seq: int, errors: str
) -> Path | None:
    """The failed batch as text under the cache's logs/ folder (None when it cannot be written)."""
    import time

    from gptdesk.models.gguf.cache import cache_dir

    folder = cache_dir() / "logs"
    path = folder / f"llamacpp-decode-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    lines = [
        f"llama_decode returned {rc}; context {n_ctx} cells, {n_seq} sequence ids",
        f"llama.cpp warnings and errors: {errors or '-'}",
        "token\tposition\tsequence\tlogits",
        *(f"{t}\t{p}\t{s}\t{int(w)}" for t, p, s, w in chunk),
    ]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError:
        return None
    return path
