"""The bench's quality column: the embedded model's bits per character on held-out prose, per GGUF type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.resources import files
from typing import Any, TextIO

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


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def heldout_text() -> str:
    """The held-out prose that ships with the package (gptdesk/texts/README.md says what it is)."""
    return files("gptdesk.texts").joinpath("heldout_ru.txt").read_text(encoding="utf-8")


def add_arguments(p: Any) -> None:
    p.add_argument(
        "--quality",
        default=",".join(QUALITY_TYPES),
        help=_t(
            "types whose quality is measured on the embedded model (comma-separated, or none): ",
            "типы, чьё качество измеряется на встроенной модели (через запятую или none): ",
        )
        + ", ".join(QUALITY_TYPES),
    )


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
    engine: Any
    if qtype == "f32" and "f32" not in QUANT_TYPES:
        import torch

        from gptdesk.engine.hf import TransformersEngine

        torch.set_num_threads(threads)
        engine = TransformersEngine.load(None, device="cpu", dtype="float32", check_memory=False)
        label = "transformers float32"
    else:
        from gptdesk.engine.llamacpp.engine import LlamaCppEngine

        engine = LlamaCppEngine.load(None, quant=qtype, threads=threads, check_memory=False)
        label = f"llama.cpp {qtype}"
    with engine:
        load_s = time.perf_counter() - started
        result = measure(heldout_text(), engine.tokenizer, engine.score_tokens, context=engine.info.n_positions)
        file_bytes = getattr(engine, "gguf", None)
        size = file_bytes.stat().st_size if file_bytes is not None else 0
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


def run_quality(types: list[str], *, threads: int, out: TextIO, timeout: float = 1800.0) -> dict[str, Any]:
    """Measure each type in a fresh process (torch's threads beside llama.cpp's slow both down)."""
    rows: list[dict[str, Any]] = []
    if not types:
        return {"rows": rows}
    print(
        _t(
            "Quality: the embedded model's bits per character on held-out prose (gptdesk/texts/heldout_ru.txt) ...",
            "Качество: биты на символ встроенной модели на отложенной прозе (gptdesk/texts/heldout_ru.txt) ...",
        ),
        file=out,
        flush=True,
    )
    for qtype in types:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gptdesk.evaluate.bench_quality",
                "--worker",
                json.dumps({"type": qtype, "threads": threads}),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:]) or f"exit code {proc.returncode}"
            rows.append({"type": qtype, "error": tail})
            print(f"  {qtype}: ! {tail}", file=out, flush=True)
            continue
        row = json.loads(lines[-1])
        rows.append(row)
        print(
            f"  {qtype:<7} {row['bits_per_char']:.4f} ({row['engine']}, {row['score_s']:.1f} s)", file=out, flush=True
        )
    reference = next((r for r in rows if r["type"] == "f32" and "bits_per_char" in r), None)
    for row in rows:
        if reference is not None and "bits_per_char" in row:
            row["vs_f32_percent"] = 100.0 * (row["bits_per_char"] / reference["bits_per_char"] - 1)
    return {"rows": rows, "text": "gptdesk/texts/heldout_ru.txt", "characters": len(heldout_text())}


def print_summary(report: dict[str, Any], out: TextIO) -> None:
    """One line per type: quality on the embedded model beside speed on each ruGPT-3 shape."""
    from gptdesk.models.cost import format_bytes

    quality = {r["type"]: r for r in report.get("quality", {}).get("rows", [])}
    shapes = report.get("shapes", {})
    if not quality and not shapes:
        return
    speed: dict[str, dict[str, dict[str, Any]]] = {
        name: {row["key"]: row for row in shape["rows"]} for name, shape in shapes.items()
    }
    print(file=out)
    print(
        _t(
            "What each type costs: quality (embedded model, held-out prose) beside speed (ruGPT-3 shapes)",
            "Цена каждого типа: качество (встроенная модель, отложенная проза) рядом со скоростью (формы ruGPT-3)",
        ),
        file=out,
    )
    head = _t("type|bits/char|vs f32|file", "тип|бит/симв|к f32|файл").split("|")
    line = f"{head[0]:<8} {head[1]:>9} {head[2]:>7} {head[3]:>7}"
    for name in speed:
        line += " " + f"{name} " + _t("tok/s ×fp32 RSS", "ток/с ×fp32 RSS")
    print(line, file=out)
    print("-" * len(line), file=out)
    for qtype in QUALITY_TYPES:
        q = quality.get(qtype, {})
        rows = [s.get(SPEED_KEY[qtype]) for s in speed.values()]
        if not q and not any(rows):
            continue
        bpc = f"{q['bits_per_char']:.4f}" if "bits_per_char" in q else "-"
        delta = f"{q['vs_f32_percent']:+.1f}%" if "vs_f32_percent" in q else "-"
        size = format_bytes(q["file_bytes"]) if q.get("file_bytes") else "-"
        text = f"{qtype:<8} {bpc:>9} {delta:>7} {size:>7}"
        for name, row in zip(speed, rows, strict=True):
            if row and row.get("tokens_per_second"):
                x = f"{row['speedup_vs_fp32']:.1f}×" if row.get("speedup_vs_fp32") else "-"
                rss = format_bytes(row["peak_rss_bytes"])
                text += f" {name:>{len(name)}} {row['tokens_per_second']:>5.1f} {x:>5} {rss:>8}"
            else:
                text += f" {name:>{len(name)}} {'-':>5} {'-':>5} {'-':>8}"
        print(text, file=out)
    print(
        _t(
            "bits/char: lower is better; vs f32: the loss against full precision. f32's speed is the transformers "
            "fp32 row. The embedded model is 384 wide, so most of its matrices fall back from K-quant blocks "
            "(256) to 32-blocks; ruGPT-3's widths (768, 1536) split into 256-blocks.",
            "бит/симв: чем меньше, тем лучше; к f32: потеря против полной точности. Скорость f32 — строка "
            "transformers fp32. Ширина встроенной модели 384, поэтому большинство её матриц вместо блоков "
            "K-квантов (256) хранятся блоками по 32; ширины ruGPT-3 (768, 1536) делятся на блоки по 256.",
        ),
        file=out,
    )
    _print_targets(quality, out)
    large = speed.get("large", {}).get("q4_K_M")
    if large and large.get("speedup_vs_fp32"):
        ok = large["speedup_vs_fp32"] >= 8.0
        print(
            _t(
                f"target q4_K_M at least 8× fp32 on the large shape: {'met' if ok else 'MISSED'} "
                f"({large['speedup_vs_fp32']:.1f}×)",
                f"цель q4_K_M не меньше 8× fp32 на форме large: {'да' if ok else 'НЕТ'} "
                f"({large['speedup_vs_fp32']:.1f}×)",
            ),
            file=out,
        )


def _print_targets(quality: dict[str, dict[str, Any]], out: TextIO) -> None:
    def bpc(t: str) -> float | None:
        value = quality.get(t, {}).get("bits_per_char")
        return float(value) if value is not None else None

    f32, q8, q4k, q40 = bpc("f32"), bpc("q8_0"), bpc("q4_K_M"), bpc("q4_0")
    if f32 is None:
        return
    if q8 is not None:
        ok = q8 <= f32 * 1.01
        print(
            _t(
                f"target q8_0 within 1% of f32: {'met' if ok else 'MISSED'} ({100 * (q8 / f32 - 1):+.2f}%)",
                f"цель q8_0 в пределах 1% от f32: {'да' if ok else 'НЕТ'} ({100 * (q8 / f32 - 1):+.2f}%)",
            ),
            file=out,
        )
    if q4k is not None:
        ok = q4k <= f32 * 1.05 and (q40 is None or q4k < q40)
        vs = "" if q40 is None else _t(f", q4_0 {100 * (q40 / f32 - 1):+.2f}%", f", q4_0 {100 * (q40 / f32 - 1):+.2f}%")
        print(
            _t(
                f"target q4_K_M within 5% of f32 and better than q4_0: {'met' if ok else 'MISSED'} "
                f"({100 * (q4k / f32 - 1):+.2f}%{vs})",
                f"цель q4_K_M в пределах 5% от f32 и лучше q4_0: {'да' if ok else 'НЕТ'} "
                f"({100 * (q4k / f32 - 1):+.2f}%{vs})",
            ),
            file=out,
        )


def _worker_main(argv: list[str]) -> int:
    spec = json.loads(argv[argv.index("--worker") + 1])
    print(json.dumps(measure_type(spec["type"], int(spec["threads"]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv))
