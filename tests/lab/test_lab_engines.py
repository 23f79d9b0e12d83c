"""The lab on the engines users get: llama.cpp (the default) as well as the reference engine.

Before the sequence store, llama.cpp's token log-probabilities decoded every generated token at
position 0 again and `gptdesk explore` / `gptdesk advise` exited 1 on the default engine.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gptdesk.engine.hf import TransformersEngine
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.lab.measures import mean_logprob
from gptdesk.lab.source import encode

PROMPT = "Жили-были дед и баба"


@pytest.fixture(scope="module")
def fast(tiny_model_dir: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine.load(tiny_model_dir, quant="f16")
    yield engine
    engine.close()


def test_token_logprobs_agree_with_the_reference(fast: LlamaCppEngine, tiny_engine: TransformersEngine) -> None:
    prompt_ids = encode(fast, PROMPT)
    generated = encode(fast, " и жили они долго и счастливо")
    got = fast.token_logprobs(prompt_ids, generated)
    want = tiny_engine.token_logprobs(prompt_ids, generated)
    assert np.allclose(got, want, atol=2e-2)
    assert mean_logprob(fast, prompt_ids, generated) == pytest.approx(
        mean_logprob(tiny_engine, prompt_ids, generated), abs=2e-2
    )
    # Asked again (now from the cache), the same figures.
    assert np.allclose(fast.token_logprobs(prompt_ids, generated), got, atol=1e-5)
    assert np.allclose(fast.next_logits(prompt_ids), tiny_engine.next_logits(prompt_ids), atol=5e-2)


@pytest.mark.parametrize("engine", [None, "llamacpp", "transformers"])
def test_cli_explore_runs_on_every_local_engine(tiny_model_dir: Path, engine: str | None) -> None:
    """Without --engine is what users run (the README's example)."""
    from gptdesk.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["explore", PROMPT, "--model", str(tiny_model_dir), "--max-new-tokens", "6", "--json"]
    argv += ["--vary", "temperature=0.5,1.0", "--vary", "top_p=0.8,0.95", "--seed", "7"]
    if engine is not None:
        argv += ["--engine", engine]
    assert main(argv, out, err) == 0, err.getvalue()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 4
    assert all(np.isfinite(r["measures"]["mean_logprob"]) for r in records)


def test_a_grid_of_six_cells_decodes_the_prompt_once(fast: LlamaCppEngine) -> None:
    from gptdesk.lab.explorer import parse_axis, plan_grid, run_grid
    from gptdesk.settings.presets import get_preset

    prompt = "Жили-были дед да баба, и была у них курочка Ряба. Снесла курочка яичко, да не простое — золотое."
    n_prompt = len(fast.tokenize(prompt))
    base = get_preset("balanced").settings(max_new_tokens=4, min_new_tokens=4, seed=7)
    cells = plan_grid(base, [parse_axis("temperature=0.5,1.0"), parse_axis("top_p=0.8,0.9,0.95")])
    assert len(cells) == 6 and n_prompt >= 30
    fast.store.clear()
    before = fast.store.stats.decoded_tokens
    results = run_grid(fast, prompt, cells)
    decoded = fast.store.stats.decoded_tokens - before
    assert len(results) == 6 and all(r.measures.mean_logprob is not None for r in results)
    # The prompt once, then per cell its new tokens and their scoring: far below six prompts.
    assert decoded <= n_prompt + 6 * 3 * 4, (decoded, n_prompt)
    assert fast.store.stats.reused_tokens >= 5 * (n_prompt - 1)
