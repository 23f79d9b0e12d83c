"""The bench's quality column: the embedded model's bits per character on held-out prose, per GGUF type."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from gptdesk.engine.base import LocalEngine
from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text

#: The types measured, best first. "f32" is the reference engine in float32 until the llama.cpp
#: engine offers f32 itself; then it is llama.cpp's f32 (the same weights, the same figure).
QUALITY_TYPES = ("f32", "f16", "q8_0", "q6_K", "q5_K_M", "q4_K_M", "q4_0")
#: The bench's speed row of each type (bench.CONFIGS keys).
SPEED_KEY = {
    "f32": "fp32",
    "f16": "f16",
    "q8_0": "q8_0",
    "q6_K": "q6_K",
    "q5_K_M": "q5_K_M",
    "q4_K_M": "q4_K_M",
    "q4_0": "q4_0",
}


def heldout_text() -> str:
    """The held-out prose that ships with the package (gptdesk/texts/README.md says what it is)."""
    return files("gptdesk.texts").joinpath("heldout_ru.txt").read_text(encoding="utf-8")


def parse_types(value: str) -> list[str]:
    """--quality: a comma-separated list of QUALITY_TYPES, or "none"."""
    if value.strip().lower() == "none":
        return []
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in QUALITY_TYPES]
    if bad:
        raise InvalidInputError(
            Text(
                f"--quality = {value}: unknown {', '.join(bad)}; choose from {', '.join(QUALITY_TYPES)}, or none.",
                f"--quality = {value}: неизвестно {', '.join(bad)}; выберите из {', '.join(QUALITY_TYPES)} или none.",
            )
        )
    return chosen


def measure_type(qtype: str, threads: int) -> dict[str, Any]:
    """Bits per character of the embedded model at `qtype` on the held-out text (in this process)."""
    from gptdesk.evaluate.perplexity import measure
    from gptdesk.models.gguf.sizes import QUANT_TYPES

    started = time.perf_counter()
    engine: LocalEngine
    size = 0  # the GGUF file's size (the reference engine reads the model's own folder)
    if qtype == "f32" and "f32" not in QUANT_TYPES:
        import torch

        from gptdesk.engine.hf import TransformersEngine

        torch.set_num_threads(threads)
        engine = TransformersEngine.load(None, device="cpu", dtype="float32", check_memory=False)
        label = "transformers float32"
    else:
        from gptdesk.engine.llamacpp.engine import LlamaCppEngine

        fast = LlamaCppEngine.load(None, quant=qtype, threads=threads, check_memory=False)
        size = fast.gguf.stat().st_size
        engine = fast
        label = f"llama.cpp {qtype}"
    try:
        load_s = time.perf_counter() - started
        result = measure(heldout_text(), engine.tokenizer, engine.score_tokens, context=engine.info.n_positions)
    finally:
        engine.close()
    return {
        "type": qtype,
        "engine": label,
        "bits_per_char": result.bits_per_char,
        "perplexity": result.perplexity,
        "tokens": result.tokens,
        "characters": result.characters,
        "score_s": result.seconds,
        "load_s": load_s,
        "file_bytes": size,
    }


def run_quality(
    types: list[str],
    *,
    threads: int,
    measure: Callable[[dict[str, Any], float], dict[str, Any]],
    say: Callable[[Text], None],
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Measure each type in a fresh process (torch's threads beside llama.cpp's slow both down): `measure`
    runs measure_type there on a spec {"type", "threads"} and raises RuntimeError when the worker fails."""
    rows: list[dict[str, Any]] = []
    if not types:
        return {"rows": rows}
    say(
        Text(
            "Quality: the embedded model's bits per character on held-out prose (gptdesk/texts/heldout_ru.txt) ...",
            "Качество: биты на символ встроенной модели на отложенной прозе (gptdesk/texts/heldout_ru.txt) ...",
        )
    )
    for qtype in types:
        try:
            row = measure({"type": qtype, "threads": threads}, timeout)
        except RuntimeError as exc:
            rows.append({"type": qtype, "error": str(exc)})
            say(Text(f"  {qtype}: ! {exc}", f"  {qtype}: ! {exc}"))
            continue
        rows.append(row)
        line = f"  {qtype:<7} {row['bits_per_char']:.4f} ({row['engine']}, {row['score_s']:.1f} s)"
        say(Text(line, line.replace(" s)", " с)")))
    reference = next((r for r in rows if r["type"] == "f32" and "bits_per_char" in r), None)
    for row in rows:
        if reference is not None and "bits_per_char" in row:
            row["vs_f32_percent"] = 100.0 * (row["bits_per_char"] / reference["bits_per_char"] - 1)
    return {"rows": rows, "text": "gptdesk/texts/heldout_ru.txt", "characters": len(heldout_text())}
