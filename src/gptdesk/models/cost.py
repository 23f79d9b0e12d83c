"""What a generation will cost in memory and time, estimated before it runs, and the refusal check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil

from gptdesk.errors import InsufficientMemoryError
from gptdesk.i18n import Lang, Text
from gptdesk.models.catalog import CATALOG
from gptdesk.models.shape import DTYPE_BYTES, ModelShape

#: Bytes per activation and cache element. transformers' DynamicCache stores keys and values in the
#: activations' dtype, which is the weights' dtype for float models; quantized engines dequantize
#: into float32 to compute, so they are counted as float32 (the cautious choice).
ACTIVATION_BYTES: dict[str, float] = {
    "float32": 4.0,
    "bfloat16": 2.0,
    "float16": 2.0,
    "q8_0": 4.0,
    "q4_0": 4.0,
    "q6_K": 4.0,
    "q5_K_M": 4.0,
    "q4_K_M": 4.0,
}

#: Resident memory of a Python process that has imported torch and transformers, before any model:
#: 346 MB measured by bench/memory_estimate.py (torch 2.13 CPU, transformers 5.23, Linux), rounded up.
RUNTIME_OVERHEAD_BYTES = 350_000_000

#: What the first generate() adds whatever the model and settings (lazily imported generation code,
#: the intra-op thread pool's buffers, allocator slack): 17 MB left over in the greedy rows of
#: bench/memory_estimate.py, whose cache is a few MB, rounded up.
GENERATE_WORKSPACE_BYTES = 20_000_000

#: Resident memory of the KV cache over its final size. DynamicCache grows every layer's keys and
#: values by torch.cat at each step, so a copy one token longer is allocated before the old one is
#: freed, and the allocator seldom hands the shorter blocks back to the system: measured 1.3-1.9x
#: (median 1.6, the longest runs lowest) in greedy, sampling and beam search alike (docs/memory.md).
KV_RESIDENT_FACTOR = 1.6

#: Memory bandwidth of a typical laptop; decoding one token streams every weight once.
DEFAULT_BANDWIDTH_GBS = 20.0

#: Sustained matrix-multiply throughput of a typical laptop CPU (a few cores, float32).
DEFAULT_GFLOPS = 50.0

#: Fixed cost of one decoding step in transformers' generate() on a CPU (Python, processors,
#: stopping checks) and per layer (a dozen small kernels). Small models are bound by this, not by
#: bandwidth: measured 16 ms/token for the embedded 7-layer model and ~50 ms for a 12-layer gpt2
#: shape on this project's 2-core machine.
STEP_OVERHEAD_S = 0.005
LAYER_OVERHEAD_S = 0.0015

#: llama.cpp engine (docs/memory.md, "llama.cpp"): resident memory of a process that runs it with
#: the Hugging Face tokenizer and numpy, before the model (no torch is imported on that path).
LLAMA_RUNTIME_BYTES = 150_000_000
#: Tokens per llama_decode call (n_ubatch): the compute buffers are sized for this many.
LLAMA_UBATCH = 256
#: llama.cpp's KV cache holds keys and values in float16, and its context grows in steps of 256 cells.
LLAMA_KV_BYTES = 2
LLAMA_CTX_STEP = 256
#: Throughput of llama.cpp's matrix kernels for the extra rows of a batched step, by weight type,
#: measured on this project's 2-core machine (Large shape, 2 threads: per extra sequence q8_0 adds
#: ~16-22 ms, f16 and q4_0 ~6 ms): q8_0 has no repacked batched kernel on x86, so it gains the least.
LLAMA_BATCH_GFLOPS: dict[str, float] = {"float16": 230.0, "q4_0": 230.0, "q8_0": 85.0, "float32": 120.0}
#: Python work per sequence per step (the numpy logits pipeline over the vocabulary, the beam bookkeeping).
LLAMA_ROW_OVERHEAD_S = 0.001

#: float32 copies of the (rows x vocab) scores alive at once in one decoding step. Greedy and beam
#: search: the float32 logits copy, log-softmax, and the running-score sum (beam) or argmax.
#: Sampling adds the processors' copies (top-k/top-p sort values, their int64 indices, the mask)
#: and the softmax probabilities.
_SCORE_COPIES_SEARCH = 3
_SCORE_COPIES_SAMPLE = 7


@dataclass(frozen=True)
class CostEstimate:
    """Bytes and seconds one generation is expected to take, with the settings it was made for."""

    weights_bytes: int
    kv_cache_bytes: int  # the cache at full length, with the allocator's slack (KV_RESIDENT_FACTOR)
    activation_bytes: int  # prefill activations, logits, per-step scores, generate()'s workspace
    overhead_bytes: int  # the Python + torch + transformers runtime itself
    batch: int  # sequences decoded at once (rows of the expanded input)
    seq_len: int  # prompt + max new tokens
    seconds_per_token: float  # rough: see estimate()
    # What the estimate was made for, so a refusal can compute cheaper settings.
    shape: ModelShape
    dtype: str
    prompt_tokens: int
    max_new_tokens: int
    num_beams: int
    num_return_sequences: int
    do_sample: bool
    engine: str = "transformers"  # whose costs these are: "transformers" or "llamacpp"

    @property
    def generation_bytes(self) -> int:
        """What generating adds on top of a loaded model: the cache and the activations."""
        return self.kv_cache_bytes + self.activation_bytes

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.overhead_bytes + self.generation_bytes

    def required_bytes(self, *, weights_loaded: bool) -> int:
        """Memory still to find: a loaded model has already paid for its weights and the runtime."""
        return self.generation_bytes if weights_loaded else self.total_bytes

    def text(self) -> Text:
        values = {"dtype": self.dtype, "spt": _Seconds(self.seconds_per_token)}
        return Text(
            "≈ {w} weights ({dtype}) + {g} cache and activations + {o} runtime = {t}; ~{spt} s per token (rough)",
            "≈ {w:ru} на веса ({dtype}) + {g:ru} на кэш и активации + {o:ru} на среду = {t:ru}; "
            "~{spt:ru} с на токен (грубо)",
        ).format(**values, **self._sizes())

    def describe(self, lang: Lang | None = None) -> str:
        return self.text().get(lang)

    def _sizes(self) -> dict[str, _Bilingual]:
        return {
            "w": _Bilingual(self.weights_bytes),
            "g": _Bilingual(self.generation_bytes),
            "o": _Bilingual(self.overhead_bytes),
            "t": _Bilingual(self.total_bytes),
        }


def estimate(
    shape: ModelShape,
    *,
    dtype: str = "float32",
    prompt_tokens: int,
    max_new_tokens: int,
    num_beams: int = 1,
    num_return_sequences: int = 1,
    do_sample: bool = True,
    bandwidth_gbs: float | None = None,
    gflops: float | None = None,
    overhead_bytes: int | None = None,
    engine: str = "transformers",
    kept_tokens: int = 0,
) -> CostEstimate:
    """Estimate the peak memory and the speed of one generate() call on the CPU.

    `kept_tokens`: on llama.cpp, cells the sequence store keeps from earlier texts beside this request
    (engine.store: up to --cache-tokens, one full context by default); they share the cache buffer.

    Memory follows what transformers 5 generate() does with a GPT-2 model (see docs/memory.md for
    the derivation and the measurements); speed is rough: decoding a token reads every weight once
    (memory-bound) or does 2 FLOPs per parameter per row (compute-bound), whichever is slower.
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}")
    if prompt_tokens < 0 or max_new_tokens < 0:
        raise ValueError("prompt_tokens and max_new_tokens must not be negative")
    if num_beams < 1 or num_return_sequences < 1:
        raise ValueError("num_beams and num_return_sequences must be at least 1")

    if engine == "llamacpp":
        return _estimate_llamacpp(
            shape,
            dtype=dtype,
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            do_sample=do_sample,
            bandwidth_gbs=bandwidth_gbs,
            overhead_bytes=overhead_bytes,
            kept_tokens=kept_tokens,
        )
    d, vocab = shape.n_embd, shape.vocab_size
    act = ACTIVATION_BYTES[dtype]
    # generate() repeats the prompt max(num_beams, num_return_sequences) times before the prefill
    # (_expand_inputs_for_generation), whatever the mode: beam search, beam sampling, sampling.
    rows = max(num_beams, num_return_sequences)
    seq_len = prompt_tokens + max_new_tokens

    weights = shape.param_count * DTYPE_BYTES[dtype]

    # Beam search's reorder_cache() index_selects one layer at a time, so its copy is transient;
    # the measurements show no surplus over sampling with as many rows.
    kv = kv_cache_size(shape, rows=rows, seq_len=seq_len, dtype=dtype) * KV_RESIDENT_FACTOR

    # Prefill runs every row over the whole prompt, one layer at a time; the widest moment is the
    # MLP (residual, layer norm, c_fc output and its GELU) next to the attention scores.
    prefill_tokens = rows * prompt_tokens
    prefill = prefill_tokens * (2 * d + 2 * shape.inner) * act
    prefill += rows * shape.n_head * prompt_tokens * prompt_tokens * act
    # generate() passes logits_to_keep=1, so the LM head only scores the last position.
    logits = rows * vocab * act
    copies = _SCORE_COPIES_SAMPLE if do_sample else _SCORE_COPIES_SEARCH
    scores = rows * vocab * 4 * copies
    activations = prefill + logits + scores + GENERATE_WORKSPACE_BYTES

    bandwidth = (bandwidth_gbs or DEFAULT_BANDWIDTH_GBS) * 1e9
    flops = (gflops or DEFAULT_GFLOPS) * 1e9
    overhead_s = STEP_OVERHEAD_S + LAYER_OVERHEAD_S * shape.n_layer
    seconds = overhead_s + max(weights / bandwidth, 2 * shape.param_count * rows / flops)

    return CostEstimate(
        weights_bytes=int(weights),
        kv_cache_bytes=int(kv),
        activation_bytes=int(activations),
        overhead_bytes=RUNTIME_OVERHEAD_BYTES if overhead_bytes is None else overhead_bytes,
        batch=rows,
        seq_len=seq_len,
        seconds_per_token=seconds,
        shape=shape,
        dtype=dtype,
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        do_sample=do_sample,
    )


def _estimate_llamacpp(
    shape: ModelShape,
    *,
    dtype: str,
    prompt_tokens: int,
    max_new_tokens: int,
    num_beams: int,
    num_return_sequences: int,
    do_sample: bool,
    bandwidth_gbs: float | None,
    overhead_bytes: int | None,
    kept_tokens: int = 0,
) -> CostEstimate:
    """The llama.cpp engine's costs: what it allocates, not what transformers would.

    Weights are the GGUF file at its type (mapped and all read). The cache is one unified buffer of
    float16 keys and values, allocated whole when the context is made: the prompt's cells once
    (every sequence shares them) plus one cell per sequence per new token, rounded up to 256 cells.
    The compute buffers hold one micro-batch of 256 tokens through a layer, its attention scores
    against the whole cache, and the output logits of every sequence. A step costs one read of the
    weights plus, for every sequence past the first, its share of the matrix kernels.
    """
    d, vocab = shape.n_embd, shape.vocab_size
    rows = num_beams if num_beams > 1 else num_return_sequences
    seq_len = prompt_tokens + max_new_tokens
    weights = shape.param_count * DTYPE_BYTES[dtype]
    cells = prompt_tokens + rows * max_new_tokens + max(0, kept_tokens)
    cells = -(-max(cells, 1) // LLAMA_CTX_STEP) * LLAMA_CTX_STEP
    kv = 2 * shape.n_layer * cells * d * LLAMA_KV_BYTES
    ubatch = min(LLAMA_UBATCH, cells)
    compute = ubatch * (6 * d + 2 * shape.inner) * 4 + ubatch * cells * shape.n_head * 4
    outputs = rows * vocab * 4
    # numpy's copies of the scores per sequence (log-softmax, processed, warped), plus a beam search's
    # candidates over every beam's vocabulary at once.
    scores = rows * vocab * 4 * (6 if num_beams > 1 else 3)
    activations = compute + 2 * outputs + scores
    bandwidth = (bandwidth_gbs or DEFAULT_BANDWIDTH_GBS) * 1e9
    gflops = LLAMA_BATCH_GFLOPS.get(dtype, LLAMA_BATCH_GFLOPS["q8_0"]) * 1e9
    seconds = weights / bandwidth + (rows - 1) * 2 * shape.param_count / gflops + rows * LLAMA_ROW_OVERHEAD_S
    return CostEstimate(
        weights_bytes=int(weights),
        kv_cache_bytes=int(kv),
        activation_bytes=int(activations),
        overhead_bytes=LLAMA_RUNTIME_BYTES if overhead_bytes is None else overhead_bytes,
        batch=rows,
        seq_len=seq_len,
        seconds_per_token=seconds,
        shape=shape,
        dtype=dtype,
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        do_sample=do_sample,
        engine="llamacpp",
    )


def kv_cache_size(shape: ModelShape, *, rows: int, seq_len: int, dtype: str = "float32") -> int:
    """Bytes of keys and values, n_embd wide, for every layer, row and position."""
    return int(2 * shape.n_layer * rows * seq_len * shape.n_embd * ACTIVATION_BYTES[dtype])


def available_memory() -> int:
    """Bytes the system can give without swapping (psutil's 'available')."""
    return int(psutil.virtual_memory().available)


def fits_in_memory(
    cost: CostEstimate,
    *,
    weights_loaded: bool,
    available: int | None = None,
    margin: float = 0.9,
) -> bool:
    """True when the estimate fits in `margin` of the available memory."""
    free = available_memory() if available is None else available
    return cost.required_bytes(weights_loaded=weights_loaded) <= free * margin


def check_affordable(
    cost: CostEstimate,
    *,
    weights_loaded: bool,
    available: int | None = None,
    margin: float = 0.9,
) -> None:
    """Raise InsufficientMemoryError, with cheaper settings that would fit, when this cannot fit."""
    free = available_memory() if available is None else available
    budget = free * margin
    need = cost.required_bytes(weights_loaded=weights_loaded)
    if need <= budget:
        return

    what = (
        Text("the cache and activations", "кэш и активации")
        if weights_loaded
        else Text("the model, the runtime, the cache and activations", "модель, среда, кэш и активации")
    )
    head = Text(
        "Not enough memory for this generation: {what} need ≈ {need}, but only {free} is "
        "available ({pct}% of it may be used). Estimate: {desc}.",
        "Не хватает памяти для этой генерации: {what:ru} требуют ≈ {need:ru}, а доступно только "
        "{free:ru} (использовать можно {pct}%). Оценка: {desc:ru}.",
    ).format(
        need=_Bilingual(need),
        free=_Bilingual(free),
        pct=round(margin * 100),
        what=_BilingualText(what),
        desc=_BilingualText(cost.text()),
    )
    options = _suggestions(cost, weights_loaded=weights_loaded, budget=budget)
    if options:
        joined = Text(
            "; or ".join(o.en for o in options),
            "; или ".join(o.ru for o in options),
        )
        tail = Text(" Try: {opts}.", " Попробуйте: {opts:ru}.").format(opts=_BilingualText(joined))
    else:
        short = need - budget
        tail = Text(
            " No setting of this generation fits: free at least {short} (close other programs) "
            "or choose a smaller model.",
            " Никакие настройки этой генерации не помещаются: освободите не меньше {short:ru} "
            "(закройте другие программы) или выберите модель поменьше.",
        ).format(short=_Bilingual(short))
    raise InsufficientMemoryError(head + tail)


def format_bytes(n: int | float, lang: Lang = "en") -> str:
    """A size for people, in decimal units: "340 MB", "1.2 GB" ("1,2 ГБ" in Russian)."""
    units = ("B", "kB", "MB", "GB", "TB") if lang == "en" else ("Б", "кБ", "МБ", "ГБ", "ТБ")
    value = float(n)
    index = 0
    while abs(value) >= 1000 and index < len(units) - 1:
        value /= 1000
        index += 1
    if index == 0:
        text = str(round(value))
    elif abs(value) < 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.0f}"
    if lang == "ru":
        text = text.replace(".", ",")
    return f"{text} {units[index]}"


class _Bilingual:
    """A byte count that formats itself in the language of the template it lands in."""

    def __init__(self, n: int | float) -> None:
        self.n = n

    def __format__(self, spec: str) -> str:
        return format_bytes(self.n, "ru" if spec == "ru" else "en")


class _BilingualText:
    def __init__(self, text: Text) -> None:
        self.text = text

    def __format__(self, spec: str) -> str:
        return self.text.get("ru" if spec == "ru" else "en")


class _Seconds:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __format__(self, spec: str) -> str:
        text = f"{self.seconds:.2g}" if self.seconds < 10 else f"{self.seconds:.0f}"
        return text.replace(".", ",") if spec == "ru" else text


def _suggestions(cost: CostEstimate, *, weights_loaded: bool, budget: float) -> list[Text]:
    """Cheaper variants of the same generation that fit in `budget`, best first."""

    def need(candidate: CostEstimate) -> int:
        return candidate.required_bytes(weights_loaded=weights_loaded)

    def redo(**changes: Any) -> CostEstimate:
        args: dict[str, Any] = {
            "dtype": cost.dtype,
            "prompt_tokens": cost.prompt_tokens,
            "max_new_tokens": cost.max_new_tokens,
            "num_beams": cost.num_beams,
            "num_return_sequences": cost.num_return_sequences,
            "do_sample": cost.do_sample,
            "overhead_bytes": cost.overhead_bytes,
            "engine": cost.engine,
        }
        args.update(changes)
        return estimate(cost.shape, **args)

    options: list[Text] = []
    if cost.num_beams > 1:
        # The widest beam that fits; returned sequences are picked from the beams, so they shrink
        # along with them.
        for beams in range(cost.num_beams - 1, 0, -1):
            candidate = redo(num_beams=beams, num_return_sequences=min(beams, cost.num_return_sequences))
            if need(candidate) <= budget:
                options.append(
                    Text("num_beams={beams} (≈ {size})", "num_beams={beams} (≈ {size:ru})").format(
                        beams=beams, size=_Bilingual(need(candidate))
                    )
                )
                break
    elif cost.num_return_sequences > 1:
        for count in range(cost.num_return_sequences - 1, 0, -1):
            candidate = redo(num_return_sequences=count)
            if need(candidate) <= budget:
                options.append(
                    Text(
                        "num_return_sequences={n} (≈ {size})",
                        "num_return_sequences={n} (≈ {size:ru})",
                    ).format(n=count, size=_Bilingual(need(candidate)))
                )
                break

    # Memory grows linearly with the new tokens, so bisect for the longest output that fits.
    low, high = 0, cost.max_new_tokens - 1
    if high >= 1 and need(redo(max_new_tokens=1)) <= budget:
        low = 1
        while low < high:
            mid = (low + high + 1) // 2
            if need(redo(max_new_tokens=mid)) <= budget:
                low = mid
            else:
                high = mid - 1
        fewer = redo(max_new_tokens=low)
        options.append(
            Text(
                "max_new_tokens={n} (≈ {size})",
                "max_new_tokens={n} (≈ {size:ru})",
            ).format(n=low, size=_Bilingual(need(fewer)))
        )

    if ACTIVATION_BYTES[cost.dtype] > 2 or DTYPE_BYTES[cost.dtype] > 2:
        half = redo(dtype="bfloat16")
        if need(half) <= budget and need(half) < need(cost):
            options.append(
                Text(
                    "load the model in bfloat16 (≈ {size})",
                    "загрузите модель в bfloat16 (≈ {size:ru})",
                ).format(size=_Bilingual(need(half)))
            )
    if not weights_loaded:
        # The model is not loaded yet, so a quantized engine or a smaller model are options too.
        if DTYPE_BYTES[cost.dtype] > DTYPE_BYTES["q8_0"]:
            for quant in ("q8_0", "q4_0"):
                quantized = redo(dtype=quant)
                if need(quantized) <= budget:
                    options.append(
                        Text(
                            "the quantized engine (llamacpp, {q}: ≈ {size})",
                            "квантованный движок (llamacpp, {q}: ≈ {size:ru})",
                        ).format(q=quant, size=_Bilingual(need(quantized)))
                    )
                    break
        smaller = _smaller_model(cost, budget)
        if smaller is not None:
            options.append(
                Text("a smaller model: {name} (≈ {size})", "модель поменьше: {name} (≈ {size:ru})").format(
                    name=smaller[0], size=_Bilingual(smaller[1])
                )
            )
    return options


def _smaller_model(cost: CostEstimate, budget: float) -> tuple[str, int] | None:
    """The biggest catalog model smaller than this one that fits `budget` with the same settings."""
    best: tuple[int, str, int] | None = None
    for entry in CATALOG:
        params = entry.shape.param_count
        if params >= cost.shape.param_count:
            continue
        candidate = estimate(
            entry.shape,
            dtype=cost.dtype,
            prompt_tokens=cost.prompt_tokens,
            max_new_tokens=cost.max_new_tokens,
            num_beams=cost.num_beams,
            num_return_sequences=cost.num_return_sequences,
            do_sample=cost.do_sample,
            overhead_bytes=cost.overhead_bytes,
        )
        total = candidate.total_bytes
        if total <= budget and (best is None or params > best[0]):
            best = (params, entry.short, total)
    return (best[1], best[2]) if best is not None else None


__all__ = [
    "ACTIVATION_BYTES",
    "DEFAULT_BANDWIDTH_GBS",
    "DEFAULT_GFLOPS",
    "DTYPE_BYTES",
    "GENERATE_WORKSPACE_BYTES",
    "KV_RESIDENT_FACTOR",
    "RUNTIME_OVERHEAD_BYTES",
    "CostEstimate",
    "ModelShape",
    "available_memory",
    "check_affordable",
    "estimate",
    "fits_in_memory",
    "format_bytes",
    "kv_cache_size",
]
