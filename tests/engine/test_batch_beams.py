"""Many sequences per llama.cpp step: beam search against transformers' generate(), batched variants, Stop."""

from __future__ import annotations

import itertools
import math
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp  # noqa: F401  (the `fast` extra is part of the test set-up: fail, never skip, without it)
import numpy as np
import pytest

from gptdesk.engine import Finished, TokenEvent, run_to_end
from gptdesk.engine.base import LeadingBeam
from gptdesk.engine.hf import TransformersEngine
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.engine.pipeline import LogitsPipeline, log_softmax
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset
from tests.server import conftest as server_fixtures

serve = server_fixtures.serve  # a real server on 127.0.0.1

PROMPTS = (
    "Однажды весною",
    "Москва — столица",
    "Жили-были дед и баба",
    "Он сказал",
    "В лесу родилась ёлочка",
    "Мой дядя самых честных правил",
    "Был холодный ясный апрельский день",
    "Все счастливые семьи похожи друг на друга",
    "Утром я вышел",
    "Она долго смотрела в окно",
)


class Engines:
    """The embedded model on the reference engine and on llama.cpp (an exact f32 copy and q8_0)."""

    def __init__(self, root: Path) -> None:
        with pytest.MonkeyPatch.context() as mp:  # the module's own cache, never the user's
            mp.setenv("GPTDESK_CACHE_DIR", str(root / "cache"))
            mp.setenv("HF_HUB_OFFLINE", "1")
            self.ref = TransformersEngine.load(None, device="cpu", dtype="float32")
            self.f32 = LlamaCppEngine.load(None, quant="f32")
            self.q8 = LlamaCppEngine.load(None, quant="q8_0")

    def close(self) -> None:
        for engine in (self.ref, self.f32, self.q8):
            engine.close()


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    e = Engines(tmp_path_factory.mktemp("beams"))
    yield e
    e.close()


def beams(n: int, **extra: Any) -> GenerationSettings:
    values: dict[str, Any] = {"max_new_tokens": 12, "num_beams": n, "num_return_sequences": min(n, 3)}
    values.update(extra)
    return get_preset("greedy").settings(**values)


def token_ids(finished: Finished, seq: int = 0) -> list[int]:
    return [t.token_id for t in finished.tokens[seq] if t.token_id >= 0]


def reference_beams(engine: TransformersEngine, prompt: str, settings: GenerationSettings) -> tuple[Any, Any]:
    """transformers' own generate() with the same arguments: sequences (new tokens) and sequence scores."""
    import torch

    prep = engine.prepare(prompt, settings)
    kwargs = engine.generate_kwargs(settings, prep.min_new, prep.max_new)
    with torch.inference_mode():
        ids = torch.tensor([prep.ids])
        out = engine._model.generate(
            ids, attention_mask=torch.ones_like(ids), return_dict_in_generate=True, output_scores=True, **kwargs
        )
    return out.sequences[:, len(prep.ids) :].tolist(), out.sequences_scores.tolist()


# -- beam search equals transformers' generate() ------------------------------------------------------


@pytest.mark.parametrize("num_beams", [2, 5, 10])
def test_greedy_beam_search_equals_transformers(engines: Engines, num_beams: int) -> None:
    """The best beam is generate()'s for at least 9 of 10 prompts; the returned beams come in its order.

    Scores: a returned beam's score is the sum of its tokens' log-probabilities over its length
    (length_penalty 1); it must equal generate()'s sequences_scores within 1e-3 (float32 sums of
    an f32 model computed by two libraries).
    """
    settings = beams(num_beams)
    same_best = 0
    for prompt in PROMPTS:
        ours = run_to_end(engines.f32.stream(prompt, settings))
        ref = run_to_end(engines.ref.stream(prompt, settings))
        same_best += token_ids(ours) == token_ids(ref)
        if [token_ids(ours, i) for i in range(len(ours.texts))] != [token_ids(ref, i) for i in range(len(ref.texts))]:
            continue
        assert ours.texts == ref.texts
        sequences, scores = reference_beams(engines.ref, prompt, settings)
        for i, expected in enumerate(scores):
            generated = token_ids(ours, i)
            assert generated == sequences[i][: len(generated)]
            lps = [t.logprob for t in ours.tokens[i] if t.token_id >= 0]
            assert all(lp is not None for lp in lps)
            score = sum(float(lp) for lp in lps if lp is not None) / len(lps)
            assert score == pytest.approx(expected, abs=1e-3), (prompt, i)
    assert same_best >= 9, f"{same_best}/10 prompts gave generate()'s best beam"


def test_length_penalty_and_early_stopping_follow_transformers(engines: Engines) -> None:
    for extra in (
        {"length_penalty": 0.0, "early_stopping": True},
        {"length_penalty": 2.0, "early_stopping": "never"},
        {"length_penalty": -1.0, "early_stopping": False},
    ):
        settings = beams(4, max_new_tokens=16, **extra)
        agree = sum(
            run_to_end(engines.f32.stream(p, settings)).texts == run_to_end(engines.ref.stream(p, settings)).texts
            for p in PROMPTS[:4]
        )
        assert agree >= 3, extra


def test_penalties_and_min_tokens_follow_transformers_per_beam(engines: Engines) -> None:
    settings = beams(4, max_new_tokens=16, repetition_penalty=3.0, no_repeat_ngram_size=2, min_new_tokens=16)
    agree = 0
    for prompt in PROMPTS[:5]:
        ours = run_to_end(engines.f32.stream(prompt, settings))
        agree += ours.texts == run_to_end(engines.ref.stream(prompt, settings)).texts
        for i in range(len(ours.texts)):
            generated = token_ids(ours, i)
            assert len(generated) == 16  # min_new_tokens = max_new_tokens: no early end-of-text
            pairs = list(itertools.pairwise(generated))
            assert len(pairs) == len(set(pairs)), "a 2-gram repeated inside a beam"
    assert agree >= 4


# -- every shared setting holds in every beam and every variant -----------------------------------------


@pytest.mark.parametrize("kind", ["variants", "beam_sampling"])
def test_settings_hold_in_every_sequence(engines: Engines, kind: str) -> None:
    base: dict[str, Any] = {"max_new_tokens": 30, "seed": 7, "no_repeat_ngram_size": 3, "min_new_tokens": 25}
    if kind == "variants":
        settings = get_preset("creative").settings(num_return_sequences=4, **base)
    else:
        settings = get_preset("sber_demo").settings(num_return_sequences=3, **base)
    prompt_ids = [t.id for t in engines.q8.tokenize("Однажды весною")]
    finished = run_to_end(engines.q8.stream("Однажды весною", settings))
    assert len(finished.texts) == settings.num_return_sequences
    for i in range(len(finished.texts)):
        generated = token_ids(finished, i)
        assert len(generated) >= 25
        assert 2 not in generated[:25]  # the end-of-text id may not come before min_new_tokens
        history = prompt_ids + generated
        grams = [tuple(history[j : j + 3]) for j in range(len(history) - 2)]
        assert len(grams) == len(set(grams)), f"sequence {i} repeats a 3-gram"


def test_stop_strings_end_every_variant(engines: Engines) -> None:
    settings = get_preset("creative").settings(max_new_tokens=60, num_return_sequences=4, seed=3, stop=[","])
    finished = run_to_end(engines.q8.stream("Однажды весною", settings))
    for text, reason, count in zip(finished.texts, finished.finish_reasons, finished.generated_tokens, strict=True):
        assert "," not in text
        if reason != "eos":
            assert reason == "stop" and count < 60


# -- batched variants: reproducible, and drawn from the sequential distribution ----------------------


def test_batched_variants_are_reproducible_and_stream_side_by_side(engines: Engines) -> None:
    settings = get_preset("creative").settings(max_new_tokens=12, min_new_tokens=12, num_return_sequences=4, seed=11)
    events = list(engines.q8.stream("Однажды весною", settings))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert run_to_end(engines.q8.stream("Однажды весною", settings)).texts == finished.texts
    order = [e.sequence for e in events if isinstance(e, TokenEvent) and e.token_id >= 0]
    assert order[:8] == [0, 1, 2, 3, 0, 1, 2, 3]  # one step of every variant, then the next
    assert finished.timings.generated_tokens == 48 and finished.timings.sequences == 4


def _chi2_critical(df: int, z: float) -> float:
    """The chi-square quantile by Wilson and Hilferty's approximation (z: the normal quantile)."""
    return float(df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3)


def test_batched_variants_draw_the_sequential_distribution(engines: Engines) -> None:
    """Chi-square goodness of fit, significance 0.001: the second token of batched variants against
    its exact distribution under sequential sampling, computed from the engine's own next-token
    scores and logits pipeline (sum over the first token of P(first) * P(second | first))."""
    prompt = "Однажды весною"
    settings = GenerationSettings.build(
        do_sample=True, temperature=1.0, top_k=4, top_p=1.0, repetition_penalty=1.0, max_new_tokens=2, min_new_tokens=2
    )
    prompt_ids = [t.id for t in engines.q8.tokenize(prompt)]
    exact: Counter[int] = Counter()
    pipeline = LogitsPipeline(settings, 2, 2, 0)
    pipeline.start(prompt_ids)
    first_ids, first_p = pipeline.warp(pipeline.process(engines.q8.next_logits(prompt_ids)))
    for t1, p1 in zip(first_ids.tolist(), first_p.tolist(), strict=True):
        second = LogitsPipeline(settings, 2, 2, 0)
        second.start([*prompt_ids, t1])
        ids2, p2 = second.warp(second.process(engines.q8.next_logits([*prompt_ids, t1])))
        for t2, p in zip(ids2.tolist(), p2.tolist(), strict=True):
            exact[t2] += p1 * p
    draws: Counter[int] = Counter()
    for seed in range(100):
        finished = run_to_end(engines.q8.stream(prompt, settings.updated(num_return_sequences=4, seed=seed)))
        for i in range(4):
            draws[token_ids(finished, i)[1]] += 1
    total = sum(draws.values())
    assert total == 400 and set(draws) <= set(exact)
    # Pool the rare outcomes (expected count under 5) into one cell, as the test requires.
    cells: list[tuple[float, int]] = []
    rare_e, rare_o = 0.0, 0
    for token, p in exact.items():
        if p * total >= 5:
            cells.append((p * total, draws[token]))
        else:
            rare_e, rare_o = rare_e + p * total, rare_o + draws[token]
    if rare_e > 0:
        cells.append((rare_e, rare_o))
    statistic = sum((o - e) ** 2 / e for e, o in cells)
    df = len(cells) - 1
    assert df >= 3
    assert statistic < _chi2_critical(df, 3.090), f"chi2 = {statistic:.1f} with {df} degrees of freedom"


# -- Stop -----------------------------------------------------------------------------------------------


def test_stop_ends_a_beam_search_within_one_step_and_keeps_the_best(engines: Engines) -> None:
    settings = get_preset("sber_demo").settings(max_new_tokens=80, seed=1)
    cancel = threading.Event()
    leads: list[LeadingBeam] = []
    finished: Finished | None = None
    for event in engines.q8.stream("Однажды весною", settings, cancel):
        if isinstance(event, LeadingBeam):
            leads.append(event)
            if event.step == 5:
                cancel.set()
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    assert max(e.step for e in leads) <= 6  # the step running when Stop came, and no other
    assert finished.finish_reason == "cancelled"
    assert finished.text and finished.text == leads[-1].text


def test_stop_ends_a_batch_within_one_step(engines: Engines) -> None:
    settings = get_preset("creative").settings(max_new_tokens=80, num_return_sequences=4, seed=1)
    cancel = threading.Event()
    tokens = 0
    after = 0
    finished: Finished | None = None
    for event in engines.q8.stream("Однажды весною", settings, cancel):
        if isinstance(event, TokenEvent) and event.token_id >= 0:
            tokens += 1
            if cancel.is_set():
                after += 1
            elif tokens == 9:
                cancel.set()
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    assert after <= 3  # the rest of the step under way, then nothing
    assert set(finished.finish_reasons) <= {"cancelled", "eos", "stop"}
    assert sum(finished.generated_tokens) == tokens


def test_leading_beam_is_streamed_while_the_search_runs(engines: Engines) -> None:
    settings = get_preset("sber_demo").settings(max_new_tokens=20, seed=2)
    events = list(engines.q8.stream("Однажды весною", settings))
    leads = [e for e in events if isinstance(e, LeadingBeam)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert len(leads) >= 5
    assert [e.step for e in leads] == sorted(e.step for e in leads)
    assert leads[-1].text == finished.text
    # A token's log-probability in a beam is the model's distribution after the settings' penalties.
    assert all(t.logprob is not None and t.logprob <= 0 for t in finished.tokens[0] if t.token_id >= 0)


# -- timings and log-probabilities mean the same on all three engines -----------------------------------


def test_timings_and_logprobs_mean_the_same_on_every_engine(engines: Engines, serve: Any) -> None:
    """tokens/s = tokens of all sequences after each one's first, over the time after the first step;
    a token's log-probability = log-softmax of the scores after repetition penalty, no-repeat n-grams
    and min length (before temperature, top-k, top-p), recomputed here from raw next-token scores."""
    from gptdesk.engine.remote.engine import RemoteEngine

    server = serve(engines.ref)
    settings = get_preset("balanced").settings(max_new_tokens=8, min_new_tokens=8, seed=5, repetition_penalty=1.3)
    prompt = "Однажды весною"
    prompt_ids = [t.id for t in engines.ref.tokenize(prompt)]
    with RemoteEngine.connect(server.url) as remote:
        for engine in (engines.ref, engines.f32, remote):
            for n in (1, 2):
                run = run_to_end(engine.stream(prompt, settings.updated(num_return_sequences=n)))
                t = run.timings
                assert t.generated_tokens == sum(run.generated_tokens) == 8 * n, engine.name
                assert t.sequences == n, engine.name
                if t.tokens_per_second is not None:
                    assert t.first_token is not None
                    expected = (t.generated_tokens - n) / (t.total - t.first_token)
                    assert t.tokens_per_second == pytest.approx(expected), engine.name
                for i in range(n):
                    generated = token_ids(run, i)
                    pipeline = LogitsPipeline(settings, 2, 8, 0)
                    pipeline.start(prompt_ids)
                    for k, token in enumerate(generated):
                        raw = engines.ref.next_logits(prompt_ids + generated[:k])
                        expected_lp = float(log_softmax(pipeline.process(raw))[token])
                        pipeline.accept(token)
                        got = run.tokens[i][k].logprob
                        assert got is not None, engine.name
                        assert got == pytest.approx(expected_lp, abs=2e-3), (engine.name, n, i, k)


def test_sampled_token_logprob_is_never_above_zero(engines: Engines) -> None:
    finished = run_to_end(engines.q8.stream("Утром", get_preset("creative").settings(max_new_tokens=5, seed=1)))
    assert np.all(np.array([t.logprob for t in finished.tokens[0] if t.token_id >= 0]) <= 0)


# -- the CLI: the leading beam live on a terminal, only the final text when piped ------------------------


class _Terminal:
    """A text stream that says it is a terminal."""

    def __init__(self) -> None:
        import io

        self.buffer = io.StringIO()

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_cli_shows_the_leading_beam_on_a_terminal_and_only_the_text_when_piped(engines: Engines) -> None:
    import io

    from gptdesk.cli.main import main

    argv = ["--lang", "en", "generate", "Однажды весною", "--preset", "sber_demo", "--max-new-tokens", "15"]
    argv += ["--seed", "4"]
    piped, err = io.StringIO(), io.StringIO()
    assert main(argv, piped, err) == 0, err.getvalue()
    assert "\x1b" not in piped.getvalue()
    assert piped.getvalue().startswith("Однажды весною")
    assert "0.0 tok/s" not in err.getvalue() and "on llamacpp" in err.getvalue()
    terminal = _Terminal()
    assert main(argv, terminal, io.StringIO()) == 0  # type: ignore[arg-type]
    shown = terminal.buffer.getvalue()
    assert shown.count("\x1b[J") >= 2  # the leading beam was rewritten in place
    assert shown.endswith(piped.getvalue())  # and the final text stays, as when piped


# -- reproducibility: records from the older core say so -----------------------------------------------


def test_history_records_say_when_an_older_core_made_them(tmp_path: Path) -> None:
    from gptdesk.engine.core import CORE_VERSION
    from gptdesk.history import HistoryStore
    from gptdesk.history.store import CORE_KEY

    store = HistoryStore(tmp_path / "history.sqlite3")
    try:
        beams = get_preset("sber_demo").settings()
        single = get_preset("creative").settings()
        new_id = store.begin("Однажды", beams, seed=1, info=None, engine="auto", kind="new")
        record = store.get(new_id)
        assert record.versions[CORE_KEY] == str(CORE_VERSION)
        assert record.reproducibility_note() is None
        old = record.__class__(**{**record.__dict__, "versions": {"gptdesk": "0.1.0"}})
        note = old.reproducibility_note()
        assert note is not None and "older version" in note.en and "старой версией" in note.ru
        assert old.__class__(**{**old.__dict__, "engine": "transformers"}).reproducibility_note() is None
        assert old.__class__(**{**old.__dict__, "settings": single.model_dump()}).reproducibility_note() is None
    finally:
        store.close()


def test_auto_runs_many_sequences_on_the_batch_quantization_and_says_so(engines: Engines) -> None:
    from gptdesk.engine import Notice, load_engine
    from gptdesk.engine.auto import BATCH_QUANT

    engine = load_engine(None, engine="auto")
    try:
        # The window's cost line, before the batch copy is loaded: estimated on its type all the same.
        ahead = engine.cost(5, get_preset("sber_demo").settings())
        assert ahead.dtype == BATCH_QUANT and engine.cost(5, get_preset("greedy").settings()).dtype == "q8_0"
        events = list(engine.stream("Однажды весною", get_preset("sber_demo").settings(max_new_tokens=4, seed=1)))
        notices = [e for e in events if isinstance(e, Notice) and e.code == "batch_quant"]
        assert len(notices) == 1 and BATCH_QUANT in notices[0].text.en and BATCH_QUANT in notices[0].text.ru
        assert engine.info.dtype == BATCH_QUANT
        cost = engine.check("Однажды весною", get_preset("sber_demo").settings())
        assert cost is not None and cost.dtype == BATCH_QUANT and cost.engine == "llamacpp"
        assert engine.cost(5, get_preset("sber_demo").settings()).dtype == BATCH_QUANT  # the loaded batch copy
        run_to_end(engine.stream("Однажды весною", get_preset("greedy").settings(max_new_tokens=4)))
        assert engine.info.dtype == "q8_0"
    finally:
        engine.close()
