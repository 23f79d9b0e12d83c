"""The llama.cpp engine against the transformers reference, on tiny random GPT-2 models built in the test."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import llama_cpp  # noqa: F401  (the `fast` extra is part of the test set-up: fail, never skip, without it)
import numpy as np
import pytest

from gptdesk.engine import Finished, Notice, TokenEvent, load_engine, run_to_end
from gptdesk.engine.auto import AutoEngine
from gptdesk.engine.hf import TransformersEngine
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.engine.pipeline import LogitsPipeline
from gptdesk.errors import EngineError, InvalidInputError
from gptdesk.models.gguf.cache import manifest_path, sampled_digest
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.locate import resolve
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset
from tests.models.gguf.test_convert import build_scaled_gpt2

PROMPTS = ("Москва — столица", "Жили-были дед и баба", "Hello world, this is")


def greedy(n: int, **extra: object) -> GenerationSettings:
    # min_new_tokens = n: a random model may draw its end-of-text token early; these runs compare
    # n tokens each.
    return get_preset("greedy").settings(max_new_tokens=n, min_new_tokens=n, **extra)


def ids(finished: Finished, seq: int = 0) -> list[int]:
    return [t.token_id for t in finished.tokens[seq] if t.token_id >= 0]


class Models:
    """Reference and fast engines on the same tiny models, loaded once for the module."""

    def __init__(self, root: Path) -> None:
        with pytest.MonkeyPatch.context() as mp:  # the module's own cache, never the user's
            mp.setenv("GPTDESK_CACHE_DIR", str(root / "cache"))
            mp.setenv("HF_HUB_OFFLINE", "1")
            # Varied text whose best token leads by a margin f16 rounding cannot cross.
            self.varied_dir = build_scaled_gpt2(root / "varied", tied=False, scale=1.0)
            # Repeats its last token forever: what no-repeat n-grams and repetition penalty act on.
            self.loop_dir = build_scaled_gpt2(root / "loop", tied=True, scale=3.0)
            self.ref = TransformersEngine.load(self.varied_dir, device="cpu", dtype="float32")
            self.f16 = LlamaCppEngine.load(self.varied_dir, quant="f16")
            self.q8 = LlamaCppEngine.load(self.varied_dir, quant="q8_0")
            self.loop_ref = TransformersEngine.load(self.loop_dir, device="cpu", dtype="float32")
            self.loop_fast = LlamaCppEngine.load(self.loop_dir, quant="f16")

    def close(self) -> None:
        for engine in (self.ref, self.f16, self.q8, self.loop_ref, self.loop_fast):
            engine.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    m = Models(tmp_path_factory.mktemp("llamacpp"))
    yield m
    m.close()


# -- agreement with the reference engine --------------------------------------------------------


#: Two candidates closer than this (in log-probability) may swap between CPUs: llama.cpp's AVX2 and
#: AVX-512 kernels round differently (docs/fast-engine.md), so greedy paths may part there.
NEAR_TIE = 0.02


def steps_before_a_near_tie(fast: Finished, ref: Finished) -> int:
    """The greedy steps both engines agree on, token for token; where they part, the reference's two best
    candidates must be within NEAR_TIE of each other (a rounding difference), else the test fails."""
    for step, (a, b) in enumerate(zip(fast.tokens[0], ref.tokens[0], strict=True)):
        if a.token_id != b.token_id:
            best = sorted((x.logprob for x in b.alternatives), reverse=True)[:2]
            assert len(best) == 2 and best[0] - best[1] <= NEAR_TIE, (step, a.piece, b.piece, best)
            return step
    return len(ref.tokens[0])


@pytest.mark.parametrize("prompt", PROMPTS)
def test_f16_greedy_tokens_equal_the_reference(models: Models, prompt: str) -> None:
    ref = run_to_end(models.ref.stream(prompt, greedy(64), top_alternatives=2))
    fast = run_to_end(models.f16.stream(prompt, greedy(64), top_alternatives=2))
    assert len(ids(fast)) == len(ids(ref)) == 64
    assert fast.prompt_tokens == ref.prompt_tokens
    agreed = steps_before_a_near_tie(fast, ref)
    if agreed == 64:
        assert fast.text == ref.text
    for a, b in zip(fast.tokens[0][:agreed], ref.tokens[0][:agreed], strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=0.02)
        assert a.piece == b.piece
        # The two alternatives in the same order, unless they are themselves a near tie.
        lps = sorted((x.logprob for x in b.alternatives), reverse=True)
        if len(lps) < 2 or lps[0] - lps[1] > NEAR_TIE:
            assert [x.token_id for x in a.alternatives] == [x.token_id for x in b.alternatives]


def test_a_parting_that_is_no_near_tie_fails(models: Models) -> None:
    """The check above can fail: a path forced off the reference's clear choice is caught."""
    ref = run_to_end(models.ref.stream(PROMPTS[0], greedy(8), top_alternatives=2))
    other = run_to_end(models.ref.stream(PROMPTS[1], greedy(8), top_alternatives=2))
    assert ids(other) != ids(ref)
    with pytest.raises(AssertionError):
        steps_before_a_near_tie(other, ref)


def test_q8_0_agrees_on_at_least_90_percent_of_greedy_steps(models: Models) -> None:
    agree = total = 0
    for prompt in PROMPTS:
        ref = run_to_end(models.ref.stream(prompt, greedy(64)))
        prompt_ids = [t.id for t in models.ref.tokenize(prompt)]
        path = ids(ref)
        # Each step is scored after the reference's own tokens (teacher forcing), so one early
        # disagreement does not turn every later step into a disagreement.
        for step, expected in enumerate(path):
            logits = models.q8.next_logits(prompt_ids + path[:step])
            agree += int(np.argmax(logits)) == expected
            total += 1
    assert total == 64 * len(PROMPTS)
    assert agree / total >= 0.9, f"q8_0 chose the reference's token at {agree} of {total} steps"


def test_token_events_carry_logprobs_and_sorted_alternatives(models: Models) -> None:
    events = list(models.q8.stream("Привет", greedy(12), top_alternatives=5))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert "".join(t.text for t in tokens) == finished.text
    assert len(tokens) == 12 == finished.generated_tokens[0]
    for t in tokens:
        assert t.logprob is not None and t.logprob <= 0
        assert len(t.alternatives) == 5
        assert t.alternatives[0].token_id == t.token_id  # greedy takes the most likely
        assert t.alternatives[0].logprob == pytest.approx(t.logprob)
        assert [a.logprob for a in t.alternatives] == sorted((a.logprob for a in t.alternatives), reverse=True)
        assert all(a.text == models.q8.piece(a.token_id) for a in t.alternatives)


def test_prompt_is_cut_to_the_context_like_the_reference(models: Models) -> None:
    prompt = "Жили-были дед и баба, и была у них курочка Ряба. " * 20
    settings = greedy(16)
    ref_events = list(models.ref.stream(prompt, settings))
    fast_events = list(models.f16.stream(prompt, settings))
    ref_notices = [e for e in ref_events if isinstance(e, Notice)]
    fast_notices = [e for e in fast_events if isinstance(e, Notice)]
    assert [n.code for n in fast_notices] == [n.code for n in ref_notices] == ["prompt_truncated"]
    assert fast_notices[0].text == ref_notices[0].text
    ref, fast = ref_events[-1], fast_events[-1]
    assert isinstance(ref, Finished) and isinstance(fast, Finished)
    assert fast.prompt_truncated_tokens == ref.prompt_truncated_tokens > 0
    # Cut in steps of half the room beside the answer (56 of 112): what is left fits, and holds over half of it.
    assert fast.prompt_truncated_tokens % 56 == 0
    assert 128 - 16 - 56 < fast.prompt_tokens <= 128 - 16
    # The window's cost line counts the tokens the model will read (the estimate of its cache), not the text's.
    total = fast.prompt_tokens + fast.prompt_truncated_tokens
    assert models.f16.cost(total, settings).prompt_tokens == fast.prompt_tokens
    assert ids(fast) == ids(ref)


def test_continuing_a_text_that_outgrew_the_context_reads_only_what_is_new(tiny_model_dir: Path) -> None:
    """The cut stays where it was while the text grows, so a Continue of a long text reuses the kept cache
    (cutting the least that fits would move every token's position, and each Continue would read it all)."""
    engine = LlamaCppEngine.load(tiny_model_dir, quant="f16")
    try:
        text = "Жили-были дед и баба, и была у них курочка Ряба. " * 12
        first = run_to_end(engine.stream(text, greedy(4)))
        assert first.prompt_truncated_tokens > 0
        before = engine.store.stats.decoded_tokens
        second = run_to_end(engine.stream(text + first.text, greedy(4)))
        assert second.prompt_truncated_tokens == first.prompt_truncated_tokens  # the same cut
        # Only the join (the 4 tokens produced, and a token or two the tokenizer may split anew) is decoded
        # before the 4 new tokens.
        assert engine.store.stats.decoded_tokens - before <= 4 + 2 + 4
    finally:
        engine.close()


# -- stopping -----------------------------------------------------------------------------------


def test_stop_takes_effect_within_one_token(models: Models) -> None:
    cancel = threading.Event()
    seen = 0
    finished = None
    for event in models.q8.stream("Жили-были", greedy(60), cancel):
        if isinstance(event, TokenEvent):
            seen += 1
            if seen == 5:
                cancel.set()
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    assert finished.finish_reason == "cancelled"
    assert 5 <= finished.generated_tokens[0] <= 6
    assert seen <= 6


def test_abandoned_stream_frees_the_engine(models: Models) -> None:
    stream = models.q8.stream("Жили-были", greedy(60))
    for event in stream:
        if isinstance(event, TokenEvent):
            break
    stream.close()  # type: ignore[attr-defined]
    # The next generation starts from a clean cache and is not blocked by the abandoned one.
    again = run_to_end(models.q8.stream("Москва — столица", greedy(8)))
    first = run_to_end(models.q8.stream("Москва — столица", greedy(8)))
    assert ids(again) == ids(first)


# -- the shared settings have the same effect on both engines -----------------------------------


def test_stop_string_ends_the_text_on_both_engines(models: Models) -> None:
    full = run_to_end(models.ref.stream("Москва — столица", greedy(40)))
    text = full.text
    # A stop string taken from the middle of the output, one that does not occur earlier.
    for start in range(len(text) // 2, len(text) - 3):
        stop = text[start : start + 3]
        if text.find(stop) == start and stop.strip():
            break
    else:  # pragma: no cover - a 40-token text always has such a place
        pytest.fail(f"no usable stop string in {text!r}")
    settings = get_preset("greedy").settings(max_new_tokens=40, stop=[stop])
    ref = run_to_end(models.ref.stream("Москва — столица", settings))
    fast = run_to_end(models.f16.stream("Москва — столица", settings))
    assert ref.finish_reason == fast.finish_reason == "stop"
    assert fast.text == ref.text == text[:start]
    assert stop not in fast.text


def test_max_new_tokens_is_the_same_length_on_both(models: Models) -> None:
    for n in (1, 7):
        ref = run_to_end(models.ref.stream("Привет", greedy(n)))
        fast = run_to_end(models.q8.stream("Привет", greedy(n)))
        assert ref.generated_tokens == fast.generated_tokens == [n]
        assert ref.finish_reason == fast.finish_reason == "length"


def test_no_repeat_ngram_size_never_repeats_an_ngram(models: Models) -> None:
    prompt = "Москва — столица"
    prompt_ids = [t.id for t in models.loop_ref.tokenize(prompt)]
    looping = run_to_end(models.loop_fast.stream(prompt, greedy(30)))
    assert len(set(ids(looping))) == 1  # without the setting the model repeats one token
    for engine in (models.loop_ref, models.loop_fast):
        for n in (1, 2, 3):
            out = ids(run_to_end(engine.stream(prompt, greedy(30, no_repeat_ngram_size=n))))
            seq = prompt_ids + out
            grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
            assert len(grams) == len(set(grams)), f"{engine.name} repeated an {n}-gram"


def test_repetition_penalty_breaks_the_loop_on_both(models: Models) -> None:
    prompt = "Жили-были"
    for engine in (models.loop_ref, models.loop_fast):
        plain = ids(run_to_end(engine.stream(prompt, greedy(30))))
        penalised = ids(run_to_end(engine.stream(prompt, greedy(30, repetition_penalty=3.0))))
        assert len(set(plain)) == 1
        assert len(set(penalised)) > 1, engine.name
    ref = ids(run_to_end(models.loop_ref.stream(prompt, greedy(30, repetition_penalty=3.0))))
    fast = ids(run_to_end(models.loop_fast.stream(prompt, greedy(30, repetition_penalty=3.0))))
    assert fast[:10] == ref[:10]


def test_min_new_tokens_holds_back_the_end_of_text(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    # A model that always wants to stop: its final layer norm outputs one fixed vector, and the
    # end-of-text token's output row points along it.
    folder = build_scaled_gpt2(tmp_path / "eos", tied=False, scale=1.0)
    state = load_file(folder / "model.safetensors")
    fixed = torch.ones(64).half().float()
    state["transformer.ln_f.weight"] = torch.zeros(64)
    state["transformer.ln_f.bias"] = fixed
    state["lm_head.weight"][2] = fixed
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    ref = TransformersEngine.load(folder, device="cpu", dtype="float32")
    fast = LlamaCppEngine.load(folder, quant="q8_0")
    try:
        for engine in (ref, fast):
            stops_at_once = run_to_end(engine.stream("Привет", get_preset("greedy").settings(max_new_tokens=20)))
            assert ids(stops_at_once) == [2]
            assert stops_at_once.finish_reason == "eos"
            held = run_to_end(
                engine.stream("Привет", get_preset("greedy").settings(max_new_tokens=20, min_new_tokens=5))
            )
            assert held.finish_reason == "eos"
            assert len(ids(held)) == 6 and ids(held)[-1] == 2 and 2 not in ids(held)[:5]
    finally:
        ref.close()
        fast.close()


def test_same_seed_same_text_other_seed_other_text(models: Models) -> None:
    settings = get_preset("creative").settings(max_new_tokens=15, seed=1234)
    first = run_to_end(models.q8.stream("Однажды", settings))
    second = run_to_end(models.q8.stream("Однажды", settings))
    other = run_to_end(models.q8.stream("Однажды", settings.updated(seed=4321)))
    assert first.text == second.text
    assert first.seed == 1234
    assert other.text != first.text
    drawn = run_to_end(models.q8.stream("Однажды", settings.updated(seed=None)))
    again = run_to_end(models.q8.stream("Однажды", settings.updated(seed=drawn.seed)))
    assert again.text == drawn.text


def test_several_sequences_share_the_prompt_and_differ(models: Models) -> None:
    settings = get_preset("creative").settings(max_new_tokens=10, min_new_tokens=10, num_return_sequences=3, seed=5)
    events = list(models.q8.stream("Однажды", settings))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert len(finished.texts) == 3 and finished.generated_tokens == [10, 10, 10]
    assert len(set(finished.texts)) > 1
    for seq in range(3):
        streamed = "".join(e.text for e in events if isinstance(e, TokenEvent) and e.sequence == seq)
        assert streamed == finished.texts[seq]
    assert run_to_end(models.q8.stream("Однажды", settings)).texts == finished.texts
    # Each sequence starts from the prompt alone, with its own random stream: the first is what a
    # single run with the same seed draws.
    single = run_to_end(models.q8.stream("Однажды", settings.updated(num_return_sequences=1)))
    assert single.text == finished.texts[0]


def test_top_k_1_sampling_is_greedy_on_both(models: Models) -> None:
    expected = ids(run_to_end(models.ref.stream("Однажды", greedy(20))))
    sampled = get_preset("creative").settings(max_new_tokens=20, min_new_tokens=20, top_k=1, repetition_penalty=1.0)
    for engine in (models.ref, models.f16):
        for seed in (1, 2):
            assert ids(run_to_end(engine.stream("Однажды", sampled.updated(seed=seed)))) == expected


def test_sampling_draws_from_the_same_distribution(models: Models) -> None:
    """temperature, top_k and top_p shape the first token's distribution alike on both engines."""
    import torch
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    prompt = "Однажды"
    settings = GenerationSettings.build(
        do_sample=True, temperature=2.5, top_k=6, top_p=0.9, repetition_penalty=1.0, max_new_tokens=1, min_new_tokens=1
    )
    prompt_ids = [t.id for t in models.ref.tokenize(prompt)]
    with torch.inference_mode():
        logits = models.ref._model(torch.tensor([prompt_ids])).logits[:, -1, :].float()
    warpers = LogitsProcessorList([TemperatureLogitsWarper(2.5), TopKLogitsWarper(6), TopPLogitsWarper(0.9)])
    expected = torch.softmax(warpers(torch.tensor([prompt_ids]), logits), dim=-1)[0]
    allowed = {int(i) for i in torch.nonzero(expected).flatten()}
    assert 2 < len(allowed) <= 6  # top_p really cut the top 6, and more than one token remains
    runs = 300
    for engine in (models.ref, models.f16):
        counts = Counter(ids(run_to_end(engine.stream(prompt, settings.updated(seed=seed))))[0] for seed in range(runs))
        assert set(counts) <= allowed, engine.name
        for token in allowed:
            # 300 draws: three standard deviations of a frequency are at most 0.087.
            assert counts[token] / runs == pytest.approx(float(expected[token]), abs=0.09), (engine.name, token)


@pytest.mark.parametrize(
    "values",
    [
        {"repetition_penalty": 1.3},
        {"repetition_penalty": 0.7},
        {"no_repeat_ngram_size": 2},
        {"no_repeat_ngram_size": 3, "repetition_penalty": 1.2},
        {"temperature": 0.7, "top_k": 40},
        {"top_p": 0.8},
        {"temperature": 1.3, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.1},
    ],
)
def test_logits_pipeline_matches_transformers_processors(values: dict[str, float]) -> None:
    """Every setting applied to the same scores gives transformers' numbers exactly."""
    import torch
    from transformers import (
        MinNewTokensLengthLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    rng = np.random.default_rng(7)
    vocab = 500
    off: dict[str, object] = {"do_sample": True, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0}
    settings = GenerationSettings.build(**{**off, **values})
    # A history with repeats, so n-grams and penalties have something to act on.
    prompt = [int(x) for x in rng.integers(0, 20, size=12)]
    generated = [int(x) for x in rng.integers(0, 20, size=3)]
    pipeline = LogitsPipeline(settings, eos_id=2, min_new=5, seed=0)
    pipeline.start(prompt)
    for token in generated:
        pipeline.accept(token)
    for _ in range(5):
        logits = rng.normal(0, 3, size=vocab).astype(np.float32)
        history = torch.tensor([pipeline.history])
        expected = torch.tensor(logits)[None, :]
        if settings.repetition_penalty != 1.0:
            expected = RepetitionPenaltyLogitsProcessor(settings.repetition_penalty)(history, expected)
        if settings.no_repeat_ngram_size:
            expected = NoRepeatNGramLogitsProcessor(settings.no_repeat_ngram_size)(history, expected)
        expected = MinNewTokensLengthLogitsProcessor(len(prompt), 5, 2)(history, expected)
        processed = pipeline.process(logits)
        np.testing.assert_array_equal(processed, expected[0].numpy())
        if settings.temperature != 1.0:
            expected = TemperatureLogitsWarper(settings.temperature)(history, expected)
        if settings.top_k:
            expected = TopKLogitsWarper(settings.top_k)(history, expected)
        if settings.top_p < 1.0:
            expected = TopPLogitsWarper(settings.top_p)(history, expected)
        probs = torch.softmax(expected, dim=-1)[0].numpy()
        candidates, p = pipeline.warp(processed)
        assert set(candidates.tolist()) == set(np.flatnonzero(probs).tolist())
        np.testing.assert_allclose(p, probs[candidates], rtol=1e-5, atol=1e-7)
        token = pipeline.choose(processed)
        assert token in set(candidates.tolist())
        pipeline.accept(token)


# -- routing: the fast engine by default, the reference for beam search ---------------------------


def test_auto_runs_beam_search_on_llama_cpp(models: Models) -> None:
    engine = load_engine(models.varied_dir, engine="auto")
    try:
        assert isinstance(engine, AutoEngine)
        assert engine.capabilities.beam_search and engine.capabilities.batched
        plain = list(engine.stream("Привет", greedy(8)))
        assert not [e for e in plain if isinstance(e, Notice)]
        assert engine.info.engine == "llamacpp"
        beams = get_preset("greedy").settings(max_new_tokens=8, min_new_tokens=8, num_beams=3)
        events = list(engine.stream("Привет", beams))
        assert not [e for e in events if isinstance(e, Notice)]
        assert engine.info.engine == "llamacpp"
        finished = events[-1]
        assert isinstance(finished, Finished)
        assert finished.text == run_to_end(models.ref.stream("Привет", beams)).text
    finally:
        engine.close()


def test_auto_with_a_torch_dtype_is_the_reference(models: Models) -> None:
    engine = load_engine(models.varied_dir, engine="auto", dtype="bfloat16")
    try:
        assert isinstance(engine, TransformersEngine)
        assert engine.info.engine == "transformers" and engine.info.dtype == "bfloat16"
    finally:
        engine.close()


def test_bad_options_name_the_value_and_the_fix(models: Models) -> None:
    with pytest.raises(InvalidInputError) as err:
        load_engine(models.varied_dir, engine="llamacpp", dtype="float32")
    assert "float32" in err.value.text.en and "--engine transformers" in err.value.text.en
    with pytest.raises(InvalidInputError) as err:
        load_engine(models.varied_dir, engine="llamacpp", device="cuda")
    assert "cuda" in err.value.text.en and "CPU" in err.value.text.en
    with pytest.raises(InvalidInputError) as err:
        load_engine(models.varied_dir, engine="llamacpp", quant="q2")
    assert "q2" in err.value.text.en
    with pytest.raises(InvalidInputError) as err:
        load_engine(models.varied_dir, engine="vllm")
    assert "vllm" in err.value.text.en and "llamacpp" in err.value.text.en


def test_closed_engine_says_so(tmp_path: Path) -> None:
    engine = LlamaCppEngine.load(build_scaled_gpt2(tmp_path / "m", tied=False, scale=1.0), quant="q4_0")
    assert engine.info.dtype == "q4_0" and engine.info.device == "cpu" and engine.info.engine == "llamacpp"
    engine.close()
    with pytest.raises(EngineError):
        run_to_end(engine.stream("Привет", greedy(3)))


# -- the cache from the engine's side ------------------------------------------------------------


def test_second_load_reuses_the_converted_file(tmp_path: Path) -> None:
    folder = build_scaled_gpt2(tmp_path / "m", tied=False, scale=1.0)
    first = LlamaCppEngine.load(folder, quant="q8_0")
    first.close()
    second = LlamaCppEngine.load(folder, quant="q8_0")
    try:
        assert first.converted_now and not second.converted_now
        assert second.gguf == first.gguf
    finally:
        second.close()


def test_file_that_llama_cpp_refuses_is_converted_again(tmp_path: Path) -> None:
    folder = build_scaled_gpt2(tmp_path / "m", tied=False, scale=1.0)
    resolved = resolve(folder)
    path = ensure_gguf(resolved, "q8_0").path
    # Damage the tensor directory after the header and record the damaged file as if it were the
    # good one: only llama.cpp itself can tell.
    data = bytearray(path.read_bytes())
    marker = data.find(b"blk.0.attn_qkv.weight")
    data[marker : marker + 21] = b"blk.0.attn_XXX.weight"
    path.write_bytes(bytes(data))
    manifest = json.loads(manifest_path(path).read_text())
    manifest["sampled_sha256"] = sampled_digest(path)
    manifest_path(path).write_text(json.dumps(manifest))
    assert ensure_gguf(resolved, "q8_0").reused  # the quick check cannot see it
    engine = LlamaCppEngine.load(folder, quant="q8_0")
    try:
        assert engine.converted_now
        assert len(ids(run_to_end(engine.stream("Привет", greedy(4))))) == 4
    finally:
        engine.close()


# -- the command line ----------------------------------------------------------------------------


def test_cli_says_which_engine_ran_and_why() -> None:
    from gptdesk.cli.main import main
    from gptdesk.i18n import set_language

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        try:
            code = main(["--lang", "en", "generate", "Привет", *argv], out, err)
        finally:
            set_language(None)  # --lang fixes the language for the whole process
        return code, out.getvalue(), err.getvalue()

    code, _, err = run("--engine", "llamacpp", "--greedy", "--max-new-tokens", "5")
    assert code == 0, err
    assert "on llamacpp cpu q8_0" in err
    code, out, err = run("--greedy", "--num-beams", "2", "--max-new-tokens", "5", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["engine"] == "llamacpp"  # beam search no longer leaves the fast engine
    assert not any("num_beams" in n for n in result["notices"])


def test_bench_rejects_unknown_rows_with_the_choices() -> None:
    from gptdesk.cli.main import main
    from gptdesk.i18n import set_language

    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(["--lang", "en", "bench", "--shapes", "small", "--configs", "q8_0,q3_k"], out, err)
    finally:
        set_language(None)
    assert code == 2
    assert "q3_k" in err.getvalue() and "q4_0" in err.getvalue()
    assert out.getvalue() == ""  # refused before measuring anything
