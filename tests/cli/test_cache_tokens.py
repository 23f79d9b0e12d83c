"""--cache-tokens and GPTDESK_CACHE_TOKENS: the llama.cpp cache kept between generations, on every face."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gptdesk.cli.engine_options import cache_option
from gptdesk.cli.main import build_parser, main
from gptdesk.engine import load_engine
from gptdesk.errors import InvalidInputError


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "x"],
        ["serve"],
        ["next", "x"],
        ["explore", "x"],
        ["advise", "x"],
        ["story", "new", "x"],
    ],
)
def test_every_command_that_loads_a_local_model_takes_the_flag(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--cache-tokens", "4096"])
    assert cache_option(args) == {"cache_tokens": 4096}
    assert cache_option(build_parser().parse_args(argv)) == {}


def test_the_limit_reaches_the_llama_cpp_store(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with load_engine(tiny_model_dir, engine="llamacpp", cache_tokens=0) as engine:
        assert engine.store.limit == 0
    monkeypatch.setenv("GPTDESK_CACHE_TOKENS", "5")
    with load_engine(tiny_model_dir, engine="auto") as engine:
        assert engine.fast.store.limit == 5
        list(engine.stream("Жили-были у старика со старухой", engine_settings(max_new_tokens=4)))
        assert engine.fast.store.idle_cells <= 5
    monkeypatch.delenv("GPTDESK_CACHE_TOKENS")
    with load_engine(tiny_model_dir, engine="llamacpp") as engine:
        assert engine.store.limit == engine.info.n_positions  # automatic: one full context
        list(engine.stream("Жили-были у старика со старухой", engine_settings(max_new_tokens=4)))
        assert engine.store.idle_cells > 5  # the text is kept whole when the limit allows


def engine_settings(**values: int) -> object:
    from gptdesk.settings.generation import GenerationSettings

    return GenerationSettings(do_sample=False, **values)


def test_a_run_that_keeps_nothing_gives_the_same_text(tiny_model_dir: Path) -> None:
    base = ["generate", "Жили-были", "--model", str(tiny_model_dir), "--preset", "greedy", "--max-new-tokens", "8"]
    code, kept, err = _cli(*base)
    assert code == 0, err
    code, none_kept, err = _cli(*base, "--cache-tokens", "0")
    assert code == 0, err
    assert none_kept == kept


@pytest.mark.parametrize("value", ["-1", str(2**21)])
def test_a_count_out_of_range_names_the_flag_and_the_range(value: str) -> None:
    code, out, err = _cli("generate", "Жили-были", "--cache-tokens", value)
    assert code == 2 and out == ""
    assert f"--cache-tokens = '{value}'" in err and "from 0" in err


def test_the_reference_engine_refuses_the_flag_with_the_fix() -> None:
    code, _out, err = _cli("generate", "Жили-были", "--engine", "transformers", "--cache-tokens", "10")
    assert code == 2
    assert "--cache-tokens 10" in err and "--engine auto or llamacpp" in err


def test_a_bad_environment_value_names_the_variable(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTDESK_CACHE_TOKENS", "lots")
    with pytest.raises(InvalidInputError) as caught:
        load_engine(tiny_model_dir, engine="llamacpp")
    assert "GPTDESK_CACHE_TOKENS = 'lots'" in caught.value.text.en


def test_the_memory_check_counts_what_the_store_keeps(tiny_model_dir: Path) -> None:
    with load_engine(tiny_model_dir, engine="llamacpp") as engine:
        settings = engine_settings(max_new_tokens=4)
        before = engine.check("Жили-были", settings)
        list(engine.stream("Жили-были у старика со старухой", settings))
        assert engine.kept_tokens == engine.store.idle_cells > 0
        after = engine.check("Жили-были", settings)
    assert after.kv_cache_bytes >= before.kv_cache_bytes
    assert after.kv_cache_bytes == engine_estimate_with(engine, before, engine.store.idle_cells)


def engine_estimate_with(engine: object, base: object, kept: int) -> int:
    from gptdesk.models.cost import estimate

    b = base  # the estimate of the same request with no kept cells, its inputs reused
    return estimate(
        b.shape,  # type: ignore[attr-defined]
        dtype=b.dtype,  # type: ignore[attr-defined]
        prompt_tokens=b.prompt_tokens,  # type: ignore[attr-defined]
        max_new_tokens=b.max_new_tokens,  # type: ignore[attr-defined]
        engine="llamacpp",
        kept_tokens=kept,
    ).kv_cache_bytes
