"""K-quants made by llama.cpp's quantizer from the f16 file: produced, loaded, generating, cached."""

from __future__ import annotations

import threading
from pathlib import Path

import gguf
import pytest

from gptdesk.engine import run_to_end
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.errors import ConversionCancelled, ModelError
from gptdesk.i18n import Text
from gptdesk.models.gguf import cache, convert, quantize
from gptdesk.models.gguf.cache import cached_files, cached_problem, gguf_path, invalidate, manifest_path
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.sizes import K_QUANTS, QUANT_TYPES, canonical_quant, describe, estimated_file_bytes
from gptdesk.models.locate import ResolvedModel, resolve
from gptdesk.settings.presets import get_preset

Q = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def kcache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: each K-quant of the embedded model is made once, then reused."""
    return tmp_path_factory.mktemp("kcache")


@pytest.fixture
def embedded(kcache: Path, monkeypatch: pytest.MonkeyPatch) -> ResolvedModel:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(kcache))
    return resolve(None)


def _types(path: Path) -> dict[str, Q]:
    return {t.name: Q(t.tensor_type) for t in gguf.GGUFReader(path).tensors}


# The embedded model is 384 wide with a 1536-wide FFN: rows of 384 (QKV, attention output, FFN up,
# the tied embedding) do not split into 256-blocks and fall back as llama.cpp's tensor_type_fallback
# does; FFN-down rows (1536 = 6 × 256) keep the K-quant.
@pytest.mark.parametrize(
    ("quant", "ffn_down", "narrow"),
    [
        ("q6_K", {Q.Q6_K}, {Q.Q8_0}),
        ("q5_K_M", {Q.Q5_K, Q.Q6_K}, {Q.Q5_1, Q.Q8_0}),
        ("q4_K_M", {Q.Q4_K, Q.Q6_K}, {Q.Q5_0, Q.Q8_0}),
    ],
)
def test_each_k_quant_is_produced_loads_and_generates(
    embedded: ResolvedModel, quant: str, ffn_down: set[Q], narrow: set[Q]
) -> None:
    converted = ensure_gguf(embedded, quant)
    assert converted.path == gguf_path(embedded, quant)
    types = _types(converted.path)
    assert {types[f"blk.{i}.ffn_down.weight"] for i in range(7)} <= ffn_down
    assert {types[f"blk.{i}.ffn_up.weight"] for i in range(7)} <= narrow
    assert {types[f"blk.{i}.attn_qkv.weight"] for i in range(7)} <= narrow
    # The tied embedding is also the output layer: llama.cpp gives it Q6_K, which falls back to Q8_0.
    assert types["token_embd.weight"] == Q.Q8_0
    assert types["blk.0.ffn_norm.bias"] == Q.F32
    manifest = converted.manifest
    assert manifest["quant"] == quant and manifest["revision"] == embedded.revision
    assert set(manifest["tensor_types"]) == {t.name for t in types.values()}
    assert len(manifest["rows_not_in_k_blocks"]) == 7 * 3 + 1
    said = describe(manifest)
    assert "22 matrices" in said.en and "22 матриц" in said.ru and "256" in said.en
    assert "Q8_0" in said.en

    with LlamaCppEngine.load(None, quant=quant, threads=2) as engine:
        assert engine.info.dtype == quant
        assert engine.gguf == converted.path
        settings = get_preset("greedy").settings(max_new_tokens=12, min_new_tokens=12)
        done = run_to_end(engine.stream("Однажды вечером", settings))
        assert done.generated_tokens == [12]
        assert len(done.texts[0].strip()) > 5


def test_k_quant_shrinks_the_file_and_reuses_it(embedded: ResolvedModel) -> None:
    sizes = {q: ensure_gguf(embedded, q).path.stat().st_size for q in ("q8_0", "q6_K", "q5_K_M", "q4_K_M")}
    assert sizes["q8_0"] > sizes["q6_K"] > sizes["q5_K_M"] > sizes["q4_K_M"]
    again = ensure_gguf(embedded, "q4_K_M")
    assert again.reused
    # Made only as the quantizer's input, the f16 file is not left in the cache.
    assert not gguf_path(embedded, "f16").exists()


def test_stale_k_quant_is_rebuilt(embedded: ResolvedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_gguf(embedded, "q4_K_M")
    monkeypatch.setattr(cache, "CONVERTER_VERSION", cache.CONVERTER_VERSION + 1)
    problem = cached_problem(first.path, revision=embedded.revision, quant="q4_K_M")
    assert problem is not None and "older converter" in problem.en
    rebuilt = ensure_gguf(embedded, "q4_K_M")
    assert not rebuilt.reused
    assert rebuilt.manifest["converter_version"] == cache.CONVERTER_VERSION
    assert ensure_gguf(embedded, "q4_K_M").reused


def test_k_quant_from_another_revision_is_rebuilt(embedded: ResolvedModel) -> None:
    path = ensure_gguf(embedded, "q5_K_M").path
    problem = cached_problem(path, revision="other-revision", quant="q5_K_M")
    assert problem is not None and "revision" in problem.en


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_k_quant_is_rebuilt(embedded: ResolvedModel, damage: str) -> None:
    path = ensure_gguf(embedded, "q6_K").path
    size = path.stat().st_size
    with path.open("r+b") as fh:
        if damage == "truncate":
            fh.truncate(size - 4096)
        else:
            fh.seek(size // 3)
            original = fh.read(16)
            fh.seek(size // 3)
            fh.write(bytes(b ^ 0xFF for b in original))
    assert cached_problem(path, revision=embedded.revision, quant="q6_K", full=True) is not None
    rebuilt = ensure_gguf(embedded, "q6_K", verify="full")
    assert not rebuilt.reused
    assert cached_problem(path, revision=embedded.revision, quant="q6_K", full=True) is None
    with LlamaCppEngine.load(None, quant="q6_K", threads=2) as engine:
        assert engine.score_tokens(engine.tokenizer("Жили-были дед да баба")["input_ids"]).shape[0] > 2


def test_progress_runs_to_the_end_and_names_the_type(embedded: ResolvedModel) -> None:
    manifest_path(gguf_path(embedded, "q4_K_M")).unlink(missing_ok=True)
    seen: list[tuple[Text, float | None]] = []
    ensure_gguf(embedded, "q4_K_M", progress=lambda text, fraction: seen.append((text, fraction)))
    fractions = [f for _, f in seen if f is not None]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any("Quantizing to q4_K_M" in t.en and "q4_K_M" in t.ru for t, _ in seen)


def test_cancel_kills_the_quantizer_and_leaves_nothing(embedded: ResolvedModel) -> None:
    target = gguf_path(embedded, "q5_K_M")
    invalidate(target)
    cancel = threading.Event()

    def progress(text: Text, fraction: float | None) -> None:
        if "Quantizing" in text.en:
            cancel.set()

    with pytest.raises(ConversionCancelled):
        ensure_gguf(embedded, "q5_K_M", progress=progress, cancel=cancel)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if "q5_K_M" in p.name]


def test_f16_deleted_by_another_process_does_not_break_a_quantization(
    embedded: ResolvedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes make K-quants of one model: the one done first deletes the shared f16 input."""
    target = gguf_path(embedded, "q5_K_M")
    invalidate(target)
    base = gguf_path(embedded, "f16")
    # A link left by a process that died is removed; pid 2**22 + 1 is above Linux's pid_max.
    base.parent.mkdir(parents=True, exist_ok=True)
    dead = base.with_name(f".{base.name}.{2**22 + 1}-deadbeef.input")
    dead.write_bytes(b"left behind")
    real_quantize = quantize.quantize
    inputs: list[Path] = []

    def other_process_finishes_first(source: Path, *args: object, **kwargs: object) -> dict[str, object]:
        inputs.append(source)
        invalidate(base)  # what the other process does once its own K-quant is made
        return real_quantize(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(convert, "quantize", other_process_finishes_first)
    made = ensure_gguf(embedded, "q5_K_M")
    assert not made.reused and inputs and inputs[0] != base
    assert cached_problem(made.path, revision=embedded.revision, quant="q5_K_M", full=True) is None
    assert not dead.exists()
    assert not list(base.parent.glob(f".{base.name}.*"))  # this process's link is gone too


def test_quantizer_failure_names_the_way_out(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError) as err:
        quantize.quantize(bad, tmp_path / "out.gguf", "q4_K_M")
    assert "q8_0 or q4_0" in err.value.text.en and "q8_0 или q4_0" in err.value.text.ru
    assert not list(tmp_path.glob(".out.gguf.*"))


def test_k_quant_names_are_accepted_in_any_case() -> None:
    assert canonical_quant("Q4_K_M") == "q4_K_M"
    assert canonical_quant("q6_k") == "q6_K"
    assert set(K_QUANTS) <= set(QUANT_TYPES)


def test_frozen_app_quantizes_on_a_thread(embedded: ResolvedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "frozen", True, raising=False)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a frozen app cannot start `python -m`")

    monkeypatch.setattr(quantize.subprocess, "Popen", no_process)
    invalidate(gguf_path(embedded, "q4_K_M"))
    converted = ensure_gguf(embedded, "q4_K_M")
    assert not converted.reused
    assert _types(converted.path)["blk.0.ffn_down.weight"] in {Q.Q4_K, Q.Q6_K}
    assert cached_problem(converted.path, revision=embedded.revision, quant="q4_K_M", full=True) is None


def test_cached_files_list_what_each_holds(embedded: ResolvedModel) -> None:
    for quant in ("q8_0", "q4_K_M"):
        ensure_gguf(embedded, quant)
    listed = cached_files("embedded")
    quants = [m["quant"] for _, m in listed]
    assert quants.index("q8_0") < quants.index("q4_K_M")
    assert all(path.exists() for path, _ in listed)
    q8 = describe(next(m for _, m in listed if m["quant"] == "q8_0"))
    assert q8.en.startswith("q8_0, ") and "Q8_0 99%" in q8.en and "matrices" not in q8.en
    assert cached_files("someone/else") == []


def test_generate_takes_a_k_quant_on_the_command_line(embedded: ResolvedModel) -> None:
    import io

    from gptdesk.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["generate", "Однажды вечером", "--quant", "Q4_K_M", "--preset", "greedy", "--max-new-tokens", "6"]
    assert main(argv, out, err) == 0
    assert "on llamacpp cpu q4_K_M" in err.getvalue()
    assert out.getvalue().startswith("Однажды вечером")
    err = io.StringIO()
    assert main([*argv, "--engine", "transformers"], out, err) == 2
    assert "--quant Q4_K_M" in err.getvalue() and "--engine auto or llamacpp" in err.getvalue()
    err = io.StringIO()
    assert main(["generate", "x", "--quant", "q3_k"], out, err) == 2
    assert "q4_K_M" in err.getvalue()


def test_files_llama_cpp_repacks_are_read_and_the_others_mapped(embedded: ResolvedModel) -> None:
    """A repacked file read into memory leaves no mapped copy resident beside the repacked one."""
    from gptdesk.engine.llamacpp.engine import _reads_whole

    expected = {"q8_0": False, "q5_K_M": False, "q6_K": False, "q4_0": True, "q4_K_M": True}
    for quant, reads in expected.items():
        converted = ensure_gguf(embedded, quant)
        assert _reads_whole(converted.manifest) == reads, quant
        with LlamaCppEngine.load(None, quant=quant, threads=2) as engine:
            maps = Path("/proc/self/maps").read_text(encoding="utf-8")
            assert (str(converted.path) in maps) != reads, quant
            done = run_to_end(engine.stream("Жили-были", get_preset("greedy").settings(max_new_tokens=4)))
            assert done.generated_tokens == [4]


def _wide_model(folder: Path) -> Path:
    """A random 2-layer GPT-2 whose widths split into K-quant blocks (256, 1024), as ruGPT-3's do."""
    import json
    import shutil

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from gptdesk.models.locate import EMBEDDED_PATH

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=16384, n_positions=128, n_embd=256, n_layer=9, n_head=4, bos_token_id=1, eos_token_id=2
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(EMBEDDED_PATH / name, folder / name)
    assert json.loads((folder / "config.json").read_text())["n_embd"] == 256
    return folder


def test_the_size_of_every_file_is_known_before_it_is_made(
    embedded: ResolvedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model manager shows it as "≈": the converter's and llama.cpp's types per matrix, fallbacks included."""
    from gptdesk.models.shape import ModelShape

    wide = resolve(str(_wide_model(tmp_path / "wide")))
    for model in (embedded, wide):
        shape = ModelShape.from_config(json_config(model))
        for quant in QUANT_TYPES:
            size = ensure_gguf(model, quant).path.stat().st_size
            assert estimated_file_bytes(shape, quant) == pytest.approx(size, rel=0.003), (model.model_id, quant)
    # The wide model's K-quants are real ones: Q4_K for most matrices, Q6_K for the layers given more bits.
    types = _types(gguf_path(wide, "q4_K_M"))
    assert {types[f"blk.{i}.ffn_up.weight"] for i in range(9)} == {Q.Q4_K}
    # llama.cpp's use_more_bits for 9 layers: the first, the last two, and every third between.
    assert [i for i in range(9) if types[f"blk.{i}.attn_qkv.weight"] == Q.Q6_K] == [0, 3, 6, 7, 8]
    assert [i for i in range(9) if types[f"blk.{i}.ffn_down.weight"] == Q.Q6_K] == [0, 3, 6, 7, 8]


def json_config(model: ResolvedModel) -> dict[str, object]:
    import json

    data: dict[str, object] = json.loads((model.path / "config.json").read_text(encoding="utf-8"))
    return data
