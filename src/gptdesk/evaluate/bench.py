"""`gptdesk bench`: the engines side by side on random models of ruGPT-3's shapes, against the bandwidth floor."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gptdesk.errors import EngineError, InvalidInputError
from gptdesk.i18n import Text

#: The catalog entries whose exact shapes are benchmarked, by short name.
SHAPES = {"small": "ai-forever/rugpt3small_based_on_gpt2", "large": "ai-forever/rugpt3large_based_on_gpt2"}
#: A Russian sentence; its first PROMPT_TOKENS tokens are the prompt.
PROMPT_SOURCE = (
    "Жили-были дед да баба, и была у них курочка Ряба. Снесла курочка яичко, да не простое — золотое. "
    "Дед бил, бил — не разбил. Баба била, била — не разбила."
)


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


@dataclass
class Config:
    """One row of the table: which engine, in which form, how it is generated."""

    key: str
    label: str
    engine: str  # "transformers" or "llamacpp"
    dtype: str  # float32 / bfloat16 for transformers; f16 / q8_0 / q4_0 for llama.cpp
    preset: str = "greedy"
    app_process: bool = False  # torch loaded and a reference generation run first, as in the app


CONFIGS = (
    Config("fp32", "transformers fp32", "transformers", "float32"),
    Config("bf16", "transformers bf16", "transformers", "bfloat16"),
    Config("f16", "llama.cpp f16", "llamacpp", "f16"),
    Config("q8_0", "llama.cpp q8_0", "llamacpp", "q8_0"),
    Config("q4_0", "llama.cpp q4_0", "llamacpp", "q4_0"),
    Config("q6_K", "llama.cpp q6_K", "llamacpp", "q6_K"),
    Config("q5_K_M", "llama.cpp q5_K_M", "llamacpp", "q5_K_M"),
    Config("q4_K_M", "llama.cpp q4_K_M", "llamacpp", "q4_K_M"),
    Config("q8_0_app", "llama.cpp q8_0, in the app's process", "llamacpp", "q8_0", app_process=True),
    Config("beam", "transformers fp32, Sber demo (10 beams)", "transformers", "float32", preset="sber_demo"),
    # Many sequences per llama.cpp step. The auto engine runs them on q4_0 (engine.llamacpp.BATCH_QUANT);
    # the q8_0 and f16 rows show why.
    Config("beam_q4_0", "llama.cpp q4_0, Sber demo (10 beams)", "llamacpp", "q4_0", preset="sber_demo"),
    Config("beam_q8_0", "llama.cpp q8_0, Sber demo (10 beams)", "llamacpp", "q8_0", preset="sber_demo"),
    Config("beam_f16", "llama.cpp f16, Sber demo (10 beams)", "llamacpp", "f16", preset="sber_demo"),
    Config("var4_q4_0", "llama.cpp q4_0, 4 variants in one batch", "llamacpp", "q4_0", preset="variants4"),
    Config("var4_q8_0", "llama.cpp q8_0, 4 variants in one batch", "llamacpp", "q8_0", preset="variants4"),
    Config("seq4_q8_0", "llama.cpp q8_0, 4 variants one after another", "llamacpp", "q8_0", preset="sequential4"),
)
CONFIG_BY_KEY = {c.key: c for c in CONFIGS}
#: Rows whose speed is all generated tokens over the whole generation (first token included).
MANY = ("sber_demo", "variants4", "sequential4")


@dataclass
class Row:
    """Medians over the runs of one configuration, measured in a fresh process."""

    key: str
    label: str
    runs: int
    tokens_per_second: float | None  # greedy: decode speed; many-sequence rows: all tokens / total time
    first_token_s: float | None
    peak_rss_bytes: int
    load_s: float
    weights_bytes: int  # bytes read per generated token (the weights; the position table excluded)
    generated_tokens: int
    prompt_tokens: int
    # 1 / the median time between two tokens, over all runs: what the engine does when the
    # machine is not busy with other work (a run's figure also counts its stalls).
    steady_tokens_per_second: float | None = None
    all_tokens_per_second: list[float] = field(default_factory=list)
    all_first_token_s: list[float] = field(default_factory=list)
    percent_of_floor: float | None = None
    steady_percent_of_floor: float | None = None
    speedup_vs_fp32: float | None = None
    threads: int = 0
    error: str | None = None
    # The median tokens/s of each round (one fresh process a round; see run_bench's `rounds`).
    round_tokens_per_second: list[float | None] = field(default_factory=list)


# -- models with random weights ------------------------------------------------------------------


def bench_dir() -> Path:
    from gptdesk.models.gguf.cache import cache_dir

    return cache_dir() / "bench"


def random_model(shape_name: str, folder: Path | None = None, *, out: TextIO | None = None) -> Path:
    """A Hugging Face folder with ruGPT-3's exact shape and random weights (built once, then reused).

    Speed does not depend on the weights' values, only on their number and type. The tokenizer is
    the embedded model's (any GPT-2 tokenizer serves; the model's vocabulary keeps its real size).
    """
    import shutil

    from gptdesk.models.catalog import find_entry
    from gptdesk.models.locate import EMBEDDED_PATH

    entry = find_entry(SHAPES[shape_name])
    assert entry is not None
    folder = folder or bench_dir() / "models" / shape_name
    marker = folder / ".complete"
    if marker.exists():
        return folder
    if out is not None:
        print(
            _t(
                f"Building a random {entry.title.en} model in {folder} ...",
                f"Сборка случайной модели {entry.title.ru} в {folder} ...",
            ),
            file=out,
            flush=True,
        )
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    s = entry.shape
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=s.vocab_size,
        n_positions=s.n_positions,
        n_embd=s.n_embd,
        n_layer=s.n_layer,
        n_head=s.n_head,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    del model
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(EMBEDDED_PATH / name, folder / name)
    marker.write_text(json.dumps({"shape": asdict(s), "built": time.time()}))
    return folder


def prompt_text(folder: Path, tokens: int) -> str:
    """The first `tokens` tokens of PROMPT_SOURCE under this model's tokenizer, as text."""
    from gptdesk.engine.tokens import decode
    from gptdesk.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folder)
    ids = tokenizer(PROMPT_SOURCE * 4, add_special_tokens=False)["input_ids"][:tokens]
    return decode(tokenizer, [int(i) for i in ids])


def reference_bytes_per_token(folder: Path, dtype: str) -> int:
    """Weight bytes a transformers decoding step reads: every parameter but the position table."""
    from gptdesk.models.locate import read_config
    from gptdesk.models.shape import ModelShape

    shape = ModelShape.from_config(read_config(folder))
    per = {"float32": 4, "bfloat16": 2, "float16": 2}[dtype]
    return (shape.param_count - shape.n_positions * shape.n_embd) * per


def gguf_bytes_per_token(path: Path) -> int:
    """Tensor bytes a llama.cpp decoding step reads: all but the position table, and the token
    embedding only where a separate output layer exists (otherwise it is the output layer)."""
    import gguf

    tensors = {t.name: int(t.n_bytes) for t in gguf.GGUFReader(path).tensors}
    total = sum(tensors.values()) - tensors.get("position_embd.weight", 0)
    if "output.weight" in tensors:
        total -= tensors.get("token_embd.weight", 0)
    return total


# -- memory bandwidth ----------------------------------------------------------------------------


def read_bandwidth(threads: int, size_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Sustained read bandwidth in bytes/s: the best of `repeats` passes over an array far larger
    than any cache, split over 1..`threads` threads (numpy's reductions release the GIL)."""
    import numpy as np

    data = np.ones(size_bytes // 8, dtype=np.uint64)
    best = 0.0
    for n in range(1, max(1, threads) + 1):
        parts = np.array_split(data, n)
        for _ in range(repeats):
            workers = [threading.Thread(target=np.bitwise_or.reduce, args=(p,)) for p in parts]
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = max(best, data.nbytes / (time.perf_counter() - started))
    return best


# -- one configuration, in its own process -------------------------------------------------------


def _peak_rss() -> int:
    """This process's peak resident memory. Linux: VmHWM, which exec() starts afresh; ru_maxrss
    instead carries over the parent's peak when the child was spawned from a large process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024
    except ImportError:  # pragma: no cover - Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one engine, warm it up, then time `runs` generations; runs in a fresh process."""
    from gptdesk.engine import Finished, TokenEvent, run_to_end
    from gptdesk.settings.presets import get_preset

    threads = int(spec["threads"])
    if spec["app_process"]:
        # As in the app: torch imported and its thread pool used by the reference engine first.
        import torch

        from gptdesk.engine.hf import TransformersEngine

        torch.set_num_threads(threads)
        with TransformersEngine.load(None, device="cpu", dtype="float32", check_memory=False) as ref:
            run_to_end(ref.stream("Москва — столица", get_preset("greedy").settings(max_new_tokens=16)))
    started = time.perf_counter()
    engine: Any
    if spec["engine"] == "transformers":
        import torch

        from gptdesk.engine.hf import TransformersEngine

        torch.set_num_threads(threads)
        engine = TransformersEngine.load(spec["model"], device="cpu", dtype=spec["dtype"], check_memory=False)
    else:
        from gptdesk.engine.llamacpp.engine import LlamaCppEngine

        engine = LlamaCppEngine.load(spec["model"], quant=spec["dtype"], threads=threads, check_memory=False)
    load_s = time.perf_counter() - started
    new = int(spec["new_tokens"])
    preset = spec["preset"]
    if preset == "greedy":
        settings = get_preset("greedy").settings(max_new_tokens=new, min_new_tokens=new)
    elif preset in ("variants4", "sequential4"):
        settings = get_preset("creative").settings(max_new_tokens=new, min_new_tokens=new, seed=0)
        if preset == "variants4":
            settings = settings.updated(num_return_sequences=4)
    else:
        settings = get_preset(preset).settings(max_new_tokens=new, min_new_tokens=new, seed=0)
    results: list[Finished] = []
    intervals: list[float] = []  # between consecutive streamed tokens, over all runs
    tps: list[float | None] = []
    with engine:
        run_to_end(engine.stream(spec["prompt"], settings.updated(max_new_tokens=4, min_new_tokens=4)))  # warm-up
        for _ in range(int(spec["runs"])):
            stamps: list[float] = []
            started_run = time.perf_counter()
            for seq in range(4 if preset == "sequential4" else 1):
                for event in engine.stream(spec["prompt"], settings.updated(seed=seq)):
                    if isinstance(event, TokenEvent) and event.token_id >= 0:
                        stamps.append(time.perf_counter())
                    elif isinstance(event, Finished):
                        results.append(event)
            if preset in MANY:
                # All generated tokens over the whole generation, first step included (beam search
                # streams its tokens at the end; the sequential row is four generations).
                if preset == "sber_demo":
                    count = max(results[-1].generated_tokens)  # the returned text, as the fp32 beam row
                elif preset == "variants4":
                    count = results[-1].timings.generated_tokens
                else:
                    count = sum(r.timings.generated_tokens for r in results[-4:])
                tps.append(count / (time.perf_counter() - started_run))
            else:
                tps.append(results[-1].timings.tokens_per_second)
            intervals.extend(b - a for a, b in itertools.pairwise(stamps))
    ttft = [r.timings.first_token for r in results]
    return {
        "tokens_per_second": [t for t in tps if t is not None],
        "first_token_s": [t for t in ttft if t is not None],
        # Beam search streams its tokens after the search: no intervals to speak of.
        "token_interval_median_s": statistics.median(intervals) if intervals and preset == "greedy" else None,
        "generated_tokens": max(results[0].generated_tokens),
        "prompt_tokens": results[0].prompt_tokens,
        "load_s": load_s,
        "peak_rss_bytes": _peak_rss(),
        "torch_loaded": "torch" in sys.modules,
        "threads": threads,
    }


def _spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "gptdesk.evaluate.bench", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(" | ".join(tail) or f"exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the whole benchmark -------------------------------------------------------------------------


def run_bench(
    shapes: list[str],
    *,
    configs: list[str],
    runs: int,
    beam_runs: int,
    new_tokens: int,
    prompt_tokens: int,
    threads: int,
    out: TextIO,
    timeout: float = 3600.0,
    rounds: int = 1,
) -> dict[str, Any]:
    from gptdesk.models.gguf.convert import ensure_gguf
    from gptdesk.models.locate import resolve

    print(
        _t("Measuring the memory read bandwidth ...", "Измерение пропускной способности памяти ..."),
        file=out,
        flush=True,
    )
    # Measured twice now and again after each shape; the floor uses the median, so that neither
    # a pass slowed by other programs nor a lone outlier (seen once: 52 GB/s among 33-36) sets it.
    measured = [read_bandwidth(threads), read_bandwidth(threads)]
    bandwidth = statistics.median(measured)
    print(_t(f"  {bandwidth / 1e9:.1f} GB/s", f"  {bandwidth / 1e9:.1f} ГБ/с"), file=out, flush=True)
    report: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": threads,
            "read_bandwidth_bytes_per_s": bandwidth,
            "read_bandwidth_measurements": measured,
            "python": platform.python_version(),
        },
        "settings": {
            "runs": runs,
            "beam_runs": beam_runs,
            "rounds": rounds,
            "new_tokens": new_tokens,
            "prompt_tokens": prompt_tokens,
        },
        "versions": _versions(),
        "shapes": {},
    }
    for shape_name in shapes:
        folder = random_model(shape_name, out=out)
        prompt = prompt_text(folder, prompt_tokens)
        chosen = [c for c in CONFIGS if c.key in configs]
        per_token: dict[str, int] = {}
        for config in list(chosen):
            if config.engine == "llamacpp":
                from gptdesk.models.gguf.library import is_available

                if not is_available():
                    print(
                        _t(
                            f"  {config.label}: llama-cpp-python is not installed, skipped",
                            f"  {config.label}: llama-cpp-python не установлен, пропущено",
                        ),
                        file=out,
                    )
                    chosen.remove(config)
                    continue
                converted = ensure_gguf(resolve(folder), config.dtype, progress=_progress(out, config.label))
                per_token[config.key] = gguf_bytes_per_token(converted.path)
            else:
                per_token[config.key] = reference_bytes_per_token(folder, config.dtype)
        # Each round runs every row once, in turn, each in a fresh process: with several rounds,
        # a row and the fp32 row are measured minutes apart at most, so a slow spell of the machine
        # (other programs, a busy host) weighs on both, and the ratio is the median of the rounds'.
        results: dict[str, list[dict[str, Any]]] = {c.key: [] for c in chosen}
        errors: dict[str, str] = {}
        for round_index in range(rounds):
            if rounds > 1:
                print(_t(f"  round {round_index + 1} of {rounds}", f"  круг {round_index + 1} из {rounds}"), file=out)
            for config in chosen:
                if config.key in errors:
                    continue
                n_runs = beam_runs if config.preset != "greedy" else runs
                n_new = min(new_tokens, 100) if config.preset in MANY else new_tokens
                spec = {
                    "model": str(folder),
                    "engine": config.engine,
                    "dtype": config.dtype,
                    "preset": config.preset,
                    "app_process": config.app_process,
                    "threads": threads,
                    "runs": n_runs,
                    "new_tokens": n_new,
                    "prompt": prompt,
                }
                print(
                    _t(f"  {config.label}: {n_runs} runs ...", f"  {config.label}: запусков {n_runs} ..."),
                    file=out,
                    flush=True,
                )
                try:
                    results[config.key].append(_spawn(spec, timeout))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    errors[config.key] = str(exc)
                    print(f"    ! {exc}", file=out, flush=True)
        rows: list[Row] = []
        for config in chosen:
            n_runs = (beam_runs if config.preset != "greedy" else runs) * rounds
            done = results[config.key]
            if config.key in errors or not done:
                rows.append(
                    Row(
                        config.key,
                        config.label,
                        n_runs,
                        None,
                        None,
                        0,
                        0.0,
                        per_token[config.key],
                        0,
                        0,
                        error=errors.get(config.key, "no result"),
                    )
                )
                continue
            intervals = [r["token_interval_median_s"] for r in done if r.get("token_interval_median_s")]
            rows.append(
                Row(
                    key=config.key,
                    label=config.label,
                    runs=n_runs,
                    # The median of the rounds' medians: a round that a busy spell slowed down
                    # counts once, as one of the fp32 row's rounds does.
                    tokens_per_second=_median(
                        [m for m in (_median(r["tokens_per_second"]) for r in done) if m is not None]
                    ),
                    first_token_s=_median([t for r in done for t in r["first_token_s"]])
                    if config.preset == "greedy"
                    else None,
                    peak_rss_bytes=max(int(r["peak_rss_bytes"]) for r in done),
                    load_s=statistics.median(float(r["load_s"]) for r in done),
                    weights_bytes=per_token[config.key],
                    generated_tokens=int(done[0]["generated_tokens"]),
                    prompt_tokens=int(done[0]["prompt_tokens"]),
                    steady_tokens_per_second=1 / statistics.median(intervals) if intervals else None,
                    all_tokens_per_second=[t for r in done for t in r["tokens_per_second"]],
                    all_first_token_s=[t for r in done for t in r["first_token_s"]],
                    threads=int(done[0]["threads"]),
                    round_tokens_per_second=[_median(r["tokens_per_second"]) for r in done],
                )
            )
        measured.append(read_bandwidth(threads))
        bandwidth = statistics.median(measured)
        report["machine"]["read_bandwidth_bytes_per_s"] = bandwidth
        fp32 = next((r for r in rows if r.key == "fp32" and r.tokens_per_second), None)
        for row in rows:
            if row.tokens_per_second is not None and CONFIG_BY_KEY[row.key].preset == "greedy":
                row.percent_of_floor = 100.0 * row.tokens_per_second * row.weights_bytes / bandwidth
            if row.steady_tokens_per_second is not None:
                row.steady_percent_of_floor = 100.0 * row.steady_tokens_per_second * row.weights_bytes / bandwidth
            if fp32 is not None and row.tokens_per_second and fp32.tokens_per_second:
                row.speedup_vs_fp32 = _speedup(row, fp32)
        report["shapes"][shape_name] = {
            "model": SHAPES[shape_name],
            "folder": str(folder),
            "rows": [asdict(r) for r in rows],
        }
        print_table(shape_name, rows, report, out)
    return report


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("gptdesk", "torch", "transformers", "llama-cpp-python", "gguf", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def _progress(out: TextIO, label: str) -> Any:
    last = [-1.0]

    def report(text: Text, fraction: float | None) -> None:
        if fraction is not None and (fraction >= last[0] + 0.25 or fraction >= 1.0) and fraction != last[0]:
            last[0] = fraction
            print(f"    {text.get()} ({fraction:.0%})", file=out, flush=True)

    return report


def _speedup(row: Row, fp32: Row) -> float | None:
    """A row's tokens/s over the fp32 row's: the median of the rounds' ratios, each round's pair
    measured minutes apart at most (with one round, the ratio of the two medians)."""
    pairs = [a / b for a, b in zip(row.round_tokens_per_second, fp32.round_tokens_per_second, strict=False) if a and b]
    if len(pairs) > 1:
        return statistics.median(pairs)
    if row.tokens_per_second and fp32.tokens_per_second:
        return row.tokens_per_second / fp32.tokens_per_second
    return None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def print_table(shape_name: str, rows: list[Row], report: dict[str, Any], out: TextIO) -> None:
    from gptdesk.models.cost import format_bytes

    machine = report["machine"]
    s = report["settings"]
    bandwidth = machine["read_bandwidth_bytes_per_s"]
    rounds = int(s.get("rounds", 1))
    print(file=out)
    print(
        _t(
            f"{SHAPES[shape_name]} shape, random weights; {machine['threads']} threads; prompt {s['prompt_tokens']} "
            f"tokens, {s['new_tokens']} new tokens (beam: up to 100), greedy; medians of {s['runs']} runs "
            f"(beam: {s['beam_runs']})"
            + (f" in each of {rounds} rounds, ×fp32 the median of the rounds' ratios" if rounds > 1 else "")
            + f"; read bandwidth {bandwidth / 1e9:.1f} GB/s",
            f"Форма {SHAPES[shape_name]}, случайные веса; потоков: {machine['threads']}; затравка "
            f"{s['prompt_tokens']} токенов, новых токенов {s['new_tokens']} (лучи: до 100), жадный поиск; "
            f"медианы {s['runs']} запусков (лучи: {s['beam_runs']})"
            + (f" в каждом из {rounds} кругов, ×fp32 — медиана отношений по кругам" if rounds > 1 else "")
            + f"; пропускная способность памяти {bandwidth / 1e9:.1f} ГБ/с",
        ),
        file=out,
    )
    columns = _t(
        "engine|weights|tok/s|×fp32|1st tok|peak RSS|load|floor|% floor|steady|% floor",
        "движок|веса|ток/с|×fp32|1-й ток|пик RSS|загр.|предел|% пред.|ровно|% пред.",
    ).split("|")
    widths = (-42, 8, 7, 6, 8, 9, 6, 6, 7, 7, 7)
    header = " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        if r.error:
            print(f"{r.label:<42} {format_bytes(r.weights_bytes):>8}  ! {r.error[:80]}", file=out)
            continue
        floor = bandwidth / r.weights_bytes if r.weights_bytes else None
        print(
            f"{r.label:<42} {format_bytes(r.weights_bytes):>8} "
            f"{_num(r.tokens_per_second, '.1f'):>7} {_num(r.speedup_vs_fp32, '.1f', '×'):>6} "
            f"{_num(r.first_token_s and r.first_token_s * 1000, '.0f', ' ms'):>8} "
            f"{format_bytes(r.peak_rss_bytes):>9} {_num(r.load_s, '.1f', ' s'):>6} "
            f"{_num(floor if r.percent_of_floor is not None else None, '.0f'):>6} "
            f"{_num(r.percent_of_floor, '.0f', '%'):>7} {_num(r.steady_tokens_per_second, '.1f'):>7} "
            f"{_num(r.steady_percent_of_floor, '.0f', '%'):>7}",
            file=out,
        )
    print(
        _t(
            "tok/s: decoding speed without the first token, median of the runs (with rounds: the median "
            "of the rounds' medians); ×fp32: against the transformers fp32 row; floor: tokens/s if every "
            "weight byte were read at the measured "
            "bandwidth; steady: 1 / the median time between two tokens (a run's tok/s also counts the "
            "stalls other programs cause); peak RSS: the whole process (the app-process row also holds "
            "torch and the embedded model). Sber demo and variant rows: all generated tokens over the "
            "whole generation (the returned beam's tokens for beam search).",
            "ток/с: скорость без первого токена, медиана запусков (с кругами — медиана медиан кругов); "
            "×fp32: относительно строки transformers fp32; предел: токенов/с, если бы каждый байт "
            "весов читался с измеренной "
            "скоростью; ровно: 1 / медиана времени между двумя токенами (ток/с запуска учитывает и "
            "простои из-за других программ); пик RSS: весь процесс (в строке с процессом приложения "
            "в нём ещё torch и встроенная модель). Строки с пресетом Сбера и вариантами: все "
            "сгенерированные токены за всё время генерации (для лучей — токены возвращённого луча).",
        ),
        file=out,
    )
    for line in ratios(rows):
        print("  " + line, file=out)


def ratios(rows: list[Row]) -> list[str]:
    """The many-sequence targets' ratios, from rows of the same run."""
    by = {r.key: r for r in rows if r.tokens_per_second}
    lines: list[str] = []
    reference = by.get("beam")
    for key in ("beam_q4_0", "beam_q8_0", "beam_f16"):
        row = by.get(key)
        if row is not None and reference is not None and row.tokens_per_second and reference.tokens_per_second:
            speed = row.tokens_per_second / reference.tokens_per_second
            memory = row.peak_rss_bytes / reference.peak_rss_bytes if reference.peak_rss_bytes else 0.0
            lines.append(
                _t(
                    f"{row.label}: {speed:.1f}× the tokens/s of the transformers fp32 Sber demo, "
                    f"at {memory:.0%} of its peak RSS",
                    f"{row.label}: {speed:.1f}× ток/с transformers fp32 с пресетом Сбера, "
                    f"при {memory:.0%} его пикового RSS",
                )
            )
    sequential = by.get("seq4_q8_0")
    for key in ("var4_q4_0", "var4_q8_0"):
        row = by.get(key)
        if row is not None and sequential is not None and row.tokens_per_second and sequential.tokens_per_second:
            lines.append(
                _t(
                    f"{row.label}: {row.tokens_per_second / sequential.tokens_per_second:.1f}× the total "
                    "tokens/s of 4 sequential q8_0 runs",
                    f"{row.label}: {row.tokens_per_second / sequential.tokens_per_second:.1f}× суммарных "
                    "ток/с четырёх последовательных запусков q8_0",
                )
            )
    return lines


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


# -- the command ---------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help=_t("compare the engines' speed and memory", "сравнить скорость и память движков"),
        description=_t(
            "Benchmark the reference engine (fp32, bf16, and beam search with the Sber demo preset) and the "
            "llama.cpp engine (f16, q8_0, q4_0) on random models of ruGPT-3's shapes, against the measured "
            "memory bandwidth. Heavy: the Large shape needs about 4 GB of RAM and several minutes.",
            "Замерить эталонный движок (fp32, bf16 и лучевой поиск с пресетом «Как в демо Сбера») и движок "
            "llama.cpp (f16, q8_0, q4_0) на случайных моделях формы ruGPT-3, сравнив с измеренной "
            "пропускной способностью памяти. Тяжело: форме Large нужно около 4 ГБ памяти и несколько минут.",
        ),
    )
    p.add_argument(
        "--shapes", default="small,large", help=_t("comma-separated: small, large", "через запятую: small, large")
    )
    p.add_argument(
        "--configs",
        default=",".join(c.key for c in CONFIGS),
        help=_t("rows to run: ", "какие строки: ") + ", ".join(c.key for c in CONFIGS),
    )
    p.add_argument("--runs", type=int, default=3, help=_t("timed runs per row (median)", "замеров на строку (медиана)"))
    p.add_argument(
        "--beam-runs", type=int, default=1, help=_t("timed runs of the beam-search row", "замеров строки с лучами")
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help=_t(
            "run every row this many times in turn, each time in a fresh process; ×fp32 is then the median "
            "of the rounds' ratios (steadier on a busy machine)",
            "прогнать все строки столько раз по очереди, каждый раз в новом процессе; ×fp32 тогда — медиана "
            "отношений по кругам (устойчивее на загруженной машине)",
        ),
    )
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=20)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=_t("default: one per physical core", "по умолчанию: по числу физических ядер"),
    )
    p.add_argument(
        "--json", dest="json_path", default=None, help=_t("where to write the results", "куда записать результаты")
    )
    from gptdesk.evaluate.bench_quality import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.engine.llamacpp.native import default_threads

    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    known = {c.key for c in CONFIGS}
    for value, allowed, name in ((shapes, set(SHAPES), "--shapes"), (configs, known, "--configs")):
        bad = [v for v in value if v not in allowed]
        if bad or not value:
            raise InvalidInputError(
                Text(
                    f"{name} = {','.join(value)}: unknown {', '.join(bad) or '(empty)'}; "
                    f"choose from {', '.join(sorted(allowed))}.",
                    f"{name} = {','.join(value)}: неизвестно {', '.join(bad) or '(пусто)'}; "
                    f"выберите из {', '.join(sorted(allowed))}.",
                )
            )
    for value, name in (
        (args.runs, "--runs"),
        (args.beam_runs, "--beam-runs"),
        (args.rounds, "--rounds"),
        (args.new_tokens, "--new-tokens"),
        (args.prompt_tokens, "--prompt-tokens"),
    ):
        if value < 1:
            raise InvalidInputError(Text(f"{name} = {value}: use at least 1.", f"{name} = {value}: нужно не меньше 1."))
    threads = args.threads or default_threads()
    from gptdesk.evaluate.bench_quality import parse_types, print_summary, run_quality

    quality_types = parse_types(args.quality)
    report = run_bench(
        shapes,
        configs=configs,
        runs=args.runs,
        beam_runs=args.beam_runs,
        new_tokens=args.new_tokens,
        prompt_tokens=args.prompt_tokens,
        threads=threads,
        out=out,
        rounds=args.rounds,
    )
    report["quality"] = run_quality(quality_types, threads=threads, out=out)
    print_summary(report, out)
    problem = record_measurements(report)
    if problem is not None:
        print(
            _t(
                f"\nThe figures could not be kept for the model manager ({problem}).",
                f"\nЦифры не удалось сохранить для менеджера моделей ({problem}).",
            ),
            file=err,
        )
    path = Path(args.json_path) if args.json_path else bench_dir() / "results.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        raise EngineError(
            Text(
                f"Cannot write the results to {path}: {exc}. Pass --json with another path.",
                f"Не удаётся записать результаты в {path}: {exc}. Укажите другой путь в --json.",
            )
        ) from exc
    print(_t(f"\nResults written to {path}", f"\nРезультаты записаны в {path}"), file=out)
    return 0


def record_measurements(report: dict[str, Any]) -> str | None:
    """Keep the greedy rows' speed (and the quality column) where the model manager reads them;
    returns None, or why they could not be written."""
    from gptdesk.models import measured

    when = measured.now()
    speed: list[measured.SpeedEntry] = []
    for shape in report["shapes"].values():
        config = json.loads((Path(shape["folder"]) / "config.json").read_text(encoding="utf-8"))
        for row in shape["rows"]:
            c = CONFIG_BY_KEY[row["key"]]
            if c.preset != "greedy" or c.app_process or not row.get("tokens_per_second"):
                continue
            speed.append(
                measured.SpeedEntry(
                    when=when,
                    shape=shape["model"],
                    n_layer=int(config["n_layer"]),
                    n_embd=int(config["n_embd"]),
                    n_vocab=int(config["vocab_size"]),
                    type=measured.type_of(f"{c.engine} {c.dtype}"),
                    engine=c.engine,
                    tokens_per_second=float(row["tokens_per_second"]),
                    x_fp32=row.get("speedup_vs_fp32"),
                    peak_rss_bytes=int(row["peak_rss_bytes"]),
                    threads=int(row["threads"]),
                )
            )
    problem = measured.record_speed(speed) if speed else None
    quality = report.get("quality") or {}
    if any("bits_per_char" in row for row in quality.get("rows", [])):
        from gptdesk.evaluate.bench_quality import heldout_text

        digest = measured.text_digest(heldout_text())
        for row in quality["rows"]:
            if "bits_per_char" not in row:
                continue
            entry = measured.QualityEntry(
                when=when,
                model_id="embedded",
                type=row["type"],
                engine=row["engine"],
                text=quality.get("text", "held-out prose"),
                text_sha256=digest,
                characters=int(row["characters"]),
                bits_per_char=float(row["bits_per_char"]),
                perplexity=float(row["perplexity"]),
                complete=True,
            )
            problem = measured.record_quality(entry) or problem
    return problem


def _worker_main(argv: list[str]) -> int:
    spec = json.loads(argv[argv.index("--worker") + 1])
    result = run_worker(spec)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv))
