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
