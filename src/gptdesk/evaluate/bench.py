"""The bench's measures: the engines side by side on random models of ruGPT-3's shapes, against the bandwidth floor.

The rows' kinds are in bench_rows (a registry); the command, its printing and its worker processes in cli/bench.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import ProgressCallback, Text

#: The catalog entries whose exact shapes are benchmarked, by short name.
SHAPES = {"small": "ai-forever/rugpt3small_based_on_gpt2", "large": "ai-forever/rugpt3large_based_on_gpt2"}
#: A Russian sentence; its first PROMPT_TOKENS tokens are the prompt.
PROMPT_SOURCE = (
    "Жили-были дед да баба, и была у них курочка Ряба. Снесла курочка яичко, да не простое — золотое. "
    "Дед бил, бил — не разбил. Баба била, била — не разбила."
)


@dataclass
class Config:
    """One row of the table: which engine, in which form, how it is generated."""

    key: str
    label: str
    engine: str  # "transformers" or "llamacpp"
    dtype: str  # float32 / bfloat16 for transformers; f16 / q8_0 / q4_0 for llama.cpp
    preset: str = "greedy"  # the row's kind: a name in bench_rows.ROW_KINDS
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
    # Continuing a long text (issue 18): the first token with the kept cache, and with it emptied.
    Config("continue_q8_0", "llama.cpp q8_0, Continue of a long text", "llamacpp", "q8_0", preset="continue"),
    Config(
        "continue_cold_q8_0",
        "llama.cpp q8_0, Continue of a long text, cache emptied",
        "llamacpp",
        "q8_0",
        preset="continue_cold",
    ),
    # Branching a long story at a token (issue 19): the branch's first token from the kept cache.
    Config("branch_q8_0", "llama.cpp q8_0, branch of a long story at a token", "llamacpp", "q8_0", preset="branch"),
    # LoRA tuning (issue 20): a few steps on the shape's random weights; the figure is the peak RAM.
    Config(
        "tune", "LoRA tuning (rank 8, 512-token sequences), tokens trained/s", "transformers", "float32", preset="tune"
    ),
    # Generating with a LoRA adapter (issue 20): beside the q8_0 row, what the adapter costs in speed.
    Config("adapter_q8_0", "llama.cpp q8_0 with a LoRA adapter (rank 8)", "llamacpp", "q8_0", preset="greedy_adapter"),
)
CONFIG_BY_KEY = {c.key: c for c in CONFIGS}
#: Rows whose speed is all generated tokens over the whole generation (first token included).
MANY = ("sber_demo", "variants4", "sequential4")
#: Rows of one greedy sequence, timed as the plain greedy row (--runs, the first token, the floor).
GREEDY = ("greedy", "greedy_adapter")
#: Rows whose first-token time is a figure of the table (the time to read the prompt, or what is new of it).
FIRST_TOKEN = (*GREEDY, "continue", "continue_cold", "branch")
#: Generating with a LoRA adapter on llama.cpp: at least this share of the speed without it (issue 20).
ADAPTER_TARGET = 0.9
#: The continue row's target: the first token of a Continue within this many seconds (issue 18).
CONTINUE_TARGET_S = 0.5
#: The most threads the bench runs: this computer's logical CPUs.
MAX_THREADS = os.cpu_count() or 1


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


def random_model(shape_name: str, folder: Path | None = None, *, say: Callable[[Text], None] | None = None) -> Path:
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
    if say is not None:
        say(
            Text(
                f"Building a random {entry.title.en} model in {folder} ...",
                f"Сборка случайной модели {entry.title.ru} в {folder} ...",
            )
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
    """The first `tokens` tokens of PROMPT_SOURCE, repeated as often as needed, under this model's tokenizer."""
    from gptdesk.engine.tokens import decode
    from gptdesk.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folder)
    repeats = 4
    while True:
        ids = tokenizer(PROMPT_SOURCE * repeats, add_special_tokens=False)["input_ids"]
        if len(ids) > tokens:
            break
        repeats *= 2
    ids = ids[:tokens]
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


# -- the whole benchmark -------------------------------------------------------------------------


def _quiet(*_args: object) -> None:
    pass


@dataclass
class BenchEvents:
    """How run_bench reports as it goes; the command prints each (nothing by default)."""

    say: Callable[[Text], None] = _quiet  # a line of progress
    converting: Callable[[str, Text, float | None], None] = _quiet  # (row label, message, fraction)
    shape_done: Callable[[str, list[Row], dict[str, Any]], None] = _quiet  # (shape, its rows, the report so far)


#: Times one row in a fresh process: (spec, timeout in seconds) -> the figures bench_rows.measure_row
#: returns there. Raises RuntimeError (with the worker's last lines) when the worker fails or times out.
Measure = Callable[[dict[str, Any], float], dict[str, Any]]


def runs_of(config: Config, runs: int, beam_runs: int) -> int:
    """Timed runs of a row in one round: --beam-runs for the many-sequence rows, --runs for the rest."""
    return runs if config.preset in GREEDY else beam_runs


def shape_context(shape_name: str) -> int:
    """The context (positions) of a shape's model: its prompt and new tokens must fit in it."""
    from gptdesk.models.catalog import find_entry

    entry = find_entry(SHAPES[shape_name])
    assert entry is not None
    return int(entry.shape.n_positions)


def check_plan(shapes: list[str], *, threads: int, new_tokens: int, prompt_tokens: int) -> None:
    """Refuse, before anything is measured, what the workers would fail on (or take hours over)."""
    if not 1 <= threads <= MAX_THREADS:
        raise InvalidInputError(
            Text(
                f"--threads {threads}: use between 1 and {MAX_THREADS} (this computer's logical CPUs), or leave "
                "it out for one thread per physical core.",
                f"--threads {threads}: укажите от 1 до {MAX_THREADS} (логических процессоров этого компьютера) "
                "или не указывайте — по потоку на физическое ядро.",
            )
        )
    for shape_name in shapes:
        context = shape_context(shape_name)
        if prompt_tokens >= context:
            raise InvalidInputError(
                Text(
                    f"--prompt-tokens {prompt_tokens}: the {shape_name} shape's context is {context} tokens, and "
                    f"the new tokens need room too. Use --prompt-tokens {context // 2} or fewer.",
                    f"--prompt-tokens {prompt_tokens}: контекст формы {shape_name} — {context} токенов, и новым "
                    f"токенам нужно место. Укажите --prompt-tokens не больше {context // 2}.",
                )
            )
        total = prompt_tokens + new_tokens
        if total > context:
            raise InvalidInputError(
                Text(
                    f"--new-tokens {new_tokens}: with a {prompt_tokens}-token prompt that is {total} "
                    f"tokens, beyond the {shape_name} shape's context of {context}. Use --new-tokens "
                    f"{context - prompt_tokens} or fewer.",
                    f"--new-tokens {new_tokens}: с затравкой в {prompt_tokens} токенов это {total} "
                    f"токенов, больше контекста формы {shape_name} ({context}). Укажите --new-tokens не больше "
                    f"{context - prompt_tokens}.",
                )
            )


def run_bench(
    shapes: list[str],
    *,
    configs: list[str],
    runs: int,
    beam_runs: int,
    new_tokens: int,
    prompt_tokens: int,
    threads: int,
    measure: Measure,
    events: BenchEvents | None = None,
    timeout: float = 3600.0,
    rounds: int = 1,
) -> dict[str, Any]:
    """Measure the chosen rows on each shape, every row in a fresh process (`measure`); the report as JSON data."""
    from gptdesk.evaluate.bench_rows import capped_new_tokens

    check_plan(shapes, threads=threads, new_tokens=new_tokens, prompt_tokens=prompt_tokens)
    ev = events or BenchEvents()
    ev.say(Text("Measuring the memory read bandwidth ...", "Измерение пропускной способности памяти ..."))
    # Measured twice now and again after each shape; the floor uses the median, so that neither
    # a pass slowed by other programs nor a lone outlier (seen once: 52 GB/s among 33-36) sets it.
    measured = [read_bandwidth(threads), read_bandwidth(threads)]
    bandwidth = statistics.median(measured)
    ev.say(Text(f"  {bandwidth / 1e9:.1f} GB/s", f"  {bandwidth / 1e9:.1f} ГБ/с"))
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
        folder = random_model(shape_name, say=ev.say)
        prompt = prompt_text(folder, prompt_tokens)
        chosen, per_token = _prepare(folder, [c for c in CONFIGS if c.key in configs], ev)
        # Each round runs every row once, in turn, each in a fresh process: with several rounds,
        # a row and the fp32 row are measured minutes apart at most, so a slow spell of the machine
        # (other programs, a busy host) weighs on both, and the ratio is the median of the rounds'.
        results: dict[str, list[dict[str, Any]]] = {c.key: [] for c in chosen}
        errors: dict[str, str] = {}
        for round_index in range(rounds):
            if rounds > 1:
                ev.say(Text(f"  round {round_index + 1} of {rounds}", f"  круг {round_index + 1} из {rounds}"))
            for config in chosen:
                if config.key in errors:
                    continue
                n_runs = runs_of(config, runs, beam_runs)
                spec = {
                    "model": str(folder),
                    "engine": config.engine,
                    "dtype": config.dtype,
                    "preset": config.preset,
                    "app_process": config.app_process,
                    "threads": threads,
                    "runs": n_runs,
                    "new_tokens": capped_new_tokens(config.preset, new_tokens),
                    "prompt": prompt,
                }
                ev.say(Text(f"  {config.label}: ", f"  {config.label}: ") + runs_text(n_runs) + Text(" ...", " ..."))
                try:
                    results[config.key].append(measure(spec, timeout))
                except RuntimeError as exc:
                    errors[config.key] = str(exc)
                    ev.say(Text(f"    ! {exc}", f"    ! {exc}"))
        rows = [
            make_row(
                config,
                results[config.key],
                runs_of(config, runs, beam_runs) * rounds,
                per_token[config.key],
                errors.get(config.key),
            )
            for config in chosen
        ]
        measured.append(read_bandwidth(threads))
        bandwidth = statistics.median(measured)
        report["machine"]["read_bandwidth_bytes_per_s"] = bandwidth
        compare_rows(rows, bandwidth)
        report["shapes"][shape_name] = {
            "model": SHAPES[shape_name],
            "folder": str(folder),
            "rows": [asdict(r) for r in rows],
        }
        ev.shape_done(shape_name, rows, report)
    return report


def runs_text(n: int) -> Text:
    """ "1 run", "3 runs" / "1 прогон", "3 прогона", "5 прогонов"."""
    return Text(f"{n} run" if n == 1 else f"{n} runs", f"{n} {ru_plural(n, 'прогон', 'прогона', 'прогонов')}")


def ru_plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian form for `n`: 1, 21 -> one; 2-4, 22-24 -> few; 0, 5-20, 25-30 -> many."""
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _prepare(folder: Path, chosen: list[Config], ev: BenchEvents) -> tuple[list[Config], dict[str, int]]:
    """The rows that can run (llama.cpp rows need llama-cpp-python) and each one's weight bytes per token;
    llama.cpp's files converted first."""
    from gptdesk.models.gguf.cache import invalidate
    from gptdesk.models.gguf.convert import ensure_gguf
    from gptdesk.models.gguf.library import is_available
    from gptdesk.models.gguf.sizes import K_QUANTS
    from gptdesk.models.locate import resolve

    per_token: dict[str, int] = {}
    runnable: list[Config] = []
    resolved = resolve(folder)
    base: Any = None  # the f16 file the K-quants are made from (a ConvertedModel)
    for config in chosen:
        if config.engine != "llamacpp":
            per_token[config.key] = reference_bytes_per_token(folder, config.dtype)
            runnable.append(config)
            continue
        if not is_available():
            ev.say(
                Text(
                    f"  {config.label}: llama-cpp-python is not installed, skipped",
                    f"  {config.label}: llama-cpp-python не установлен, пропущено",
                )
            )
            continue

        def progress(text: Text, fraction: float | None, label: str = config.label) -> None:
            ev.converting(label, text, fraction)

        if config.dtype in K_QUANTS and base is None:
            # Every K-quant is made from the f16 file, which the converter deletes after each one unless
            # it was there before: made once here and kept until the last, not once per K-quant row.
            base = ensure_gguf(resolved, "f16", progress=_scaled(progress, 0.2))
        converted = ensure_gguf(resolved, config.dtype, progress=progress)
        per_token[config.key] = gguf_bytes_per_token(converted.path)
        runnable.append(config)
    if base is not None and not base.reused and not any(c.engine == "llamacpp" and c.dtype == "f16" for c in runnable):
        invalidate(base.path)  # made only as the K-quants' input
    return runnable, per_token


def _scaled(progress: ProgressCallback, share: float) -> ProgressCallback:
    def report(text: Text, fraction: float | None) -> None:
        progress(text, None if fraction is None else share * fraction)

    return report


def make_row(config: Config, done: list[dict[str, Any]], n_runs: int, weights_bytes: int, error: str | None) -> Row:
    """A row of the table from its workers' figures (one a round), or its error."""
    if error is not None or not done:
        return Row(
            config.key, config.label, n_runs, None, None, 0, 0.0, weights_bytes, 0, 0, error=error or "no result"
        )
    intervals = [r["token_interval_median_s"] for r in done if r.get("token_interval_median_s")]
    greedy = config.preset in FIRST_TOKEN
    return Row(
        key=config.key,
        label=config.label,
        runs=n_runs,
        # The median of the rounds' medians: a round that a busy spell slowed down counts once, as one of
        # the fp32 row's rounds does.
        tokens_per_second=_median([m for m in (_median(r["tokens_per_second"]) for r in done) if m is not None]),
        first_token_s=_median([t for r in done for t in r["first_token_s"]]) if greedy else None,
        peak_rss_bytes=max(int(r["peak_rss_bytes"]) for r in done),
        load_s=statistics.median(float(r["load_s"]) for r in done),
        weights_bytes=weights_bytes,
        generated_tokens=int(done[0]["generated_tokens"]),
        prompt_tokens=int(done[0]["prompt_tokens"]),
        steady_tokens_per_second=1 / statistics.median(intervals) if intervals else None,
        all_tokens_per_second=[t for r in done for t in r["tokens_per_second"]],
        all_first_token_s=[t for r in done for t in r["first_token_s"]],
        threads=int(done[0]["threads"]),
        round_tokens_per_second=[_median(r["tokens_per_second"]) for r in done],
    )


def compare_rows(rows: list[Row], bandwidth: float) -> None:
    """Each row against the bandwidth floor and the fp32 row."""
    fp32 = next((r for r in rows if r.key == "fp32" and r.tokens_per_second), None)
    for row in rows:
        if row.tokens_per_second is not None and CONFIG_BY_KEY[row.key].preset in GREEDY:
            row.percent_of_floor = 100.0 * row.tokens_per_second * row.weights_bytes / bandwidth
        if row.steady_tokens_per_second is not None:
            row.steady_percent_of_floor = 100.0 * row.steady_tokens_per_second * row.weights_bytes / bandwidth
        tuning = CONFIG_BY_KEY[row.key].preset == "tune"  # tokens trained, not generated: no ratio to fp32
        if fp32 is not None and row.tokens_per_second and fp32.tokens_per_second and not tuning:
            row.speedup_vs_fp32 = _speedup(row, fp32)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("gptdesk", "torch", "transformers", "llama-cpp-python", "gguf", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


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


def ratios(rows: list[Row]) -> list[Text]:
    """The many-sequence targets' ratios, from rows of the same run."""
    by = {r.key: r for r in rows if r.tokens_per_second}
    lines: list[Text] = []
    reference = by.get("beam")
    for key in ("beam_q4_0", "beam_q8_0", "beam_f16"):
        row = by.get(key)
        if row is not None and reference is not None and row.tokens_per_second and reference.tokens_per_second:
            speed = row.tokens_per_second / reference.tokens_per_second
            memory = row.peak_rss_bytes / reference.peak_rss_bytes if reference.peak_rss_bytes else 0.0
            lines.append(
                Text(
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
                Text(
                    f"{row.label}: {row.tokens_per_second / sequential.tokens_per_second:.1f}× the total "
                    "tokens/s of 4 sequential q8_0 runs",
                    f"{row.label}: {row.tokens_per_second / sequential.tokens_per_second:.1f}× суммарных "
                    "ток/с четырёх последовательных запусков q8_0",
                )
            )
    plain, adapted = by.get("q8_0"), by.get("adapter_q8_0")
    if plain is not None and adapted is not None and plain.tokens_per_second and adapted.tokens_per_second:
        share = adapted.tokens_per_second / plain.tokens_per_second
        verdict = Text("met", "выполнена") if share >= ADAPTER_TARGET else Text("MISSED", "НЕ ВЫПОЛНЕНА")
        lines.append(
            Text(
                f"{adapted.label}: {share:.0%} of the q8_0 row's tokens/s; target ≥ {ADAPTER_TARGET:.0%}: {verdict.en}",
                f"{adapted.label}: {share:.0%} ток/с строки q8_0; цель ≥ {ADAPTER_TARGET:.0%}: {verdict.ru}",
            )
        )
    tuning = next((r for r in rows if r.key == "tune" and r.peak_rss_bytes), None)
    if tuning is not None:
        gb = tuning.peak_rss_bytes / 1e9
        lines.append(
            Text(
                f"LoRA tuning: peak RAM {gb:.2f} GB (targets: Small shape ≤ 2 GB, Large shape ≤ 6 GB)",
                f"Обучение LoRA: пиковая память {gb:.2f} ГБ (цели: Small ≤ 2 ГБ, Large ≤ 6 ГБ)",
            )
        )
    branch = by.get("branch_q8_0")
    if branch is not None and branch.first_token_s is not None:
        verdict = (
            Text("met", "выполнена") if branch.first_token_s <= CONTINUE_TARGET_S else Text("MISSED", "НЕ ВЫПОЛНЕНА")
        )
        lines.append(
            Text(
                f"Branch at a token of a {branch.prompt_tokens}-token story: first token {branch.first_token_s:.2f} s; "
                f"target ≤ {CONTINUE_TARGET_S} s: {verdict.en}",
                f"Ветка от токена рассказа из {branch.prompt_tokens} токенов: первый токен через "
                f"{branch.first_token_s:.2f} с; цель ≤ {CONTINUE_TARGET_S} с: {verdict.ru}",
            )
        )
    kept, cold = by.get("continue_q8_0"), by.get("continue_cold_q8_0")
    if kept is not None and kept.first_token_s is not None:
        met = kept.first_token_s <= CONTINUE_TARGET_S
        verdict = Text("met", "выполнена") if met else Text("MISSED", "НЕ ВЫПОЛНЕНА")
        longer = (
            Text(
                f", {cold.first_token_s:.2f} s with the cache emptied ({cold.first_token_s / kept.first_token_s:.0f}× "
                "longer)",
                f", {cold.first_token_s:.2f} с с опустошённым кэшем (в {cold.first_token_s / kept.first_token_s:.0f} "
                "раз дольше)",
            )
            if cold is not None and cold.first_token_s
            else Text("", "")
        )
        lines.append(
            Text(
                f"Continue of a {kept.prompt_tokens}-token text: first token {kept.first_token_s:.2f} s from the "
                f"kept cache{longer.en}; target ≤ {CONTINUE_TARGET_S} s: {verdict.en}",
                f"Продолжение текста из {kept.prompt_tokens} токенов: первый токен через {kept.first_token_s:.2f} с "
                f"из хранимого кэша{longer.ru}; цель ≤ {CONTINUE_TARGET_S} с: {verdict.ru}",
            )
        )
    return lines


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
