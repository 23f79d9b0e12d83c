"""Hugging Face GPT-2 folders converted to GGUF for the llama.cpp engine, cached per model, revision and type."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptdesk.errors import ConversionCancelled, ModelCorruptError, UnsupportedModelError
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.gguf.cache import (
    CONVERTER_VERSION,
    MISSING,
    cached_problem,
    gguf_path,
    invalidate,
    manifest_path,
    publish,
    remove_leftovers,
    temporary_path,
    write_failure,
)
from gptdesk.models.gguf.quantize import private_link, quantize
from gptdesk.models.gguf.sizes import DEFAULT_QUANT, K_QUANTS, check_quant
from gptdesk.models.locate import ResolvedModel, read_config, weight_files

#: The tanh approximation of GELU is the only one llama.cpp's GPT-2 graph computes.
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


@dataclass(frozen=True)
class ConvertedModel:
    """A GGUF file ready for llama.cpp, with what it was made from."""

    path: Path
    quant: str
    revision: str
    reused: bool  # True: taken from the cache; False: converted just now
    seconds: float  # time spent converting (0 when reused) or checking the cached file
    manifest: dict[str, Any]


# -- the cache: reuse, detect stale or corrupt files, convert ------------------------------------


def ensure_gguf(
    resolved: ResolvedModel,
    quant: str = DEFAULT_QUANT,
    *,
    progress: ProgressCallback | None = None,
    verify: str = "quick",
    cancel: threading.Event | None = None,
) -> ConvertedModel:
    """The cached GGUF of this model, revision and type; converted first if missing, stale or corrupt.

    `verify` is "quick" (size, header and a sampled digest: milliseconds) or "full" (the SHA-256 of
    the whole file: about a second per GB).
    """
    check_quant(quant)
    if verify not in ("quick", "full"):
        raise ValueError(f"verify must be 'quick' or 'full', got {verify!r}")
    target = gguf_path(resolved, quant)
    started = time.perf_counter()
    # What killed conversions left (their owner is gone) is removed even when the file is cached.
    remove_leftovers(target.parent)
    problem = cached_problem(target, revision=resolved.revision, quant=quant, full=verify == "full")
    if problem is None:
        manifest = json.loads(manifest_path(target).read_text(encoding="utf-8"))
        return ConvertedModel(target, quant, resolved.revision, True, time.perf_counter() - started, manifest)
    reason = problem if problem.en != MISSING.en else None
    if quant in K_QUANTS:
        manifest = _ensure_k_quant(
            resolved, target, quant, progress=progress, verify=verify, cancel=cancel, reason=reason
        )
    else:
        manifest = convert(
            resolved.path,
            target,
            quant,
            model_id=resolved.model_id,
            revision=resolved.revision,
            progress=progress,
            cancel=cancel,
            reason=reason,
        )
    remove_leftovers(target.parent)  # and what was killed while this one worked
    return ConvertedModel(target, quant, resolved.revision, False, time.perf_counter() - started, manifest)


# -- reading the source weights ------------------------------------------------------------------


class _SourceWeights:
    """The tensors of a Hugging Face GPT-2 folder by name (no prefix), read one at a time."""

    def __init__(self, folder: Path) -> None:
        self._where: dict[str, tuple[Path, str]] = {}
        self._bin: dict[str, Any] = {}
        files = weight_files(folder)
        if not files:
            raise ModelCorruptError(
                Text(
                    f"{folder} has no weights (*.safetensors or pytorch_model.bin) to convert. Copy the "
                    "weights into it or download the model again.",
                    f"В {folder} нет весов (*.safetensors или pytorch_model.bin) для преобразования. "
                    "Скопируйте веса или скачайте модель заново.",
                )
            )
        try:
            for file in files:
                if file.suffix == ".safetensors":
                    from safetensors import safe_open

                    with safe_open(str(file), framework="pt") as st:
                        for key in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                            self._where[_strip(key)] = (file, key)
                else:
                    import torch

                    try:
                        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
                    except RuntimeError:  # the legacy (pre-zip) format cannot be memory-mapped
                        state = torch.load(file, map_location="cpu", weights_only=True)
                    for key, value in state.items():
                        self._bin[_strip(key)] = value
        except Exception as exc:  # safetensors and torch raise their own types on damaged files
            raise _unreadable(folder, exc) from exc
        self._folder = folder

    def names(self) -> set[str]:
        return set(self._where) | set(self._bin)

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self._bin:
            return tuple(int(n) for n in self._bin[name].shape)
        from safetensors import safe_open

        file, key = self._where[name]
        with safe_open(str(file), framework="pt") as st:
            return tuple(int(n) for n in st.get_slice(key).get_shape())

    def load(self, name: str) -> np.ndarray[Any, Any]:
        """The tensor as float32 numpy (bf16 and f16 sources are widened first)."""
        try:
            if name in self._bin:
                tensor = self._bin[name]
            else:
                from safetensors import safe_open

                file, key = self._where[name]
                with safe_open(str(file), framework="pt") as st:
                    tensor = st.get_tensor(key)
            return np.ascontiguousarray(tensor.float().numpy())
        except Exception as exc:
            raise _unreadable(self._folder, exc) from exc


def _strip(key: str) -> str:
    return key.removeprefix("transformer.")


def _unreadable(folder: Path, exc: BaseException) -> ModelCorruptError:
    return ModelCorruptError(
        Text(
            f"The weights in {folder} cannot be read for conversion ({type(exc).__name__}: {exc}). The "
            "files may be incomplete or damaged; download or copy the model again.",
            f"Веса в {folder} не читаются для преобразования ({type(exc).__name__}: {exc}). Файлы, "
            "возможно, неполные или повреждены; скачайте или скопируйте модель заново.",
        )
    )


# -- the plan: which source tensor becomes which GGUF tensor, in which type ----------------------


@dataclass(frozen=True)
class _Planned:
    gguf_name: str
    source: str
    transpose: bool  # GPT-2's Conv1D stores (in, out); ggml wants out rows of in columns
    qtype: Any  # gguf.GGMLQuantizationType
    shape: tuple[int, ...]  # numpy shape after the transpose


def check_convertible(config: dict[str, Any], folder: Path) -> None:
    """Refuse, with the reason, a GPT-2 variant that llama.cpp's GPT-2 graph would compute differently."""
    act = config.get("activation_function", "gelu_new")
    problems: list[Text] = []
    if act not in TANH_GELUS:
        problems.append(
            Text(
                f"activation_function = '{act}' (llama.cpp computes only the tanh GELU, {', '.join(TANH_GELUS)})",
                f"activation_function = «{act}» (llama.cpp умеет только GELU через tanh: {', '.join(TANH_GELUS)})",
            )
        )
    if config.get("scale_attn_by_inverse_layer_idx"):
        problems.append(Text("scale_attn_by_inverse_layer_idx = true", "scale_attn_by_inverse_layer_idx = true"))
    if config.get("scale_attn_weights") is False:
        problems.append(Text("scale_attn_weights = false", "scale_attn_weights = false"))
    if problems:
        en = "; ".join(p.en for p in problems)
        ru = "; ".join(p.ru for p in problems)
        raise UnsupportedModelError(
            Text(
                f"The model in {folder} cannot run on the llama.cpp engine: {en}. Use the transformers engine "
                "(--engine transformers), which runs every GPT-2 variant.",
                f"Модель в {folder} не может работать на движке llama.cpp: {ru}. Используйте движок "
                "transformers (--engine transformers), он работает с любым вариантом GPT-2.",
            )
        )


def _plan(config: dict[str, Any], weights: _SourceWeights, quant: str, folder: Path) -> list[_Planned]:
    import gguf

    T, Q = gguf.MODEL_TENSOR, gguf.GGMLQuantizationType
    names = gguf.TENSOR_NAMES
    matrix_type = {"f16": Q.F16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "f32": Q.F32}[quant]
    # The token embedding is also the output layer (tied), the one matrix whose errors reach the
    # logits directly; the 4-bit file keeps it at 8 bits, as llama.cpp's own quantizer keeps its
    # output layer above 4 bits.
    embed_type = {"f16": Q.F16, "q8_0": Q.Q8_0, "q4_0": Q.Q8_0, "f32": Q.F32}[quant]
    available = weights.names()
    plan: list[_Planned] = []

    def add(gguf_name: str, source: str, *, transpose: bool = False, kind: str = "vector") -> None:
        if source not in available:
            raise ModelCorruptError(
                Text(
                    f"The weights in {folder} lack '{source}', which every GPT-2 has. The files may be "
                    "incomplete; download or copy the model again.",
                    f"В весах {folder} нет «{source}», который есть у любой GPT-2. Файлы, возможно, "
                    "неполные; скачайте или скопируйте модель заново.",
                )
            )
        shape = weights.shape(source)
        if transpose:
            shape = shape[::-1]
        if kind == "vector" or len(shape) < 2 or kind == "f32":
            qtype = Q.F32
        else:
            qtype = embed_type if kind == "embedding" else matrix_type
            block, _ = gguf.GGML_QUANT_SIZES[qtype]
            if shape[-1] % block and qtype != Q.F32:  # rows that do not split into whole blocks stay in f16
                qtype = Q.F16
        plan.append(
            _Planned(gguf_name + (".weight" if source.endswith("weight") else ".bias"), source, transpose, qtype, shape)
        )

    add(names[T.TOKEN_EMBD], "wte.weight", kind="embedding")
    # Only one row is read per token, so it costs nothing to keep exact.
    add(names[T.POS_EMBD], "wpe.weight", kind="f32")
    for i in range(int(config["n_layer"])):
        p = f"h.{i}."
        add(names[T.ATTN_NORM].format(bid=i), p + "ln_1.weight")
        add(names[T.ATTN_NORM].format(bid=i), p + "ln_1.bias")
        add(names[T.ATTN_QKV].format(bid=i), p + "attn.c_attn.weight", transpose=True, kind="matrix")
        add(names[T.ATTN_QKV].format(bid=i), p + "attn.c_attn.bias")
        add(names[T.ATTN_OUT].format(bid=i), p + "attn.c_proj.weight", transpose=True, kind="matrix")
        add(names[T.ATTN_OUT].format(bid=i), p + "attn.c_proj.bias")
        add(names[T.FFN_NORM].format(bid=i), p + "ln_2.weight")
        add(names[T.FFN_NORM].format(bid=i), p + "ln_2.bias")
        add(names[T.FFN_UP].format(bid=i), p + "mlp.c_fc.weight", transpose=True, kind="matrix")
        add(names[T.FFN_UP].format(bid=i), p + "mlp.c_fc.bias")
        add(names[T.FFN_DOWN].format(bid=i), p + "mlp.c_proj.weight", transpose=True, kind="matrix")
        add(names[T.FFN_DOWN].format(bid=i), p + "mlp.c_proj.bias")
    add(names[T.OUTPUT_NORM], "ln_f.weight")
    add(names[T.OUTPUT_NORM], "ln_f.bias")
    # An untied head (rare in GPT-2 fine-tunes) gets its own output tensor; a tied one is shared.
    if "lm_head.weight" in available and not _same_tensor(weights, "lm_head.weight", "wte.weight"):
        add(names[T.OUTPUT], "lm_head.weight", kind="embedding")
    return plan


def _same_tensor(weights: _SourceWeights, a: str, b: str) -> bool:
    if weights.shape(a) != weights.shape(b):
        return False
    return bool(np.array_equal(weights.load(a), weights.load(b)))


def _encode(data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any]:
    import gguf

    return np.ascontiguousarray(gguf.quants.quantize(data, qtype))


def _nbytes(shape: tuple[int, ...], qtype: Any) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // block) * size


# -- the vocabulary (so the file also works in other llama.cpp tools) ----------------------------


def _vocabulary(folder: Path, vocab_size: int) -> tuple[list[str], list[int], list[str], dict[str, int]]:
    """Tokens, token types, merges and special ids, from the same tokenizer the engines use."""
    import gguf

    from gptdesk.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folder)
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    specials = set(tokenizer.all_special_ids)
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL)
        else:  # rows of the embedding past the tokenizer's vocabulary: never produced by it
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    model = json.loads(tokenizer.backend_tokenizer.to_str()).get("model", {})
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    ids = {
        name: int(value)
        for name in ("bos", "eos", "unk", "pad")
        if (value := getattr(tokenizer, f"{name}_token_id")) is not None and int(value) < vocab_size
    }
    return tokens, types, merges, ids


# -- the conversion ------------------------------------------------------------------------------


def convert(
    folder: Path,
    out: Path,
    quant: str = DEFAULT_QUANT,
    *,
    model_id: str = "",
    revision: str = "",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    reason: Text | None = None,
) -> dict[str, Any]:
    """Write `folder` as a GGUF file at `out` (atomically) and its manifest beside it; return the manifest."""
    import gguf

    check_quant(quant)
    config = read_config(folder)
    check_convertible(config, folder)

    def report(text: Text, fraction: float | None) -> None:
        if progress is not None:
            progress(text, fraction)

    why = Text("", "") if reason is None else Text(f" ({reason.en})", f" ({reason.ru})")
    report(Text(f"Preparing a {quant} copy for llama.cpp", f"Подготовка копии {quant} для llama.cpp") + why, 0.0)
    weights = _SourceWeights(folder)
    plan = _plan(config, weights, quant, folder)
    n_vocab = int(config["vocab_size"])
    n_positions = int(config.get("n_positions") or config.get("n_ctx") or 1024)
    n_embd = int(config["n_embd"])
    tokens, types, merges, special_ids = _vocabulary(folder, n_vocab)

    needed = sum(_nbytes(p.shape, p.qtype) for p in plan)
    what = Text(f"the {quant} copy", f"копию {quant}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(out.parent, exc, needed, what) from exc
    # A temporary name of this process: two processes converting at once each write their own file,
    # and the cache only ever holds complete files (os.replace is atomic).
    tmp = temporary_path(out)
    remove_leftovers(out.parent)
    ftype = {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
        "f32": gguf.LlamaFileType.ALL_F32,
    }
    writer = gguf.GGUFWriter(tmp, "gpt2")
    try:
        writer.add_name(model_id or folder.name)
        writer.add_file_type(int(ftype[quant]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_block_count(int(config["n_layer"]))
        writer.add_context_length(n_positions)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(int(config.get("n_inner") or 4 * n_embd))
        writer.add_head_count(int(config["n_head"]))
        writer.add_layer_norm_eps(float(config.get("layer_norm_epsilon", 1e-5)))
        writer.add_vocab_size(n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        for name, value in special_ids.items():
            getattr(writer, f"add_{name}_token_id")(value)
        writer.add_add_bos_token(False)
        writer.add_string("gptdesk.source.model", model_id)
        writer.add_string("gptdesk.source.revision", revision)
        writer.add_uint32("gptdesk.converter_version", CONVERTER_VERSION)
        writer.add_string("gptdesk.quant", quant)
        for item in plan:
            writer.add_tensor_info(
                item.gguf_name,
                _byte_shape(item.shape, item.qtype),
                np.dtype(np.uint8),
                _nbytes(item.shape, item.qtype),
                item.qtype,
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = needed
        done = 0
        for item in plan:
            if cancel is not None and cancel.is_set():
                raise ConversionCancelled(Text("The conversion was cancelled.", "Преобразование отменено."))
            data = weights.load(item.source)
            # Quantizing NaN fails deep inside gguf; say what is wrong instead (the sum is the cheap test).
            if not np.isfinite(data.sum(dtype=np.float64)) and np.isnan(data).any():
                from gptdesk.errors import DamagedWeightsError

                raise DamagedWeightsError(folder, item.source)
            if item.transpose:
                data = np.ascontiguousarray(data.T)
            if data.shape != item.shape:  # pragma: no cover - shapes come from the same files
                raise _unreadable(folder, ValueError(f"{item.source} changed shape while converting"))
            writer.write_tensor_data(_encode(data, item.qtype))
            done += _nbytes(item.shape, item.qtype)
            report(
                Text(f"Converting to {quant}: {item.gguf_name}", f"Преобразование в {quant}: {item.gguf_name}"),
                done / total,
            )
        writer.close()
        manifest = publish(
            tmp, out, {"model_id": model_id, "source": str(folder), "revision": revision, "quant": quant}
        )
    except OSError as exc:
        raise write_failure(out.parent, exc, needed, what) from exc
    finally:
        with contextlib.suppress(Exception):
            writer.close()
        for leftover in (tmp, manifest_path(tmp)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    report(Text(f"The {quant} copy is ready", f"Копия {quant} готова"), 1.0)
    return manifest


def _byte_shape(shape: tuple[int, ...], qtype: Any) -> tuple[int, ...]:
    import gguf

    return tuple(gguf.quant_shape_to_byte_shape(shape, qtype))


# -- K-quants: llama.cpp's quantizer, run on the f16 file ----------------------------------------


def _ensure_k_quant(
    resolved: ResolvedModel,
    target: Path,
    quant: str,
    *,
    progress: ProgressCallback | None,
    verify: str,
    cancel: threading.Event | None,
    reason: Text | None,
) -> dict[str, Any]:
    """Make the K-quant `target` from the model's f16 file (converted first when it is not cached)."""

    def base_progress(text: Text, fraction: float | None) -> None:
        # The f16 conversion is the first fifth of the way; the quantizer the rest.
        if progress is not None:
            progress(text, None if fraction is None else 0.2 * fraction)

    base = ensure_gguf(resolved, "f16", progress=base_progress, verify=verify, cancel=cancel)
    # The quantizer reads a private hard link to the f16 file: another process that made the
    # same f16 file deletes it when its own K-quant is done, which must not pull the file from
    # under this one (a link keeps the data until the last name goes).
    source = private_link(base.path)
    try:
        return quantize(
            source,
            target,
            quant,
            model_id=resolved.model_id,
            revision=resolved.revision,
            base_sha256=str(base.manifest.get("sha256", "")),
            progress=progress,
            cancel=cancel,
            reason=reason,
            start=0.2,
        )
    finally:
        if source != base.path:
            with contextlib.suppress(OSError):
                source.unlink()
        if not base.reused:
            # Made only as the quantizer's input: keep the disk to what the user asked for (the
            # next K-quant of this model converts it again, a few seconds per GB).
            invalidate(base.path)
