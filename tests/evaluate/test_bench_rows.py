"""The bench's rows registry: every row names a registered kind, and a new kind of row is one function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gptdesk.evaluate.bench import CONFIGS, MANY
from gptdesk.evaluate.bench_rows import ROW_KINDS, Run, capped_new_tokens, greedy, measure_row, row_kind


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
        spec = {
            "model": str(tiny_model_dir),
            "engine": "transformers",
            "dtype": "float32",
            "preset": "greedy_twice",
            "app_process": False,
            "threads": 1,
            "runs": 2,
            "new_tokens": 5,
            "prompt": "Жили-были дед да баба",
        }
        result = measure_row(spec)
    finally:
        del ROW_KINDS["greedy_twice"]
        torch.set_num_threads(threads)
    assert result["generated_tokens"] == 5 and result["threads"] == 1
    assert len(result["tokens_per_second"]) == 2 and len(result["first_token_s"]) == 4  # two runs of two
    assert result["token_interval_median_s"] is not None and result["peak_rss_bytes"] > 0
