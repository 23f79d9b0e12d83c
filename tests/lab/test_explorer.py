"""The explorer, its measures and the advice, on the tiny model and the embedded one."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptdesk.engine.hf import TransformersEngine
from gptdesk.errors import InvalidInputError, SettingsError
from gptdesk.history.store import HistoryStore
from gptdesk.lab.advice import GOALS, Scored, choose
from gptdesk.lab.explorer import grid_from_group, parse_axis, plan_grid, run_grid, save_grid
from gptdesk.lab.measures import distinct_n, mean_logprob, repeated_ngram_share, words
from gptdesk.lab.source import encode
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset

PROMPT = "Жили-были дед и баба"


def test_repetition_measures() -> None:
    assert words("Кто-то шёл, КТО-ТО пел!") == ["кто-то", "шёл", "кто-то", "пел"]
    # a b c a b c: 4 trigrams, 3 distinct -> a quarter repeats; 5 bigrams, 3 distinct.
    text = "раз два три раз два три"
    assert repeated_ngram_share(text, 3) == pytest.approx(1 / 4)
    assert distinct_n(text, 2) == pytest.approx(3 / 5)
    assert repeated_ngram_share("один два три четыре") == 0.0
    assert distinct_n("один") == 1.0  # too short to repeat


def test_mean_logprob_is_the_models_own_score(tiny_engine: TransformersEngine) -> None:
    prompt_ids = encode(tiny_engine, PROMPT)
    generated = encode(tiny_engine, " и жили они долго")
    import torch

    with torch.inference_mode():
        logits = tiny_engine._model(torch.tensor([prompt_ids + generated])).logits[0, len(prompt_ids) - 1 : -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1).numpy()
    expected = float(logprobs[np.arange(len(generated)), generated].mean())
    assert mean_logprob(tiny_engine, prompt_ids, generated) == pytest.approx(expected, abs=1e-4)


def test_parse_axis_and_bad_input() -> None:
    assert parse_axis("temperature=0.5,0.8,1.1").values == (0.5, 0.8, 1.1)
    assert parse_axis("top-k=0,10").values == (0, 10)
    with pytest.raises(InvalidInputError, match="seed"):
        parse_axis("seed=1,2")
    with pytest.raises(InvalidInputError, match="'x' is not a float"):
        parse_axis("top_p=0.8,x")
    with pytest.raises(InvalidInputError, match="SETTING=V1"):
        parse_axis("temperature")
    with pytest.raises(SettingsError, match=r"\[top_p=1.5\]"):
        plan_grid(GenerationSettings(), [parse_axis("top_p=0.9,1.5")])


def test_grid_is_reproducible_from_the_saved_group(tiny_engine: TransformersEngine, tmp_path: Path) -> None:
    base = get_preset("balanced").settings(max_new_tokens=8, seed=5)
    axes = [parse_axis("temperature=0.7,1.2"), parse_axis("top_p=0.8,0.95")]
    cells = plan_grid(base, axes)
    assert [c.coords for c in cells] == [(0.7, 0.8), (0.7, 0.95), (1.2, 0.8), (1.2, 0.95)]
    assert {c.settings.seed for c in cells} == {5}
    results = run_grid(tiny_engine, PROMPT, cells)
    assert len(results) == 4
    assert len({r.text for r in results}) > 1  # the settings made a difference
    for r in results:
        assert r.measures.tokens == 8 and r.measures.mean_logprob is not None
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        group = save_grid(store, PROMPT, results, tiny_engine)
        assert [r.group_id for r in store.find_group(group)] == [group] * 4
        assert store.groups()[0][:2] == (group, 4)
        prompt, axes2, cells2 = grid_from_group(store, group)
    assert prompt == PROMPT
    assert [(a.name, a.values) for a in axes2] == [("temperature", (0.7, 1.2)), ("top_p", (0.8, 0.95))]
    again = run_grid(tiny_engine, prompt, cells2)
    assert [r.text for r in again] == [r.text for r in results]
    assert [r.measures.repeated_3grams for r in again] == [r.measures.repeated_3grams for r in results]


def test_stop_mid_grid_keeps_finished_cells(tiny_engine: TransformersEngine) -> None:
    cells = plan_grid(
        get_preset("balanced").settings(max_new_tokens=30, seed=1), [parse_axis("temperature=0.5,1.0,1.5")]
    )
    cancel = threading.Event()
    finished_cells: list[Any] = []

    def progress(done: int, total: int, tokens: int) -> None:
        if done == 1 and tokens == 3:
            cancel.set()  # Stop pressed during the second cell

    results = run_grid(tiny_engine, PROMPT, cells, cancel, on_cell=finished_cells.append, on_progress=progress)
    assert [r.cell.index for r in results] == [0]
    assert finished_cells == results
    assert results[0].measures.tokens == 30


def test_cli_explore_json_one_record_per_cell(tiny_model_dir: Path) -> None:
    from gptdesk.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["explore", PROMPT, "--model", str(tiny_model_dir), "--engine", "transformers", "--max-new-tokens", "6"]
    argv += ["--vary", "temperature=0.5,1.1", "--vary", "top_p=0.8,0.95", "--seed", "3", "--json", "--save"]
    assert main(argv, out, err) == 0, err.getvalue()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 4
    assert [r["vary"] for r in records] == [{"temperature": t, "top_p": p} for t in (0.5, 1.1) for p in (0.8, 0.95)]
    for r in records:
        assert r["settings"]["temperature"] == r["vary"]["temperature"] and r["seed"] == 3
        assert set(r["measures"]) == {
            "repeated_3grams",
            "distinct_2",
            "mean_logprob",
            "words",
            "tokens",
            "tokens_per_second",
        }
    group = records[0]["group_id"]
    out2 = io.StringIO()
    argv2 = ["explore", "--reproduce", group, "--model", str(tiny_model_dir), "--engine", "transformers", "--json"]
    assert main(argv2, out2, err) == 0, err.getvalue()
    assert [json.loads(line)["text"] for line in out2.getvalue().splitlines()] == [r["text"] for r in records]


def test_advice_rule() -> None:
    s = GenerationSettings()
    default = Scored(s, "balanced", repeated_3grams=0.10, distinct_2=0.8, fluency=-2.2)
    cells = [
        Scored(s, "fluent but repetitive", repeated_3grams=0.30, distinct_2=0.6, fluency=-2.0),
        Scored(s, "less repetition, as fluent", repeated_3grams=0.05, distinct_2=0.9, fluency=-2.22),
        Scored(s, "no repetition, less fluent", repeated_3grams=0.00, distinct_2=1.0, fluency=-2.45),
    ]
    assert choose(GOALS["story"], cells, default).label == "less repetition, as fluent"  # margin 0.05
    assert choose(GOALS["varied"], cells, default).label == "no repetition, less fluent"  # margin 0.3
    # Nothing in the grid beats the default within the margin: the advice is the default itself.
    worse = [Scored(s, "worse", repeated_3grams=0.2, distinct_2=0.7, fluency=-2.1)]
    assert choose(GOALS["close"], worse, default).label == "balanced"


def test_advise_on_the_embedded_model() -> None:
    from gptdesk.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["advise", "Жили-были дед и баба", "--goal", "story", "--engine", "transformers", "--seeds", "1"]
    assert main([*argv, "--tokens", "20", "--json"], out, err) == 0, err.getvalue()
    advice = json.loads(out.getvalue())
    assert len(advice["cells"]) == 9
    chosen, default = advice["chosen"], advice["default"]
    assert chosen["mean_logprob"] >= default["mean_logprob"] - 0.05
    eligible = [default, *(c for c in advice["cells"] if c["mean_logprob"] >= default["mean_logprob"] - 0.05)]
    assert chosen["repeated_3grams"] == min(c["repeated_3grams"] for c in eligible)
    assert f"{chosen['repeated_3grams']:.1%}" in advice["reason"] and "default preset" in advice["reason"]


def test_the_lab_core_imports_no_qt() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gptdesk.lab.nextview, gptdesk.lab.explorer, gptdesk.lab.measures, gptdesk.lab.advice, "
        "gptdesk.cli.lab, gptdesk.cli.main; gptdesk.cli.main.build_parser(); print('PySide6' in sys.modules)"
    )
    env_path = str(Path(__file__).resolve().parents[2] / "src")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": env_path}
    )
    assert result.stdout.strip() == "False"
