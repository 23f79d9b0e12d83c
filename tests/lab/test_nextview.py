"""The next-token view: its final probabilities are the engines' sampling distribution, and moving a setting
makes no model call."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptdesk.engine import run_to_end
from gptdesk.engine.hf import TransformersEngine
from gptdesk.lab.nextview import NextTokenContext
from gptdesk.lab.source import encode
from gptdesk.settings.generation import GenerationSettings

# Penalties, bans and every sampling knob, alone and together.
SETTINGS = [
    GenerationSettings(),
    GenerationSettings(temperature=0.7, top_k=0, top_p=0.9, repetition_penalty=1.0),
    GenerationSettings(temperature=1.3, top_k=40, top_p=1.0, repetition_penalty=1.5),
    GenerationSettings(temperature=0.5, top_k=5, top_p=0.5, repetition_penalty=2.0, no_repeat_ngram_size=2),
    GenerationSettings(temperature=1.0, top_k=0, top_p=0.95, no_repeat_ngram_size=3, min_new_tokens=8),
    GenerationSettings(temperature=0.9, top_k=20, top_p=0.8, repetition_penalty=0.8, min_new_tokens=3),
    GenerationSettings(do_sample=False, repetition_penalty=1.3, no_repeat_ngram_size=2, min_new_tokens=5),
]
# A context that repeats itself, so no-repeat n-grams and the repetition penalty have work to do.
PROMPT = "Москва — столица. Москва — столица России. Москва —"


class Counting:
    """A logits source that counts the model calls made through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.info = inner.info
        self.calls = 0

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    def tokenize(self, text: str) -> Any:
        return self.inner.tokenize(text)

    def piece(self, token_id: int) -> str:
        return str(self.inner.piece(token_id))

    def next_logits(self, ids: list[int]) -> Any:
        self.calls += 1
        return self.inner.next_logits(ids)

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> Any:
        self.calls += 1
        return self.inner.token_logprobs(prompt_ids, ids)


def _transformers_distribution(
    engine: TransformersEngine, prompt_ids: list[int], generated: list[int], s: GenerationSettings
) -> np.ndarray:
    """transformers' own processors and warpers, built by generate()'s _get_logits_processor, on the same context."""
    import torch
    from transformers import GenerationConfig

    model = engine._model
    min_new, max_new = s.resolve_lengths(len(prompt_ids))
    kwargs = engine.generate_kwargs(s, min_new, max_new)
    config = GenerationConfig(**{k: v for k, v in kwargs.items()})
    model._prepare_special_tokens(config, kwargs_has_attention_mask=True, device="cpu")
    processors = model._get_logits_processor(
        generation_config=config, input_ids_seq_length=len(prompt_ids), device="cpu", model_kwargs={}
    )
    ids = torch.tensor([prompt_ids + generated])
    with torch.inference_mode():
        logits = model(ids).logits[:, -1].float()
        scores = processors(ids, logits)
    if not s.do_sample:
        out = np.zeros(scores.shape[-1])
        out[int(torch.argmax(scores[0]))] = 1.0
        return out
    return torch.softmax(scores[0].double(), dim=-1).numpy()


@pytest.mark.parametrize(
    "settings",
    SETTINGS,
    ids=lambda s: (
        f"t{s.temperature}-k{s.top_k}-p{s.top_p}-r{s.repetition_penalty}-n{s.no_repeat_ngram_size}-m{s.min_new_tokens}-{s.do_sample}"
    ),
)
def test_view_equals_transformers_processors(tiny_engine: TransformersEngine, settings: GenerationSettings) -> None:
    prompt_ids = encode(tiny_engine, PROMPT)
    generated = prompt_ids[:3]  # as if these were generated after the prompt: bans count them, min length too
    ctx = NextTokenContext(tiny_engine, prompt_ids, generated)
    expected = _transformers_distribution(tiny_engine, prompt_ids, generated, settings)
    final = ctx.final_distribution(settings)
    np.testing.assert_allclose(final, expected, atol=2e-6)
    view = ctx.view(settings)
    for c in view.candidates:
        assert c.final == pytest.approx(expected[c.token_id], abs=2e-6)
    assert view.in_play == int((expected > 0).sum())


def test_bans_are_shown_as_cut(tiny_engine: TransformersEngine) -> None:
    prompt_ids = encode(tiny_engine, PROMPT)
    s = GenerationSettings(top_k=0, top_p=1.0, no_repeat_ngram_size=2, min_new_tokens=5)
    ctx = NextTokenContext(tiny_engine, prompt_ids, [])
    # The prompt ends with «Москва —»'s last token: each token that followed it before is banned.
    banned = {prompt_ids[i + 1] for i in range(len(prompt_ids) - 1) if prompt_ids[i] == prompt_ids[-1]}
    assert banned
    final = ctx.final_distribution(s)
    assert all(final[t] == 0 for t in banned)
    assert final[ctx.eos_id] == 0  # the end-of-text ban before the minimum length
    view = ctx.view(s, top=50_000)
    status = {c.token_id: c.status for c in view.candidates}
    assert all(status[t] == "no_repeat_ngram" for t in banned)
    assert status[ctx.eos_id] == "min_length"


def test_moving_settings_makes_no_model_call(tiny_engine: TransformersEngine) -> None:
    source = Counting(tiny_engine)
    ctx = NextTokenContext.for_prompt(source, PROMPT)
    assert source.calls == 1
    views = []
    for t in (0.3, 0.7, 1.0, 1.5):
        for p in (0.5, 0.9, 1.0):
            for k in (0, 5, 50):
                for r in (1.0, 1.2):
                    views.append(ctx.view(GenerationSettings(temperature=t, top_p=p, top_k=k, repetition_penalty=r)))
    assert source.calls == 1
    # And the settings did change the view: top-k 5 keeps at most 5 tokens, top-k 50 keeps 50 or fewer.
    assert len({v.in_play for v in views}) > 5
    assert all(v.in_play <= 5 for v in views[2::6]) and any(v.in_play > 5 for v in views[4::6])


def test_greedy_and_beams_say_what_the_knobs_do(tiny_engine: TransformersEngine) -> None:
    ctx = NextTokenContext.for_prompt(tiny_engine, PROMPT)
    greedy = ctx.view(GenerationSettings(do_sample=False))
    assert greedy.mode == "greedy" and greedy.in_play == 1 and greedy.greedy_final == 1.0
    assert "change nothing" in greedy.notes[0].en and "ничего не" in greedy.notes[0].ru
    assert greedy.candidates[0].token_id == greedy.greedy_id
    beams = ctx.view(GenerationSettings(num_beams=4, do_sample=False))
    assert beams.mode == "beams" and "4 beams" in beams.notes[0].en


# -- llama.cpp: the view against what the engine really sampled from -----------------------------


@pytest.fixture(scope="module")
def fast_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import llama_cpp  # noqa: F401  (part of the test set-up: fail, never skip, without it)

    from gptdesk.engine.llamacpp.engine import LlamaCppEngine

    with pytest.MonkeyPatch.context() as mp:  # the module's own cache, never the user's
        mp.setenv("GPTDESK_CACHE_DIR", str(tmp_path_factory.mktemp("lab-cache")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        engine = LlamaCppEngine.load(None, quant="f16")
    yield engine
    engine.close()


@pytest.mark.parametrize(
    "settings",
    SETTINGS[:6],
    ids=lambda s: f"t{s.temperature}-k{s.top_k}-p{s.top_p}-r{s.repetition_penalty}-n{s.no_repeat_ngram_size}",
)
def test_view_equals_llamacpp_sampling(
    fast_engine: Any, monkeypatch: pytest.MonkeyPatch, settings: GenerationSettings
) -> None:
    import gptdesk.engine.drivers as drivers  # the llama.cpp engine's loops run there

    seen: list[np.ndarray] = []
    logits_seen: list[np.ndarray] = []
    base = drivers.LogitsPipeline

    class Recording(base):  # type: ignore[misc,valid-type]
        """The engine's pipeline, keeping each model output and each distribution it sampled from."""

        def process(self, logits: Any) -> Any:
            logits_seen.append(np.array(logits))
            return super().process(logits)

        def warp(self, scores: Any) -> Any:
            kept, probs = super().warp(scores)
            full = np.zeros(scores.shape[0])
            full[kept] = probs
            seen.append(full)
            return kept, probs

    monkeypatch.setattr(drivers, "LogitsPipeline", Recording)
    run = settings.updated(seed=7, max_new_tokens=12)
    finished = run_to_end(fast_engine.stream(PROMPT, run))
    generated = [t.token_id for t in finished.tokens[0] if t.token_id >= 0]
    assert len(seen) == len(generated) > 0
    prompt_ids = encode(fast_engine, PROMPT)
    for step, expected in enumerate(seen):
        # The engine's own scores at this step through the view: exactly its sampling distribution.
        same = NextTokenContext(fast_engine, prompt_ids, generated[:step], logits=logits_seen[step])
        np.testing.assert_array_equal(same.final_distribution(run), expected)
        # The view's own model call gives the same up to llama.cpp's rounding, which differs between a batch
        # and token-by-token decoding and between CPUs (AVX2 and AVX-512 kernels): a token whose share lies
        # right at the top-p cut-off may fall on either side. So: the same distribution within a small total
        # variation, and the same kept set among the tokens that are clearly in (a margin above the cut-off).
        ctx = NextTokenContext(fast_engine, prompt_ids, generated[:step])
        final = ctx.final_distribution(run)
        assert 0.5 * np.abs(final - expected).sum() <= 0.02, step
        clearly_in = expected > 0.01
        assert np.all(final[clearly_in] > 0), step
        np.testing.assert_allclose(final[clearly_in], expected[clearly_in], rtol=0.1, atol=2e-3)


def test_cli_next_top_k_1_keeps_one_token(tmp_path: Path) -> None:
    from gptdesk.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["next", "Москва — столица", "--top-k", "1", "--json"], out, err) == 0, err.getvalue()
    result = json.loads(out.getvalue())
    finals = [c["final"] for c in result["candidates"]]
    assert sum(1 for f in finals if f > 0) == 1
    assert max(finals) == pytest.approx(1.0)
    assert result["tokens_in_play"] == 1
    raws = [c["raw"] for c in result["candidates"]]
    assert all(0 < r < 1 for r in raws) and sum(raws) <= 1.0 + 1e-9
    assert raws == sorted(raws, reverse=True)[: len(raws)] or result["settings"]["repetition_penalty"] != 1.0
    kept = next(c for c in result["candidates"] if c["final"] > 0)
    assert kept["id"] == result["greedy"]["id"]
    assert all(c["status"] == "top_k" for c in result["candidates"] if c["final"] == 0)


def test_cli_next_text_and_png(tmp_path: Path) -> None:
    from gptdesk.cli.main import main

    png, svg = tmp_path / "next.png", tmp_path / "next.svg"
    out, err = io.StringIO(), io.StringIO()
    code = main(["next", "Жили-были дед и баба", "--top-p", "0.5", "--png", str(png), "--svg", str(svg)], out, err)
    assert code == 0, err.getvalue()
    assert "top-p" in out.getvalue() and "entropy" in out.getvalue()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()
