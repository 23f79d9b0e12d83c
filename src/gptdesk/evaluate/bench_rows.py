"""The bench's row kinds (a registry: a new kind of row is one function) and the timing of one row in this process."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gptdesk.engine.base import Finished


@dataclass
class Run:
    """What one timed run of a row produced."""

    tokens_per_second: float | None  # the row's speed figure for this run
    finished: list[Finished]  # every generation's result (the sequential row has four)
    stamps: list[float] = field(default_factory=list)  # when each streamed token arrived


#: How one run of a row goes: (engine, prompt, new tokens) -> its figures. `Any` for the engine: both
#: engines (transformers, llama.cpp) take `stream(prompt, settings)`.
RowRun = Callable[[Any, str, int], Run]
#: Given a row's model folder: a context whose value is extra keyword arguments for the engine's load.
EngineOptions = Callable[[Any], AbstractContextManager[dict[str, Any]]]


@dataclass(frozen=True)
class RowKind:
    """One way of generating a row's text: its name (bench.Config.preset), how a run goes and how it counts."""

    name: str
    run: RowRun
    #: The run streams one token at a time: its first-token time and the gaps between tokens mean something
    #: (a beam search streams its tokens after the search; many sequences interleave).
    streams_tokens: bool = True
    #: New tokens are capped at this (many sequences per step: the whole generation is timed).
    max_new_tokens: int | None = None
    #: The row times an engine's generation (False: it measures something else on the model's folder).
    loads_engine: bool = True
    #: Given the model's folder, a context holding extra load options for the engine (a LoRA adapter).
    engine_options: EngineOptions | None = None


#: Every kind of row by name. Add one with `@row_kind(...)` below and a bench.Config that names it.
ROW_KINDS: dict[str, RowKind] = {}


def row_kind(
    name: str,
    *,
    streams_tokens: bool = True,
    max_new_tokens: int | None = None,
    loads_engine: bool = True,
    engine_options: EngineOptions | None = None,
) -> Callable[[RowRun], RowRun]:
    """Register a function as the run of the row kind `name`."""

    def register(run: RowRun) -> RowRun:
        if name in ROW_KINDS:
            raise ValueError(f"row kind {name!r} is registered twice")
        ROW_KINDS[name] = RowKind(
            name,
            run,
            streams_tokens=streams_tokens,
            max_new_tokens=max_new_tokens,
            loads_engine=loads_engine,
            engine_options=engine_options,
        )
        return run

    return register


def _generate(engine: Any, prompt: str, settings: Any) -> tuple[Finished, list[float]]:
    """One generation: its result and when each token arrived."""
    from gptdesk.engine.base import Finished, TokenEvent

    stamps: list[float] = []
    finished: Finished | None = None
    for event in engine.stream(prompt, settings):
        if isinstance(event, TokenEvent) and event.token_id >= 0:
            stamps.append(time.perf_counter())
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished, stamps


def _fixed_length(preset: str, new: int, **overrides: Any) -> Any:
    from gptdesk.settings.presets import get_preset

    return get_preset(preset).settings(max_new_tokens=new, min_new_tokens=new, **overrides)


@row_kind("greedy")
def greedy(engine: Any, prompt: str, new: int) -> Run:
    """Greedy decoding of exactly `new` tokens; the speed is the engine's decoding speed (first token excluded)."""
    finished, stamps = _generate(engine, prompt, _fixed_length("greedy", new))
    return Run(finished.timings.tokens_per_second, [finished], stamps)


@row_kind("sber_demo", streams_tokens=False, max_new_tokens=100)
def sber_demo(engine: Any, prompt: str, new: int) -> Run:
    """Beam search with the Sber demo preset (10 beams): the returned text's tokens over the whole search."""
    started = time.perf_counter()
    finished, stamps = _generate(engine, prompt, _fixed_length("sber_demo", new, seed=0))
    count = max(finished.generated_tokens)  # the returned text, as the fp32 beam row
    return Run(count / (time.perf_counter() - started), [finished], stamps)


@row_kind("variants4", streams_tokens=False, max_new_tokens=100)
def variants4(engine: Any, prompt: str, new: int) -> Run:
    """Four sampled variants in one batch: all their tokens over the whole generation."""
    started = time.perf_counter()
    settings = _fixed_length("creative", new, seed=0).updated(num_return_sequences=4)
    finished, stamps = _generate(engine, prompt, settings)
    return Run(finished.timings.generated_tokens / (time.perf_counter() - started), [finished], stamps)


@row_kind("sequential4", streams_tokens=False, max_new_tokens=100)
def sequential4(engine: Any, prompt: str, new: int) -> Run:
    """Four sampled generations one after another: all their tokens over the four generations."""
    started = time.perf_counter()
    results: list[Finished] = []
    stamps: list[float] = []
    for seed in range(4):
        finished, got = _generate(engine, prompt, _fixed_length("creative", new, seed=seed))
        results.append(finished)
        stamps.extend(got)
    count = sum(r.timings.generated_tokens for r in results)
    return Run(count / (time.perf_counter() - started), results, stamps)


#: The continue rows' text: about this many tokens (ruGPT-3 Large holds 2,048), as issue 18 measured.
CONTINUE_TOKENS = 1600


#: The branch row's story: about this many tokens (issue 19's target: a branch of a 1,000-token story).
BRANCH_TOKENS = 1000


def _long_text(engine: Any, prompt: str, new: int, tokens: int = CONTINUE_TOKENS) -> str:
    """The prompt repeated to `tokens` tokens, or fewer where the model's context and two
    generations of `new` tokens would not fit (a small shape holds 1,024 positions)."""
    room = min(tokens, int(engine.info.n_positions) - 2 * new - 2)
    pieces = engine.tokenize(prompt)
    times = -(-room // max(1, len(pieces))) + 1
    whole = engine.tokenize(" ".join([prompt] * times))
    return "".join(p.text for p in whole[:room])


def _continuation(engine: Any, prompt: str, new: int, *, cold: bool) -> Run:
    """A long text generated, then continued as the window's Continue and the server do: the text and
    what was produced sent again. Timed: the continuation (its first token is reading what is new).
    `cold`: the engine's kept cache emptied between the two, as before the sequence store."""
    text = _long_text(engine, prompt, new)
    first, _ = _generate(engine, text, _fixed_length("greedy", new))
    store = getattr(engine, "store", None)
    if cold and store is not None:
        store.clear()
    finished, stamps = _generate(engine, text + first.text, _fixed_length("greedy", new))
    return Run(finished.timings.tokens_per_second, [finished], stamps)


@row_kind("continue")
def continue_kept(engine: Any, prompt: str, new: int) -> Run:
    """Continue a ~1,600-token text the engine has just produced; the cache is kept between the calls."""
    return _continuation(engine, prompt, new, cold=False)


@row_kind("continue_cold")
def continue_cold(engine: Any, prompt: str, new: int) -> Run:
    """The same Continue with the cache emptied first: the text decoded from nothing (as before)."""
    return _continuation(engine, prompt, new, cold=True)


@row_kind("branch")
def branch_row(engine: Any, prompt: str, new: int) -> Run:
    """Branch a ~1,000-token story at a token of its last continuation: the text up to that token, the
    model's second choice there, and a continuation from it (the story window's click on an alternative)."""
    from gptdesk.engine.base import Finished

    text = _long_text(engine, prompt, new, BRANCH_TOKENS)
    first: Finished | None = None
    for event in engine.stream(text, _fixed_length("greedy", new), top_alternatives=2):
        if isinstance(event, Finished):
            first = event
    assert first is not None
    produced = [t for t in first.tokens[0] if t.token_id >= 0]
    at = len(produced) // 2
    other = next((a for a in produced[at].alternatives if a.token_id != produced[at].token_id), None)
    taken = other.text if other is not None else produced[at].text
    branched = text + "".join(t.text for t in produced[:at]) + taken
    finished, stamps = _generate(engine, branched, _fixed_length("greedy", new))
    return Run(finished.timings.tokens_per_second, [finished], stamps)


def capped_new_tokens(kind: str, new_tokens: int) -> int:
    """The new tokens a row of this kind generates when the bench asks for `new_tokens`."""
    cap = ROW_KINDS[kind].max_new_tokens
    return min(new_tokens, cap) if cap is not None else new_tokens


# -- one row, timed in this process (a fresh one: the bench's worker) ---------------------------


def peak_rss() -> int:
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


def measure_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one engine, warm it up, then time `runs` runs of the spec's row kind (a bench worker's job)."""
    from gptdesk.engine import run_to_end
    from gptdesk.settings.presets import get_preset

    kind = ROW_KINDS[spec["preset"]]
    threads = int(spec["threads"])
    if not kind.loads_engine:
        import torch

        torch.set_num_threads(threads)
        started = time.perf_counter()
        measured = [kind.run(spec["model"], spec["prompt"], int(spec["new_tokens"])) for _ in range(int(spec["runs"]))]
        return {
            "tokens_per_second": [r.tokens_per_second for r in measured if r.tokens_per_second is not None],
            "first_token_s": [],
            "token_interval_median_s": None,
            "generated_tokens": 0,
            "prompt_tokens": 0,
            "load_s": time.perf_counter() - started,
            "peak_rss_bytes": peak_rss(),
            "torch_loaded": True,
            "threads": threads,
        }
    if spec["app_process"]:
        # As in the app: torch imported and its thread pool used by the reference engine first.
        import torch

        from gptdesk.engine.hf import TransformersEngine

        torch.set_num_threads(threads)
        with TransformersEngine.load(None, device="cpu", dtype="float32", check_memory=False) as ref:
            run_to_end(ref.stream("Москва — столица", get_preset("greedy").settings(max_new_tokens=16)))
    with kind.engine_options(spec["model"]) if kind.engine_options else contextlib.nullcontext({}) as options:
        started = time.perf_counter()
        engine: Any
        if spec["engine"] == "transformers":
            import torch

            from gptdesk.engine.hf import TransformersEngine

            torch.set_num_threads(threads)
            engine = TransformersEngine.load(
                spec["model"], device="cpu", dtype=spec["dtype"], check_memory=False, **options
            )
        else:
            from gptdesk.engine.llamacpp.engine import LlamaCppEngine

            engine = LlamaCppEngine.load(
                spec["model"], quant=spec["dtype"], threads=threads, check_memory=False, **options
            )
        load_s = time.perf_counter() - started
        new = int(spec["new_tokens"])
        runs: list[Run] = []
        with engine:
            kind.run(engine, spec["prompt"], min(new, 4))  # warm-up
            for _ in range(int(spec["runs"])):
                runs.append(kind.run(engine, spec["prompt"], new))
    finished = [f for r in runs for f in r.finished]
    intervals = [b - a for r in runs for a, b in itertools.pairwise(r.stamps)]
    first = [f.timings.first_token for f in finished]
    return {
        "tokens_per_second": [r.tokens_per_second for r in runs if r.tokens_per_second is not None],
        "first_token_s": [t for t in first if t is not None],
        "token_interval_median_s": statistics.median(intervals) if intervals and kind.streams_tokens else None,
        "generated_tokens": max(finished[0].generated_tokens),
        "prompt_tokens": finished[0].prompt_tokens,
        "load_s": load_s,
        "peak_rss_bytes": peak_rss(),
        "torch_loaded": "torch" in sys.modules,
        "threads": threads,
    }
