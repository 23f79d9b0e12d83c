"""The GGUF converter and its cache, on tiny random GPT-2 models built in the test."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest

from gptdesk.errors import ConversionCancelled, InvalidInputError, UnsupportedModelError
from gptdesk.i18n import Text
from gptdesk.models.gguf import cache
from gptdesk.models.gguf.cache import cache_dir, cached_problem, gguf_path, manifest_path
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.sizes import QUANT_TYPES
from gptdesk.models.locate import ResolvedModel, folder_digest, resolve
from tests.conftest import build_tiny_gpt2


def build_scaled_gpt2(folder: Path, *, tied: bool = True, scale: float = 20.0, seed: int = 0) -> Path:
    """A random 2-layer GPT-2 (n_embd 64, ruGPT-3's tokenizer) whose next-token scores are far apart.

    tied: the token embedding, which is also the output layer, is multiplied by `scale`: the
    model then repeats its last token (what no-repeat n-grams and repetition penalty act on).
    Untied: a separate output layer of standard deviation `scale` gives varied text whose
    best token usually leads the next one by a wide margin. Every weight is rounded to f16 first,
    so an f16 file holds exactly the reference model's weights.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    build_tiny_gpt2(folder, n_positions=128, seed=seed)  # the tokenizer files
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=50257,
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=tied,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        if tied:
            model.transformer.wte.weight.mul_(scale)
        else:
            model.lm_head.weight.normal_(0.0, scale)
        for p in model.parameters():
            p.copy_(p.half().float())
    for old in folder.glob("*.safetensors"):
        old.unlink()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def peaky_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scaled_gpt2(tmp_path_factory.mktemp("peaky") / "peaky-gpt2")


def _resolved(folder: Path) -> ResolvedModel:
    return resolve(folder)


def _source_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {
        k.removeprefix("transformer."): v.astype(np.float32) for k, v in load_file(folder / "model.safetensors").items()
    }


def test_untied_output_layer_is_written_separately(tmp_path: Path) -> None:
    folder = build_scaled_gpt2(tmp_path / "untied", tied=False, scale=1.0)
    converted = ensure_gguf(_resolved(folder), "q8_0")
    tensors = {t.name: t for t in gguf.GGUFReader(converted.path).tensors}
    assert tensors["output.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["output.weight"].n_elements == tensors["token_embd.weight"].n_elements == 50257 * 64


def test_converted_file_holds_the_model_in_llama_cpp_layout(peaky_dir: Path) -> None:
    resolved = _resolved(peaky_dir)
    converted = ensure_gguf(resolved, "f16")
    assert not converted.reused
    assert converted.path == gguf_path(resolved, "f16")
    assert converted.path.is_relative_to(cache_dir())
    assert cache_dir() == Path(os.environ["GPTDESK_CACHE_DIR"])  # conftest points it at tmp

    reader = gguf.GGUFReader(converted.path)
    fields = {name: f for name, f in reader.fields.items()}

    def scalar(name: str) -> object:
        field = fields[name]
        value = field.parts[field.data[0]]
        return bytes(value).decode() if field.types[0] == gguf.GGUFValueType.STRING else value[0]

    assert scalar("general.architecture") == "gpt2"
    assert scalar("gpt2.context_length") == 128
    assert scalar("gpt2.embedding_length") == 64
    assert scalar("gpt2.feed_forward_length") == 256
    assert scalar("gpt2.block_count") == 2
    assert scalar("gpt2.attention.head_count") == 2
    assert scalar("gptdesk.source.revision") == resolved.revision
    assert scalar("tokenizer.ggml.model") == "gpt2"
    assert scalar("tokenizer.ggml.eos_token_id") == 2
    assert len(fields["tokenizer.ggml.tokens"].data) == 50257

    tensors = {t.name: t for t in reader.tensors}
    # 2 embeddings + 12 per layer + the final norm's 2; tied output: no separate output.weight.
    assert len(tensors) == 2 + 2 * 12 + 2
    assert "output.weight" not in tensors
    source = _source_tensors(peaky_dir)
    qkv = tensors["blk.1.attn_qkv.weight"]
    assert qkv.tensor_type == gguf.GGMLQuantizationType.F16
    # Conv1D stores (in, out); llama.cpp wants rows of `in` values, one per output.
    np.testing.assert_array_equal(
        np.asarray(qkv.data, dtype=np.float32).reshape(192, 64), source["h.1.attn.c_attn.weight"].T
    )
    norm = tensors["blk.0.ffn_norm.bias"]
    assert norm.tensor_type == gguf.GGMLQuantizationType.F32
    np.testing.assert_array_equal(np.asarray(norm.data), source["h.0.ln_2.bias"])
    assert tensors["position_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32


# q8_0 rounds to the nearest of 255 steps of max/127; q4_0 has 16 steps of max/8 and clips the
# side opposite the block's largest value at 7 steps, so its error can reach a whole step.
@pytest.mark.parametrize(("quant", "tolerance"), [("q8_0", 0.5 / 127), ("q4_0", 1 / 8)])
def test_quantized_weights_stay_within_one_step_of_their_block(peaky_dir: Path, quant: str, tolerance: float) -> None:
    converted = ensure_gguf(_resolved(peaky_dir), quant)
    reader = gguf.GGUFReader(converted.path)
    tensors = {t.name: t for t in reader.tensors}
    up = tensors["blk.0.ffn_up.weight"]
    assert up.tensor_type == getattr(gguf.GGMLQuantizationType, quant.upper())
    restored = gguf.quants.dequantize(np.asarray(up.data), up.tensor_type).reshape(256, 64)
    original = _source_tensors(peaky_dir)["h.0.mlp.c_fc.weight"].T
    # Each block of 32 shares one scale, set by its largest magnitude (stored in f16).
    blocks = np.abs(original.reshape(-1, 32)).max(axis=1, keepdims=True)
    error = np.abs(restored - original).reshape(-1, 32)
    assert np.all(error <= blocks * (tolerance + 2**-10))  # plus the f16 rounding of the scale
    assert not np.array_equal(restored, original)  # it really is quantized
    embd = tensors["token_embd.weight"]
    # The tied embedding/output layer stays at 8 bits even in the 4-bit file.
    assert embd.tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert converted.manifest["quant"] == quant
    assert converted.path.stat().st_size == converted.manifest["size"]


def test_sizes_shrink_with_the_type(peaky_dir: Path) -> None:
    resolved = _resolved(peaky_dir)
    sizes = {q: ensure_gguf(resolved, q).path.stat().st_size for q in QUANT_TYPES}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]


def test_second_request_reuses_the_file(peaky_dir: Path) -> None:
    resolved = _resolved(peaky_dir)
    first = ensure_gguf(resolved, "q8_0")
    stamp = first.path.stat().st_mtime_ns
    again = ensure_gguf(resolved, "q8_0")
    assert again.reused
    assert again.path.stat().st_mtime_ns == stamp
    assert again.manifest == first.manifest


def test_progress_is_reported_until_done(peaky_dir: Path) -> None:
    seen: list[tuple[Text, float | None]] = []
    ensure_gguf(_resolved(peaky_dir), "q4_0", progress=lambda text, fraction: seen.append((text, fraction)))
    fractions = [f for _, f in seen if f is not None]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert len(fractions) > 10  # one step per tensor
    assert any("q4_0" in t.en and "q4_0" in t.ru for t, _ in seen)


def test_new_revision_of_a_folder_is_detected_and_rebuilt(tmp_path: Path) -> None:
    folder = build_tiny_gpt2(tmp_path / "model")
    resolved = _resolved(folder)
    first = ensure_gguf(resolved, "q8_0")
    # The folder changes (a fine-tune saved over it): its digest, the revision, changes too.
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    changed = _resolved(folder)
    assert changed.revision == folder_digest(folder) != resolved.revision
    problem = cached_problem(first.path, revision=changed.revision, quant="q8_0")
    assert problem is not None and "revision" in problem.en and "ревизи" in problem.ru
    rebuilt = ensure_gguf(changed, "q8_0")
    assert not rebuilt.reused
    assert rebuilt.path == first.path  # same place: the stale file is replaced, not left behind
    assert rebuilt.manifest["revision"] == changed.revision
    assert ensure_gguf(changed, "q8_0").reused


def test_older_converter_output_is_stale(peaky_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = _resolved(peaky_dir)
    ensure_gguf(resolved, "q8_0")
    monkeypatch.setattr(cache, "CONVERTER_VERSION", cache.CONVERTER_VERSION + 1)
    assert not ensure_gguf(resolved, "q8_0").reused
    assert ensure_gguf(resolved, "q8_0").reused


def test_truncated_file_is_detected_and_rebuilt(peaky_dir: Path) -> None:
    resolved = _resolved(peaky_dir)
    path = ensure_gguf(resolved, "q8_0").path
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    problem = cached_problem(path, revision=resolved.revision, quant="q8_0")
    assert problem is not None and "size" in problem.en
    rebuilt = ensure_gguf(resolved, "q8_0")
    assert not rebuilt.reused
    assert rebuilt.path.stat().st_size == rebuilt.manifest["size"]


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_damaged_bytes_are_detected(peaky_dir: Path, where: str) -> None:
    resolved = _resolved(peaky_dir)
    path = ensure_gguf(resolved, "q8_0").path
    size = path.stat().st_size
    offset = {"header": 0, "middle": size // 2, "end": size - 16}[where]
    with path.open("r+b") as fh:
        fh.seek(offset)
        original = fh.read(8)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in original))
    # The quick check reads the head, the tail and spaced chunks; the full one reads everything.
    assert cached_problem(path, revision=resolved.revision, quant="q8_0", full=True) is not None
    assert not ensure_gguf(resolved, "q8_0", verify="full").reused
    assert ensure_gguf(resolved, "q8_0", verify="full").reused


def test_missing_manifest_means_convert_again(peaky_dir: Path) -> None:
    resolved = _resolved(peaky_dir)
    path = ensure_gguf(resolved, "f16").path
    manifest_path(path).unlink()
    assert not ensure_gguf(resolved, "f16").reused
    manifest_path(path).write_text("{not json")
    problem = cached_problem(path, revision=resolved.revision, quant="f16")
    assert problem is not None and "damaged" in problem.en
    assert not ensure_gguf(resolved, "f16").reused


def test_pytorch_model_bin_converts_like_safetensors(peaky_dir: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin-model"
    shutil.copytree(peaky_dir, folder)
    state = load_file(folder / "model.safetensors")
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()  # old checkpoints saved the tied head too
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    from_bin = ensure_gguf(_resolved(folder), "f16")
    from_st = ensure_gguf(_resolved(peaky_dir), "f16")
    a = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(from_bin.path).tensors}
    b = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(from_st.path).tensors}
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_cancel_leaves_nothing_behind(peaky_dir: Path) -> None:
    resolved = _resolved(peaky_dir)
    cancel = threading.Event()

    def progress(text: Text, fraction: float | None) -> None:
        if fraction is not None and fraction > 0.3:
            cancel.set()

    with pytest.raises(ConversionCancelled):
        ensure_gguf(resolved, "q4_0", progress=progress, cancel=cancel)
    folder = gguf_path(resolved, "q4_0").parent
    assert not gguf_path(resolved, "q4_0").exists()
    assert not [p for p in folder.iterdir() if "q4_0" in p.name]


def test_exact_gelu_models_are_refused_with_the_way_out(tmp_path: Path) -> None:
    folder = build_tiny_gpt2(tmp_path / "erf")
    config = json.loads((folder / "config.json").read_text())
    config["activation_function"] = "gelu"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError) as err:
        ensure_gguf(_resolved(folder), "q8_0")
    assert "activation_function = 'gelu'" in err.value.text.en
    assert "--engine transformers" in err.value.text.en and "--engine transformers" in err.value.text.ru


def test_unknown_type_names_the_choices(peaky_dir: Path) -> None:
    with pytest.raises(InvalidInputError) as err:
        ensure_gguf(_resolved(peaky_dir), "q3_k")
    assert "q3_k" in err.value.text.en and "q8_0" in err.value.text.en and "q8_0" in err.value.text.ru


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("GPTDESK_CACHE_DIR")
    assert cache_dir().name == "gptdesk"
