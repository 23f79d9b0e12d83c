"""Tests for the memory and time estimate and the refusal check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gptdesk.errors import InsufficientMemoryError
from gptdesk.models.cost import (
    GENERATE_WORKSPACE_BYTES,
    KV_RESIDENT_FACTOR,
    RUNTIME_OVERHEAD_BYTES,
    CostEstimate,
    available_memory,
    check_affordable,
    estimate,
    fits_in_memory,
    format_bytes,
    kv_cache_size,
)
from gptdesk.models.shape import DTYPE_BYTES, ModelShape

RUGPT3_LARGE = ModelShape(n_layer=24, n_embd=1536, n_head=16, n_positions=2048, vocab_size=50257)
RUGPT3_MEDIUM = ModelShape(n_layer=24, n_embd=1024, n_head=16, n_positions=2048, vocab_size=50257)
RUGPT3_SMALL = ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=2048, vocab_size=50264)
GPT2 = ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
TINY = ModelShape(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=99)

GB = 1_000_000_000


def cost(shape: ModelShape = RUGPT3_LARGE, **settings: object) -> CostEstimate:
    args: dict[str, object] = {"prompt_tokens": 20, "max_new_tokens": 100}
    args.update(settings)
    return estimate(shape, **args)  # type: ignore[arg-type]


# --- parameter counts -------------------------------------------------------------------------


def test_gpt2_param_count_is_exact() -> None:
    # The figure transformers reports for GPT2LMHeadModel("gpt2").num_parameters().
    assert GPT2.param_count == 124_439_808


@pytest.mark.parametrize("shape", [GPT2, RUGPT3_SMALL, RUGPT3_LARGE], ids=["gpt2", "small", "large"])
def test_full_size_param_counts_match_transformers(shape: ModelShape) -> None:
    import torch
    import transformers

    config = transformers.GPT2Config(
        n_layer=shape.n_layer,
        n_embd=shape.n_embd,
        n_head=shape.n_head,
        n_positions=shape.n_positions,
        vocab_size=shape.vocab_size,
    )
    # On the meta device the model has shapes but no storage: free to build at full size.
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(config)
    assert model.num_parameters() == shape.param_count


@pytest.mark.parametrize(
    ("shape", "millions"),
    [(RUGPT3_LARGE, 760), (RUGPT3_MEDIUM, 356), (RUGPT3_SMALL, 125)],
)
def test_rugpt3_param_counts(shape: ModelShape, millions: int) -> None:
    assert shape.param_count == pytest.approx(millions * 1e6, rel=0.01)


@pytest.mark.parametrize("n_inner", [None, 48])
def test_tiny_param_count_matches_transformers(n_inner: int | None) -> None:
    import transformers

    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=99, n_inner=n_inner)
    model = transformers.GPT2LMHeadModel(config)
    shape = ModelShape.from_config(config)
    assert shape == ModelShape(2, 32, 4, 64, 99, n_inner)
    assert shape.param_count == model.num_parameters()
    # The tied LM head is one tensor, not a second copy of the embeddings.
    assert sum(p.numel() for p in model.parameters()) == shape.param_count


def test_from_config_reads_a_config_json_dict() -> None:
    config = {"n_layer": 24, "n_embd": 1536, "n_head": 16, "n_ctx": 2048, "vocab_size": 50257}
    assert ModelShape.from_config(config) == RUGPT3_LARGE
    assert ModelShape.from_config({**config, "n_positions": 1024}).n_positions == 1024
    with pytest.raises(ValueError, match="n_embd"):
        ModelShape.from_config({"n_layer": 2})


# --- memory terms -----------------------------------------------------------------------------


def test_kv_cache_formula() -> None:
    raw = 2 * 24 * 1 * 120 * 1536 * 4
    assert kv_cache_size(RUGPT3_LARGE, rows=1, seq_len=120) == raw
    assert kv_cache_size(RUGPT3_LARGE, rows=1, seq_len=120, dtype="bfloat16") == raw // 2
    c = cost(num_beams=1, do_sample=False)
    assert c.batch == 1
    assert c.seq_len == 120
    assert c.kv_cache_bytes == int(raw * KV_RESIDENT_FACTOR)


def test_beams_scale_the_cache() -> None:
    one = cost(num_beams=1, do_sample=False)
    ten = cost(num_beams=10, do_sample=False)
    assert ten.batch == 10
    assert ten.kv_cache_bytes == pytest.approx(10 * one.kv_cache_bytes, rel=1e-6)
    assert ten.weights_bytes == one.weights_bytes


def test_rows_follow_generate_expansion() -> None:
    # generate() expands the prompt to max(num_beams, num_return_sequences) rows in every mode.
    assert cost(num_return_sequences=4, do_sample=True).batch == 4
    assert cost(num_beams=4, do_sample=True).batch == 4  # beam sampling
    assert cost(num_beams=6, num_return_sequences=2, do_sample=False).batch == 6


def test_longer_output_grows_the_cache_linearly() -> None:
    short = cost(max_new_tokens=100)
    long = cost(max_new_tokens=220)
    assert long.kv_cache_bytes == pytest.approx(2 * short.kv_cache_bytes, rel=1e-6)


def test_half_precision_halves_weights_and_cache() -> None:
    full = cost(dtype="float32")
    half = cost(dtype="bfloat16")
    assert half.weights_bytes * 2 == full.weights_bytes
    assert half.kv_cache_bytes * 2 == pytest.approx(full.kv_cache_bytes, abs=2)
    assert cost(dtype="float16").weights_bytes == half.weights_bytes
    q4 = cost(dtype="q4_0")
    assert q4.weights_bytes == int(RUGPT3_LARGE.param_count * 18 / 32)
    assert DTYPE_BYTES["q8_0"] == 34 / 32


def test_total_adds_up() -> None:
    c = cost(num_beams=4)
    assert c.overhead_bytes == RUNTIME_OVERHEAD_BYTES
    assert c.activation_bytes > GENERATE_WORKSPACE_BYTES
    assert c.total_bytes == (c.weights_bytes + c.kv_cache_bytes + c.activation_bytes + c.overhead_bytes)
    assert c.required_bytes(weights_loaded=True) == c.kv_cache_bytes + c.activation_bytes


def test_the_hobbyists_setting_is_expensive() -> None:
    # ruGPT-3 large, 10 beams, 2000 new tokens: the cache dwarfs the 3 GB of weights.
    c = cost(num_beams=10, max_new_tokens=2000, do_sample=False)
    assert c.weights_bytes == pytest.approx(3.04 * GB, rel=0.01)
    assert c.kv_cache_bytes > 3 * c.weights_bytes
    assert 12 * GB < c.total_bytes < 20 * GB


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="dtype"):
        cost(dtype="int3")
    with pytest.raises(ValueError, match="num_beams"):
        cost(num_beams=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        cost(max_new_tokens=-1)


# --- time -------------------------------------------------------------------------------------


def test_seconds_per_token_memory_then_compute_bound() -> None:
    from gptdesk.models.cost import LAYER_OVERHEAD_S, STEP_OVERHEAD_S

    step = STEP_OVERHEAD_S + LAYER_OVERHEAD_S * RUGPT3_LARGE.n_layer
    greedy = cost(do_sample=False)
    assert greedy.seconds_per_token == pytest.approx(step + greedy.weights_bytes / 20e9)
    wide = cost(num_beams=16, do_sample=False)
    assert wide.seconds_per_token == pytest.approx(step + 2 * RUGPT3_LARGE.param_count * 16 / 50e9)
    fast = cost(do_sample=False, bandwidth_gbs=100.0)
    assert fast.seconds_per_token < greedy.seconds_per_token


def test_describe_in_both_languages() -> None:
    c = cost(num_beams=10, max_new_tokens=2000, do_sample=False)
    en = c.describe("en")
    ru = c.describe("ru")
    assert "3.0 GB weights (float32)" in en
    assert format_bytes(c.generation_bytes) in en
    assert "s per token (rough)" in en
    assert "3,0 ГБ на веса (float32)" in ru
    assert "с на токен" in ru


# --- refusal ----------------------------------------------------------------------------------


def test_check_affordable_refuses_with_numbers_and_suggestions() -> None:
    c = cost(num_beams=10, max_new_tokens=2000, do_sample=False)
    available = 8 * GB
    with pytest.raises(InsufficientMemoryError) as caught:
        check_affordable(c, weights_loaded=False, available=available)
    en = caught.value.message("en")
    ru = caught.value.message("ru")
    assert format_bytes(c.total_bytes) in en
    assert format_bytes(available) in en
    assert format_bytes(c.total_bytes, "ru") in ru
    assert format_bytes(available, "ru") in ru
    assert "Try:" in en
    assert "Попробуйте:" in ru
    # The suggested beam count really fits, and one beam more does not.
    beams = int(en.split("num_beams=")[1].split(" ")[0])
    assert 1 <= beams < 10
    assert f"num_beams={beams}" in ru
    fitting = cost(num_beams=beams, max_new_tokens=2000, do_sample=False)
    assert fits_in_memory(fitting, weights_loaded=False, available=available)
    too_many = cost(num_beams=beams + 1, max_new_tokens=2000, do_sample=False)
    assert not fits_in_memory(too_many, weights_loaded=False, available=available)
    assert "max_new_tokens=" in en
    assert "max_new_tokens=" in ru


def test_suggests_bfloat16_when_that_is_what_fits() -> None:
    c = cost(num_beams=1, max_new_tokens=100, do_sample=False)
    available = int(c.total_bytes * 0.8)  # margin 0.9: 72% of the estimate is usable
    with pytest.raises(InsufficientMemoryError) as caught:
        check_affordable(c, weights_loaded=False, available=available)
    assert "bfloat16" in caught.value.message("en")
    assert "bfloat16" in caught.value.message("ru")


def test_nothing_fits_says_how_much_to_free() -> None:
    c = cost()
    with pytest.raises(InsufficientMemoryError) as caught:
        check_affordable(c, weights_loaded=False, available=GB)
    assert "smaller model" in caught.value.message("en")
    assert "модель поменьше" in caught.value.message("ru")


def test_check_affordable_passes_with_plenty_of_memory() -> None:
    c = cost(num_beams=10, max_new_tokens=2000, do_sample=False)
    check_affordable(c, weights_loaded=False, available=64 * GB)
    assert fits_in_memory(c, weights_loaded=False, available=64 * GB)


def test_loaded_weights_are_not_counted_again() -> None:
    c = cost(num_beams=2, max_new_tokens=100, do_sample=False)
    # Enough for the cache and activations, far too little for the 3 GB model.
    available = int(c.generation_bytes / 0.9) + 1
    check_affordable(c, weights_loaded=True, available=available)
    with pytest.raises(InsufficientMemoryError):
        check_affordable(c, weights_loaded=False, available=available)
    with pytest.raises(InsufficientMemoryError) as caught:
        check_affordable(c, weights_loaded=True, available=available // 2)
    assert "cache and activations" in caught.value.message("en")


def test_margin_is_applied() -> None:
    c = cost(num_beams=1, do_sample=False)
    assert fits_in_memory(c, weights_loaded=False, available=c.total_bytes, margin=1.0)
    assert not fits_in_memory(c, weights_loaded=False, available=c.total_bytes, margin=0.9)


def test_available_memory_is_positive() -> None:
    assert available_memory() > 0


# --- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "en", "ru"),
    [
        (0, "0 B", "0 Б"),
        (999, "999 B", "999 Б"),
        (1_500, "1.5 kB", "1,5 кБ"),
        (340_000_000, "340 MB", "340 МБ"),
        (1_234_000_000, "1.2 GB", "1,2 ГБ"),
        (16_400_000_000, "16 GB", "16 ГБ"),
        (2.5e12, "2.5 TB", "2,5 ТБ"),
    ],
)
def test_format_bytes(n: float, en: str, ru: str) -> None:
    assert format_bytes(n) == en
    assert format_bytes(n, "ru") == ru


# --- import hygiene ---------------------------------------------------------------------------


def test_importing_estimate_loads_no_heavy_library() -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import gptdesk.models.cost; "
        "print(json.dumps([m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


# --- the llama.cpp engine's own costs ------------------------------------------------------------


def test_llamacpp_weights_are_the_quantized_file() -> None:
    for dtype in ("q8_0", "q4_0", "float16"):
        c = cost(dtype=dtype, engine="llamacpp")
        assert c.engine == "llamacpp"
        assert c.weights_bytes == int(RUGPT3_LARGE.param_count * DTYPE_BYTES[dtype])


def test_llamacpp_cache_shares_the_prompt_and_counts_cells_per_sequence() -> None:
    # float16 keys and values, n_embd wide, per layer; cells: the prompt once, then one per sequence per
    # token, rounded up to the context step of 256.
    per_cell = 2 * RUGPT3_LARGE.n_layer * RUGPT3_LARGE.n_embd * 2
    greedy = cost(dtype="q8_0", engine="llamacpp", prompt_tokens=20, max_new_tokens=100)
    assert greedy.kv_cache_bytes == 256 * per_cell
    beams = cost(dtype="q8_0", engine="llamacpp", prompt_tokens=20, max_new_tokens=100, num_beams=10)
    assert beams.kv_cache_bytes == 1024 * per_cell  # 20 + 10 x 100 = 1020 cells, not 10 x 120
    variants = cost(dtype="q8_0", engine="llamacpp", prompt_tokens=500, max_new_tokens=100, num_return_sequences=4)
    assert variants.kv_cache_bytes == 1024 * per_cell  # 500 + 4 x 100 = 900: the prompt's cells are shared


def test_llamacpp_is_far_below_the_reference_for_the_sber_demo() -> None:
    fast = cost(dtype="q4_0", engine="llamacpp", num_beams=10)
    reference = cost(dtype="float32", num_beams=10)
    assert fast.total_bytes < reference.total_bytes / 2
    assert fast.seconds_per_token < reference.seconds_per_token


def test_llamacpp_step_time_grows_with_the_batch_less_than_the_batch() -> None:
    one = cost(dtype="q4_0", engine="llamacpp").seconds_per_token
    ten = cost(dtype="q4_0", engine="llamacpp", num_beams=10).seconds_per_token
    assert one < ten < 10 * one
    # q8_0 has no batched kernel: its extra sequences cost more than q4_0's.
    q8_extra = (
        cost(dtype="q8_0", engine="llamacpp", num_beams=10).seconds_per_token
        - cost(dtype="q8_0", engine="llamacpp").seconds_per_token
    )
    assert q8_extra > ten - one


def test_llamacpp_refusal_suggests_fewer_beams_on_the_same_engine() -> None:
    c = cost(dtype="q8_0", engine="llamacpp", num_beams=10, max_new_tokens=2000)
    with pytest.raises(InsufficientMemoryError) as err:
        check_affordable(c, weights_loaded=True, available=c.generation_bytes // 2)
    assert "num_beams=" in err.value.text.en and "num_beams=" in err.value.text.ru


def test_kept_cells_of_the_sequence_store_are_counted_on_llama_cpp() -> None:
    from gptdesk.models.cost import estimate

    shape = ModelShape(n_layer=24, n_embd=1536, n_head=16, n_positions=2048, vocab_size=50257)
    plain = estimate(shape, dtype="q8_0", prompt_tokens=20, max_new_tokens=100, engine="llamacpp")
    kept = estimate(shape, dtype="q8_0", prompt_tokens=20, max_new_tokens=100, engine="llamacpp", kept_tokens=2048)
    # 2,048 more float16 cells of keys and values in every layer: 2 x 24 x 1536 x 2 bytes each.
    assert kept.kv_cache_bytes - plain.kv_cache_bytes == 2048 * 2 * 24 * 1536 * 2
    reference = estimate(shape, dtype="float32", prompt_tokens=20, max_new_tokens=100, kept_tokens=2048)
    assert reference == estimate(shape, dtype="float32", prompt_tokens=20, max_new_tokens=100)
