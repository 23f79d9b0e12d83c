"""engine="auto": llama.cpp on a CPU (a second, batch quantization for many sequences), transformers otherwise."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gptdesk.engine.base import Capabilities, Engine, ModelInfo, Notice, StreamEvent, TokenPiece
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.errors import CacheFolderError, UnsupportedModelError
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.cost import CostEstimate
from gptdesk.models.gguf.library import is_available
from gptdesk.models.gguf.sizes import DEFAULT_QUANT
from gptdesk.models.locate import ResolvedModel
from gptdesk.models.obtain import obtain
from gptdesk.models.shape import ModelShape
from gptdesk.settings.generation import GenerationSettings

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

    def _estimating(self, settings: GenerationSettings) -> tuple[LlamaCppEngine, str | None]:
        """The engine that would run these settings, and the GGUF type to estimate on (None: its own)."""
        rows = settings.num_beams if settings.num_beams > 1 else settings.num_return_sequences
        if self.batch_quant is None or rows < BATCH_ROWS:
            return self.fast, None
        if self._batched is not None:
            return self._batched, None
        return self.fast, self.batch_quant  # estimated on the batch quantization without loading it

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate:
        engine, dtype = self._estimating(settings)
        return engine.check(prompt, settings, dtype=dtype)

    def cost(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate:
        engine, dtype = self._estimating(settings)
        return engine.cost(prompt_tokens, settings, dtype=dtype)

    def tokenize(self, text: str) -> list[TokenPiece]:
        return self.fast.tokenize(text)

    def piece(self, token_id: int) -> str:
        return self.fast.piece(token_id)

    @property
    def kept_tokens(self) -> int:
        return self.fast.kept_tokens

    def next_logits(self, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return self.fast.next_logits(ids)

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return self.fast.token_logprobs(prompt_ids, ids)

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
    adapter: str | None = None,
    cache_tokens: int | None = None,
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
        "adapter": adapter,
    }
    resolved = obtain(name, allow_download=allow_download)
    wants_torch_dtype = dtype in ("float32", "bfloat16")
    if not is_available() or wants_torch_dtype or (device != "cpu" and _cuda_present(device, pick_device)):
        return TransformersEngine.load_resolved(resolved, **reference_options)

    try:
        fast = LlamaCppEngine.load_resolved(
            resolved,
            quant=quant,
            threads=threads,
            dtype=dtype,
            progress=progress,
            check_memory=check_memory,
            adapter=adapter,
            cache_tokens=cache_tokens,
        )
    except UnsupportedModelError:
        return TransformersEngine.load_resolved(resolved, **reference_options)
    except CacheFolderError as exc:
        # The fast engine needs its converted copy in the cache; the reference engine reads the
        # model's own folder, so an unusable cache costs speed, not the generation.
        return _reference_saying_why(resolved, reference_options, exc.text)
    # The batch quantization only when the caller left the type to the engine.
    batch_quant = BATCH_QUANT if dtype == "auto" and quant == DEFAULT_QUANT else None
    options = {"threads": threads, "check_memory": check_memory, "adapter": adapter, "cache_tokens": cache_tokens}
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
