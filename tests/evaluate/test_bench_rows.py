"""The bench's rows registry: every row names a registered kind, and a new kind of row is one function."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import gptdesk.tune.bench_row  # noqa: F401  (registers the tune row, as gptdesk bench does)
from gptdesk.evaluate.bench import CONFIGS, MANY
from gptdesk.evaluate.bench_rows import ROW_KINDS, Run, capped_new_tokens, greedy, measure_row, row_kind


def _spec(model: Path, preset: str, *, runs: int, new_tokens: int) -> dict[str, Any]:
    """What the bench sends its worker for one row: the reference engine in float32 on one thread."""
    return {
        "model": str(model),
        "engine": "transformers",
        "dtype": "float32",
        "preset": preset,
        "app_process": False,
        "threads": 1,
        "runs": runs,
        "new_tokens": new_tokens,
        "prompt": "Жили-были дед да баба",
    }


def test_every_row_names_a_registered_kind() -> None:
    assert {c.preset for c in CONFIGS} <= set(ROW_KINDS)
    assert set(MANY) == {name for name, kind in ROW_KINDS.items() if kind.max_new_tokens is not None}
    assert capped_new_tokens("greedy", 500) == 500 and capped_new_tokens("sber_demo", 500) == 100
    with pytest.raises(ValueError, match="registered twice"):
        row_kind("greedy")(greedy)


def test_a_new_row_kind_is_one_function(tiny_model_dir: Path) -> None:
    import torch

    @row_kind("greedy_twice")
    def greedy_twice(engine: Any, prompt: str, new: int) -> Run:
        first, second = greedy(engine, prompt, new), greedy(engine, prompt, new)
        return Run(first.tokens_per_second, first.finished + second.finished, first.stamps + second.stamps)

    threads = torch.get_num_threads()
    try:
        result = measure_row(_spec(tiny_model_dir, "greedy_twice", runs=2, new_tokens=5))
    finally:
        del ROW_KINDS["greedy_twice"]
        torch.set_num_threads(threads)
    assert result["generated_tokens"] == 5 and result["threads"] == 1
    assert len(result["tokens_per_second"]) == 2 and len(result["first_token_s"]) == 4  # two runs of two
    assert result["token_interval_median_s"] is not None and result["peak_rss_bytes"] > 0


def test_the_continue_rows_time_a_continue_with_and_without_the_kept_cache(tiny_model_dir: Path) -> None:
    from gptdesk.engine.llamacpp.engine import LlamaCppEngine
    from gptdesk.evaluate.bench_rows import continue_cold, continue_kept

    prompt = "Жили-были дед да баба, и была у них курочка Ряба."
    with LlamaCppEngine.load(tiny_model_dir, quant="q8_0", threads=1, check_memory=False) as engine:
        before = engine.store.stats.decoded_tokens
        kept = continue_kept(engine, prompt, 4)
        kept_decoded = engine.store.stats.decoded_tokens - before
        engine.store.clear()  # both rows start from an empty cache
        before = engine.store.stats.decoded_tokens
        cold = continue_cold(engine, prompt, 4)
        cold_decoded = engine.store.stats.decoded_tokens - before
    (k,), (c,) = kept.finished, cold.finished
    # The text fills the tiny model's context but for two generations: 64 - 2 * 4 - 2 tokens.
    assert k.prompt_tokens == c.prompt_tokens >= 50
    assert k.texts == c.texts  # greedy: the kept cache changes nothing but the time
    # Kept: the text once and each generation's steps. Emptied: the text and what was produced twice.
    assert cold_decoded - kept_decoded >= k.prompt_tokens - 8
    assert k.timings.first_token is not None and c.timings.first_token is not None


def test_the_continue_line_says_whether_the_target_is_met() -> None:
    from gptdesk.evaluate import bench

    def row(key: str, first: float) -> bench.Row:
        return bench.Row(key, key, 1, 10.0, first, 0, 0.0, 0, 0, 1602)

    met = bench.ratios([row("continue_q8_0", 0.31), row("continue_cold_q8_0", 21.7)])
    assert met[-1].en == (
        "Continue of a 1602-token text: first token 0.31 s from the kept cache, 21.70 s with the cache emptied "
        "(70× longer); target ≤ 0.5 s: met"
    )
    assert "цель ≤ 0.5 с: выполнена" in met[-1].ru
    missed = bench.ratios([row("continue_q8_0", 0.9)])
    assert missed[-1].en.endswith("target ≤ 0.5 s: MISSED") and "emptied" not in missed[-1].en


def test_the_branch_row_grows_a_branch_from_the_kept_story(tiny_model_dir: Path) -> None:
    from gptdesk.engine.llamacpp.engine import LlamaCppEngine
    from gptdesk.evaluate import bench
    from gptdesk.evaluate.bench_rows import branch_row

    prompt = "Жили-были дед да баба, и была у них курочка Ряба."
    with LlamaCppEngine.load(tiny_model_dir, quant="q8_0", threads=1, check_memory=False) as engine:
        run = branch_row(engine, prompt, 4)
        decoded = engine.store.stats.decoded_tokens
    (finished,) = run.finished
    story = finished.prompt_tokens
    assert story >= 50 and finished.generated_tokens == [4]
    # The story once with its continuation, then only the branch's new tokens: not the story twice.
    assert decoded <= story + 4 + 4 + 4, (decoded, story)
    line = bench.ratios([bench.Row("branch_q8_0", "b", 1, 10.0, 0.2, 0, 0.0, 0, 0, 1003)])[-1]
    assert line.en == "Branch at a token of a 1003-token story: first token 0.20 s; target ≤ 0.5 s: met"


def test_the_tune_row_trains_a_few_steps_and_reports_the_peak_memory(tiny_model_dir: Path) -> None:
    import torch

    from gptdesk.evaluate import bench
    from gptdesk.models.adapters import list_adapters

    threads = torch.get_num_threads()
    try:
        result = measure_row(_spec(tiny_model_dir, "tune", runs=1, new_tokens=8))
    finally:
        torch.set_num_threads(threads)
    assert len(result["tokens_per_second"]) == 1 and result["tokens_per_second"][0] > 0
    assert result["peak_rss_bytes"] > 0 and result["threads"] == 1
    assert list_adapters() == []  # the bench keeps nothing in the user's cache
    row = bench.make_row(bench.CONFIG_BY_KEY["tune"], [result], 1, 0, None)
    line = bench.ratios([row])[-1]
    assert line.en.startswith("LoRA tuning: peak RAM ") and "Large shape ≤ 6 GB" in line.en


def test_the_adapter_row_generates_with_a_stored_adapter_and_compares_with_the_plain_row(
    tiny_model_dir: Path,
) -> None:
    from gptdesk.evaluate import bench
    from gptdesk.models.adapters import list_adapters

    spec = {**_spec(tiny_model_dir, "greedy_adapter", runs=1, new_tokens=6), "engine": "llamacpp", "dtype": "q8_0"}
    seen: list[str] = []
    real = ROW_KINDS["greedy_adapter"]

    def run(engine: Any, prompt: str, new: int) -> Run:
        seen.append(engine.info.adapter)
        assert [a.name for a in list_adapters()] == [engine.info.adapter]  # stored while the row runs
        return real.run(engine, prompt, new)

    ROW_KINDS["greedy_adapter"] = dataclasses.replace(real, run=run)
    try:
        result = measure_row(spec)
    finally:
        ROW_KINDS["greedy_adapter"] = real
    assert seen and all(name.startswith("bench-adapter-") for name in seen)  # the warm-up and the run
    assert result["generated_tokens"] == 6 and result["tokens_per_second"][0] > 0
    assert list_adapters() == []  # removed after the row
    plain = bench.Row("q8_0", "llama.cpp q8_0", 1, 100.0, 0.1, 0, 0.0, 0, 0, 20)
    adapted = bench.Row("adapter_q8_0", "with an adapter", 1, 93.0, 0.1, 0, 0.0, 0, 0, 20)
    lines = [t.en for t in bench.ratios([plain, adapted])]
    assert "with an adapter: 93% of the q8_0 row's tokens/s; target ≥ 90%: met" in lines
    slow = dataclasses.replace(adapted, tokens_per_second=85.0)
    assert "with an adapter: 85% of the q8_0 row's tokens/s; target ≥ 90%: MISSED" in [
        t.en for t in bench.ratios([plain, slow])
    ]
