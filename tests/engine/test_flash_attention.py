"""GPTDESK_FLASH_ATTENTION: llama.cpp's attention kernel as llama.cpp picks it, or forced on or off."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import llama_cpp
import pytest

from gptdesk.engine import run_to_end
from gptdesk.engine.hf import TransformersEngine
from gptdesk.engine.llamacpp.backend import LlamaBackend
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.engine.llamacpp.native import flash_attention_from_environment
from gptdesk.errors import EngineError, InvalidInputError
from gptdesk.settings.presets import get_preset
from tests.engine.test_llamacpp import steps_before_a_near_tie
from tests.models.gguf.test_convert import build_scaled_gpt2


@pytest.mark.parametrize(("value", "wanted"), [("", None), ("auto", None), ("on", True), ("OFF", False)])
def test_the_values_it_takes(monkeypatch: pytest.MonkeyPatch, value: str, wanted: bool | None) -> None:
    monkeypatch.setenv("GPTDESK_FLASH_ATTENTION", value)
    assert flash_attention_from_environment() is wanted


@pytest.mark.parametrize("value", ["yes", "1", "flash"])
def test_a_bad_value_names_itself_and_the_fix(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GPTDESK_FLASH_ATTENTION", value)
    with pytest.raises(InvalidInputError) as err:
        flash_attention_from_environment()
    assert f"GPTDESK_FLASH_ATTENTION = '{value}'" in err.value.text.en and "'off'" in err.value.text.en
    assert f"GPTDESK_FLASH_ATTENTION = «{value}»" in err.value.text.ru


class _RecordingLib:
    """llama.cpp's context calls, recording the parameters a context is asked for (and refusing it)."""

    LLAMA_FLASH_ATTN_TYPE_ENABLED = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    LLAMA_FLASH_ATTN_TYPE_DISABLED = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def llama_context_default_params(self) -> Any:
        return llama_cpp.llama_context_default_params()

    def llama_init_from_model(self, model: Any, params: Any) -> None:
        self.asked.append(params)


@pytest.mark.parametrize(
    ("setting", "kind"),
    [
        (None, llama_cpp.llama_context_default_params().flash_attn_type),
        (True, llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED),
        (False, llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED),
    ],
)
def test_each_context_is_made_with_the_setting(setting: bool | None, kind: int) -> None:
    lib = _RecordingLib()
    backend = LlamaBackend(lib, SimpleNamespace(), 50257, 1, lambda: "", flash_attention=setting)
    with pytest.raises(EngineError):
        backend.resize(256, 2)
    assert [p.flash_attn_type for p in lib.asked] == [kind]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("flash")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTDESK_CACHE_DIR", str(root / "cache"))
        yield build_scaled_gpt2(root / "varied", tied=False, scale=1.0)


@pytest.mark.parametrize("value", ["on", "off"])
def test_both_kernels_give_the_reference_text(model_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Forced either way, greedy text (and its log-probabilities) matches transformers, with several
    sequences in the cache: off reads every kept cell and masks the other sequences' ones."""
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(model_dir.parent / "cache"))
    monkeypatch.setenv("GPTDESK_FLASH_ATTENTION", value)
    settings = get_preset("greedy").settings(max_new_tokens=24, min_new_tokens=24)
    with (
        TransformersEngine.load(model_dir, device="cpu", dtype="float32") as ref,
        LlamaCppEngine.load(model_dir, quant="f16") as fast,
    ):
        assert fast._backend.flash_attention is (value == "on")
        run_to_end(fast.stream("Жили-были дед и баба", settings))  # cells of another text in the cache
        for prompt in ("Москва — столица", "Hello world, this is"):
            want = run_to_end(ref.stream(prompt, settings, top_alternatives=2))
            got = run_to_end(fast.stream(prompt, settings, top_alternatives=2))
            agreed = steps_before_a_near_tie(got, want)  # CPUs round differently: a near tie may part them
            for a, b in zip(got.tokens[0][:agreed], want.tokens[0][:agreed], strict=True):
                assert a.logprob == pytest.approx(b.logprob, abs=0.02)


def test_the_cli_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from gptdesk.cli.main import main

    monkeypatch.setenv("GPTDESK_FLASH_ATTENTION", "fast")
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", "Привет", "--engine", "llamacpp", "--max-new-tokens", "2"], out, err)
    assert code == 2 and "GPTDESK_FLASH_ATTENTION = 'fast'" in err.getvalue()
