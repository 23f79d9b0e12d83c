"""`gptdesk bench --rounds`: every row runs once a round in a fresh process, ×fp32 pairs rows by round,
and the figures are kept for the model manager (a tiny model stands in for ruGPT-3's shapes)."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from gptdesk.cli.bench import speed_worker
from gptdesk.cli.bench_report import printing_events
from gptdesk.evaluate import bench
from gptdesk.models import measured


def test_rounds_pair_each_row_with_fp32_and_keep_the_figures(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tiny"
    import shutil

    shutil.copytree(tiny_model_dir, folder)
    monkeypatch.setattr(bench, "random_model", lambda shape_name, say=None: folder)
    out = io.StringIO()
    report = bench.run_bench(
        ["small"],
        configs=["fp32", "q8_0"],
        runs=2,
        beam_runs=1,
        new_tokens=6,
        prompt_tokens=5,
        threads=1,
        measure=speed_worker,
        events=printing_events(out),
        rounds=2,
    )
    printed = out.getvalue()
    assert printed.count("round 1 of 2") == 1 and printed.count("round 2 of 2") == 1
    assert "medians of 2 runs (beam: 1) in each of 2 rounds, ×fp32 the median of the rounds' ratios" in printed
    assert report["settings"]["rounds"] == 2
    rows = {r["key"]: r for r in report["shapes"]["small"]["rows"]}
    fp32, q8 = rows["fp32"], rows["q8_0"]
    for row in (fp32, q8):
        assert row["error"] is None
        assert row["runs"] == 4 and len(row["all_tokens_per_second"]) == 4
        assert len(row["round_tokens_per_second"]) == 2
        assert row["tokens_per_second"] == statistics.median(row["round_tokens_per_second"])
        assert row["round_tokens_per_second"][0] == statistics.median(row["all_tokens_per_second"][:2])
    ratios = [a / b for a, b in zip(q8["round_tokens_per_second"], fp32["round_tokens_per_second"], strict=True)]
    assert q8["speedup_vs_fp32"] == pytest.approx(statistics.median(ratios))
    assert fp32["speedup_vs_fp32"] == pytest.approx(1.0)

    assert bench.record_measurements(report) is None
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    kept = measured.load().speed_for(config["n_layer"], config["n_embd"], config["vocab_size"])
    assert set(kept) == {"f32", "q8_0"}
    assert kept["q8_0"].tokens_per_second == q8["tokens_per_second"]
    assert kept["q8_0"].x_fp32 == pytest.approx(q8["speedup_vs_fp32"])
    assert kept["f32"].engine == "transformers" and kept["q8_0"].threads == 1


def test_one_round_keeps_the_plain_ratio() -> None:
    def row(key: str, tps: float, rounds: list[float | None]) -> Any:
        return bench.Row(key, key, 1, tps, None, 0, 0.0, 0, 0, 0, round_tokens_per_second=rounds)

    assert bench._speedup(row("q8_0", 20.0, [20.0]), row("fp32", 4.0, [4.0])) == 5.0
    # Rounds: 30/5 = 6 and 33/3 = 11 -> 8.5, not 31.5/4 = 7.9 from the medians of all runs.
    assert bench._speedup(row("q4_K_M", 31.5, [30.0, 33.0]), row("fp32", 4.0, [5.0, 3.0])) == pytest.approx(8.5)


def test_rounds_below_one_are_refused() -> None:
    from gptdesk.cli.main import main
    from gptdesk.i18n import set_language

    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(["--lang", "en", "bench", "--shapes", "small", "--rounds", "0"], out, err)
    finally:
        set_language(None)
    assert code == 2 and "--rounds = 0" in err.getvalue()
