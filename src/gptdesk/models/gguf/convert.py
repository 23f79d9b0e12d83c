"""Hugging Face GPT-2 folders converted to GGUF for the llama.cpp engine, cached per model, revision and type."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptdesk.errors import (
    ConversionCancelled,
    DiskSpaceError,
    InvalidInputError,
    ModelCorruptError,
    ModelError,
    UnsupportedModelError,
)
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.locate import ResolvedModel, read_config, weight_files
from gptdesk.models.shape import ModelShape

#: Bumped whenever the converter writes different bytes for the same source: older files are stale.
CONVERTER_VERSION = 1

#: The GGUF types the converter writes. f16 is exact enough to match the reference engine token
#: for token; q8_0 halves f16 again at almost no loss; q4_0 is the 4-bit type that the gguf
#: package can quantize itself and that llama.cpp repacks at load time for AVX2/AVX-512 kernels.
#: f32 is the exact copy the beam-search equivalence tests use. The K-quants (see K_QUANTS) are
#: made from the f16 file by llama.cpp's own quantizer.
QUANT_TYPES: tuple[str, ...] = ("f32", "f16", "q8_0", "q6_K", "q5_K_M", "q4_K_M", "q4_0")
DEFAULT_QUANT = "q8_0"

#: llama.cpp's K-quants, by the llama_ftype constant llama_model_quantize takes and their nominal
#: bits per weight (for the progress bar only). The gguf package has no quantizer for them, so
#: they are made in C, from the f16 file, with llama.cpp's own choice of type per tensor: "_M"
#: keeps the attention's fused QKV, half the FFN-down matrices and the output layer at more bits.
#: Rows whose length is not a multiple of 256 (the K-quant block) fall back to a 32-block type
#: as llama.cpp does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (the manifest records each file's types).
K_QUANTS: dict[str, tuple[str, float]] = {
    "q6_K": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.56),
    "q5_K_M": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.69),
    "q4_K_M": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.85),
}
#: How many values one block of a K-quant holds: rows must be a whole number of blocks.
K_BLOCK = 256

#: The tanh approximation of GELU is the only one llama.cpp's GPT-2 graph computes.
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")

_MANIFEST_FORMAT = 1
#: Bytes read from the converted file to check it quickly: its head (header, vocabulary and the
#: first tensors), its tail, and evenly spaced chunks between them.
_HEAD_BYTES = 4 << 20
_CHUNK_BYTES = 64 << 10
_CHUNKS = 32


@dataclass(frozen=True)
class ConvertedModel:
    """A GGUF file ready for llama.cpp, with what it was made from."""

    path: Path
    quant: str
    revision: str
    reused: bool  # True: taken from the cache; False: converted just now
    seconds: float  # time spent converting (0 when reused) or checking the cached file
    manifest: dict[str, Any]


# -- where converted files live -----------------------------------------------------------------


def cache_dir() -> Path:
    """GPT Desk's cache folder: GPTDESK_CACHE_DIR, or the platform's user cache folder."""
    override = os.environ.get("GPTDESK_CACHE_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gptdesk", appauthor=False))


def _cache_key(resolved: ResolvedModel) -> str:
    """Models keep one folder across revisions, so a new revision finds (and replaces) the old file."""
    in_hub_cache = resolved.path.parent.name == "snapshots"
    source = resolved.model_id if resolved.entry is not None or in_hub_cache else str(resolved.path)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").split("/")[-1])[:48] or "model"
    return f"{slug}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"


def gguf_path(resolved: ResolvedModel, quant: str) -> Path:
    """Where the GGUF file of this model and type is kept."""
    check_quant(quant)
    return cache_dir() / "gguf" / _cache_key(resolved) / f"{quant}.gguf"


def manifest_path(gguf: Path) -> Path:
    return gguf.with_suffix(".json")


def check_quant(quant: str) -> None:
    if quant not in QUANT_TYPES:
        raise InvalidInputError(
            Text(
                f"quant = '{quant}' is unknown: use one of {', '.join(QUANT_TYPES)} (q8_0 is the usual "
                "choice; q4_K_M is faster and smaller at a small loss, q4_0 loses more, f16 matches the "
                "reference engine most closely; `gptdesk bench` shows what each costs).",
                f"quant = «{quant}» неизвестен: используйте один из {', '.join(QUANT_TYPES)} (обычно "
                "q8_0; q4_K_M быстрее и меньше при небольшой потере, q4_0 теряет больше, f16 ближе всего "
                "к эталонному движку; `gptdesk bench` показывает цену каждого).",
            )
        )


def canonical_quant(name: str) -> str:
    """The type as QUANT_TYPES spells it, whatever the case ("Q4_K_M" -> "q4_K_M"); unknown names are refused."""
    found = next((q for q in QUANT_TYPES if q.lower() == name.strip().lower()), name)
    check_quant(found)
    return found


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
    problem = cached_problem(target, revision=resolved.revision, quant=quant, full=verify == "full")
    if problem is None:
        manifest = json.loads(manifest_path(target).read_text(encoding="utf-8"))
        return ConvertedModel(target, quant, resolved.revision, True, time.perf_counter() - started, manifest)
    reason = problem if problem.en != _MISSING.en else None
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
    return ConvertedModel(target, quant, resolved.revision, False, time.perf_counter() - started, manifest)


_MISSING = Text("not converted yet", "ещё не преобразована")


def cached_problem(path: Path, *, revision: str, quant: str, full: bool = False) -> Text | None:
    """Why a cached file cannot be used (missing, stale or corrupt), or None when it can."""
    mpath = manifest_path(path)
    if not path.exists() or not mpath.exists():
        return _MISSING
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError):
        return Text("its record is damaged", "повреждена запись о ней")
    if manifest.get("format") != _MANIFEST_FORMAT or manifest.get("converter_version") != CONVERTER_VERSION:
        return Text("it was made by an older converter", "она сделана старой версией преобразователя")
    if manifest.get("quant") != quant:
        return Text("its type does not match", "её тип не совпадает")
    if manifest.get("revision") != revision:
        return Text(
            f"it was made from revision {manifest.get('revision')}, the model is now at {revision}",
            f"она сделана из ревизии {manifest.get('revision')}, а модель теперь в ревизии {revision}",
        )
    try:
        size = path.stat().st_size
        if size != manifest.get("size"):
            return Text(
                f"its size is {size} bytes instead of {manifest.get('size')} (damaged or cut short)",
                f"её размер {size} байт вместо {manifest.get('size')} (повреждена или обрезана)",
            )
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                return Text("it is not a GGUF file (damaged header)", "это не файл GGUF (повреждён заголовок)")
        if sampled_digest(path) != manifest.get("sampled_sha256"):
            return Text("its contents changed (damaged)", "её содержимое изменилось (повреждена)")
        if full and file_sha256(path) != manifest.get("sha256"):
            return Text("its checksum does not match (damaged)", "её контрольная сумма не совпадает (повреждена)")
    except OSError as exc:
        return Text(f"it cannot be read ({exc})", f"её не удаётся прочитать ({exc})")
    return None


def sampled_digest(path: Path) -> str:
    """SHA-256 over the file's size, head, tail and evenly spaced chunks: catches truncation,
    overwritten headers and most damage without reading a gigabyte on every load."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(_HEAD_BYTES))
        if size > _HEAD_BYTES:
            span = size - _HEAD_BYTES
            for i in range(_CHUNKS + 1):
                fh.seek(_HEAD_BYTES + (span - _CHUNK_BYTES) * i // _CHUNKS if span > _CHUNK_BYTES else _HEAD_BYTES)
                h.update(fh.read(_CHUNK_BYTES))
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def invalidate(path: Path) -> None:
    """Forget a cached file (e.g. one that llama.cpp refused to load), so the next load converts again."""
    for p in (manifest_path(path), path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


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

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_unusable(out.parent, exc) from exc
    # A unique temporary name: two processes converting at once each write their own file, and the
    # cache only ever holds complete files (os.replace is atomic).
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    _remove_stale_parts(out)
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
        total = sum(_nbytes(p.shape, p.qtype) for p in plan)
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
        manifest = _publish(
            tmp, out, {"model_id": model_id, "source": str(folder), "revision": revision, "quant": quant}
        )
    except OSError as exc:
        if not _out_of_space(exc, out.parent, sum(_nbytes(p.shape, p.qtype) for p in plan)):
            raise _cache_unusable(out.parent, exc) from exc
        raise DiskSpaceError(  # a full disk is told as one, with the room needed (exit 4)
            Text(
                f"Cannot write the converted model to {out.parent} ({exc}). Free some disk space (it needs "
                f"about {_fmt(sum(_nbytes(p.shape, p.qtype) for p in plan))}) or point GPTDESK_CACHE_DIR to "
                "another disk.",
                f"Не удаётся записать преобразованную модель в {out.parent} ({exc}). Освободите место на "
                f"диске (нужно около {_fmt(sum(_nbytes(p.shape, p.qtype) for p in plan))}) или укажите "
                "другой диск в GPTDESK_CACHE_DIR.",
            )
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            writer.close()
        for leftover in (tmp, manifest_path(tmp)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    report(Text(f"The {quant} copy is ready", f"Копия {quant} готова"), 1.0)
    return manifest


def _publish(tmp: Path, out: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Move a complete file from `tmp` into the cache at `out`, with its manifest; return the manifest."""
    manifest = {
        "format": _MANIFEST_FORMAT,
        "converter_version": CONVERTER_VERSION,
        **fields,
        "size": tmp.stat().st_size,
        "sampled_sha256": sampled_digest(tmp),
        "sha256": file_sha256(tmp),
        **tensor_summary(tmp),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # The old pair goes first, then the new manifest, then the new file: a crash in between
    # leaves a manifest without its file, which reads as missing, never a wrong file as fresh.
    mtmp = manifest_path(tmp)
    mtmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    invalidate(out)
    os.replace(mtmp, manifest_path(out))
    os.replace(tmp, out)
    return manifest


#: A temporary file untouched this long belongs to a conversion that died (killed, Ctrl+C during
#: start-up ends the process at once, power loss): a live one writes every few seconds.
_STALE_PART_S = 15 * 60


def _remove_stale_parts(out: Path) -> None:
    """Delete what dead conversions of this file left behind; a model's worth of disk each."""
    now = time.time()
    for leftover in out.parent.glob(f".{out.name}.*"):  # the temporaries (and their manifests)
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_PART_S:
                leftover.unlink()


def _out_of_space(exc: OSError, folder: Path, need: int) -> bool:
    """Whether a failed write ran out of disk: by its errno, or, for numpy's tofile (which raises a bare
    "OSError: N requested and M written" without one), by the room left on the folder's disk."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    if exc.errno is not None:
        return False
    try:
        return shutil.disk_usage(folder).free < need
    except OSError:
        return False


def _cache_unusable(folder: Path, exc: OSError) -> ModelError:
    """A cache folder on a read-only disk, without permission, or that is a file: name it and the way out."""
    from gptdesk.errors import CacheFolderError

    root = cache_dir()
    why = exc.strerror or type(exc).__name__
    return CacheFolderError(
        Text(
            f"The cache folder {folder} cannot be written ({why}), so the model cannot be converted for "
            f"llama.cpp. Point GPTDESK_CACHE_DIR at a writable folder (now: {root}), make it writable, or "
            "use --engine transformers, which needs no cache.",
            f"Папка кэша {folder} недоступна для записи ({why}), поэтому модель нельзя преобразовать для "
            f"llama.cpp. Укажите в GPTDESK_CACHE_DIR папку, куда можно писать (сейчас: {root}), разрешите "
            "запись или используйте --engine transformers, которому кэш не нужен.",
        ),
        str(folder),
    )


def _byte_shape(shape: tuple[int, ...], qtype: Any) -> tuple[int, ...]:
    import gguf

    return tuple(gguf.quant_shape_to_byte_shape(shape, qtype))


def _fmt(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


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
    source = _private_link(base.path)
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


def _private_link(path: Path) -> Path:
    """A second name for `path` that only this process uses and removes (`path` itself where the
    disk has no hard links); links left by dead processes are removed first."""
    for leftover in path.parent.glob(f".{path.name}.*.input"):
        try:
            pid = int(leftover.name.rsplit(".", 2)[-2].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                leftover.unlink()
        except (ValueError, OSError):
            continue
    link = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.input")
    try:
        os.link(path, link)
    except OSError:
        return path
    return link


def quantize(
    source: Path,
    out: Path,
    quant: str,
    *,
    model_id: str = "",
    revision: str = "",
    base_sha256: str = "",
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    reason: Text | None = None,
    start: float = 0.0,
    poll_seconds: float = 0.1,
) -> dict[str, Any]:
    """Quantize the f16 GGUF `source` to the K-quant `quant` at `out` (atomically); return the manifest.

    llama_model_quantize is one C call with neither progress nor cancel, so it runs in a child
    process: the parent follows the output file's growth and kills the child on cancel.
    """
    if quant not in K_QUANTS:
        raise ValueError(f"{quant!r} is not a K-quant; expected one of {', '.join(K_QUANTS)}")
    ftype, bits = K_QUANTS[quant]

    def report(text: Text, fraction: float | None) -> None:
        if progress is not None:
            progress(text, None if fraction is None else start + (1.0 - start) * fraction)

    why = Text("", "") if reason is None else Text(f" ({reason.en})", f" ({reason.ru})")
    report(Text(f"Quantizing to {quant} with llama.cpp", f"Квантование в {quant} средствами llama.cpp") + why, 0.0)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_unusable(out.parent, exc) from exc
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    _remove_stale_parts(out)
    # The f16 file holds 16 bits per weight: the nominal bits give the size to expect, for the bar.
    expected = max(1, int(source.stat().st_size * bits / 16))
    try:
        with tempfile.TemporaryFile() as errors:
            child: subprocess.Popen[bytes] | _ThreadQuantizer
            if getattr(sys, "frozen", False):
                # A frozen app has no interpreter to start with -m: the C call runs on a thread
                # instead, and a cancel waits for it to end.
                child = _ThreadQuantizer(str(source), str(tmp), ftype, threads or 0)
            else:
                command = [sys.executable, "-m", "gptdesk.models.gguf.convert", "--quantize", str(source), str(tmp)]
                child = subprocess.Popen(
                    [*command, ftype, str(threads or 0)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
            try:
                while child.poll() is None:
                    if cancel is not None and cancel.is_set():
                        child.kill()
                        child.wait()
                        raise ConversionCancelled(Text("The conversion was cancelled.", "Преобразование отменено."))
                    with contextlib.suppress(OSError):
                        report(
                            Text(f"Quantizing to {quant}", f"Квантование в {quant}"),
                            min(0.95, tmp.stat().st_size / expected),
                        )
                    time.sleep(poll_seconds)
            finally:
                if child.poll() is None:  # an exception in the loop (KeyboardInterrupt): no orphan left
                    child.kill()
                    child.wait()
            if child.returncode != 0 or not tmp.exists():
                errors.seek(0)
                said = errors.read().decode("utf-8", "replace") + getattr(child, "error", "")
                detail = said.strip().splitlines()[-3:]
                raise ModelError(
                    Text(
                        f"llama.cpp could not quantize {source.name} to {quant} (exit code {child.returncode}: "
                        f"{' | '.join(detail) or 'no message'}). Use q8_0 or q4_0, which GPT Desk writes itself.",
                        f"llama.cpp не смог квантовать {source.name} в {quant} (код {child.returncode}: "
                        f"{' | '.join(detail) or 'без сообщения'}). Используйте q8_0 или q4_0, их GPT Desk "
                        "пишет сам.",
                    )
                )
        manifest = _publish(
            tmp,
            out,
            {
                "model_id": model_id,
                "source": str(source),
                "revision": revision,
                "quant": quant,
                "quantizer": f"llama.cpp (llama-cpp-python {_llama_cpp_version()})",
                "base_sha256": base_sha256,
            },
        )
    except OSError as exc:
        if not _out_of_space(exc, out.parent, expected):
            raise _cache_unusable(out.parent, exc) from exc
        raise DiskSpaceError(  # a full disk is told as one, with the room needed (exit 4)
            Text(
                f"Cannot write the quantized model to {out.parent} ({exc}). Free some disk space (it needs "
                f"about {_fmt(expected)}) or point GPTDESK_CACHE_DIR to another disk.",
                f"Не удаётся записать квантованную модель в {out.parent} ({exc}). Освободите место на диске "
                f"(нужно около {_fmt(expected)}) или укажите другой диск в GPTDESK_CACHE_DIR.",
            )
        ) from exc
    finally:
        for leftover in (tmp, manifest_path(tmp)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    report(Text(f"The {quant} copy is ready", f"Копия {quant} готова"), 1.0)
    return manifest


def _llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return "?"


def _quantize_child(source: str, out: str, ftype: str, threads: int) -> int:
    """The child process of quantize(): one llama_model_quantize call, llama.cpp's errors on stderr."""
    import ctypes

    import llama_cpp

    from gptdesk.models.gguf.library import close_devnull_at_exit

    close_devnull_at_exit()

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _log(level: int, text: bytes, user_data: Any) -> None:
        if level == 4:  # errors only; the per-tensor chatter stays out of the parent's messages
            sys.stderr.write(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
    return _quantize_call(source, out, ftype, threads)


class _ThreadQuantizer:
    """llama_model_quantize on a thread, with the part of Popen's interface quantize() uses."""

    def __init__(self, source: str, out: str, ftype: str, threads: int) -> None:
        self.returncode: int | None = None
        self.error = ""
        self._thread = threading.Thread(target=self._run, args=(source, out, ftype, threads), daemon=True)
        self._thread.start()

    def _run(self, source: str, out: str, ftype: str, threads: int) -> None:
        try:
            self.returncode = _quantize_call(source, out, ftype, threads)
        except Exception as exc:  # reported by quantize() with the way out
            self.error = f"{type(exc).__name__}: {exc}"
            self.returncode = 1

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        pass  # one C call cannot be interrupted: wait() waits for it

    def wait(self) -> int | None:
        self._thread.join()
        return self.returncode


def _quantize_call(source: str, out: str, ftype: str, threads: int) -> int:
    import ctypes

    import llama_cpp

    from gptdesk.models.gguf.library import close_devnull_at_exit

    close_devnull_at_exit()

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(getattr(llama_cpp, ftype))
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(source.encode("utf-8"), out.encode("utf-8"), ctypes.byref(params))
    return 0 if rc == 0 else 1


# -- what a file will hold: its size before it is made ------------------------------------------

#: (values per block, bytes per block) of the GGML types the files use (ggml's type traits).
_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "Q8_0": (32, 34),
    "Q5_1": (32, 24),
    "Q5_0": (32, 22),
    "Q4_0": (32, 18),
    "Q6_K": (256, 210),
    "Q5_K": (256, 176),
    "Q4_K": (256, 144),
}
#: llama.cpp's fallback for rows that do not split into K-quant blocks (tensor_type_fallback).
_K_FALLBACK = {"Q6_K": "Q8_0", "Q5_K": "Q5_1", "Q4_K": "Q5_0"}
#: Per type: (the matrices' type, the type of the "more bits" matrices, the token embedding's type).
#: llama.cpp's _M mixes give the fused QKV and FFN-down matrices of some layers (use_more_bits) Q6_K,
#: and the tied embedding, which is also the output layer, Q6_K; GPT Desk's own q4_0 keeps it at Q8_0.
_FILE_TYPES: dict[str, tuple[str, str, str]] = {
    "f32": ("F32", "F32", "F32"),
    "f16": ("F16", "F16", "F16"),
    "q8_0": ("Q8_0", "Q8_0", "Q8_0"),
    "q6_K": ("Q6_K", "Q6_K", "Q6_K"),
    "q5_K_M": ("Q5_K", "Q6_K", "Q6_K"),
    "q4_K_M": ("Q4_K", "Q6_K", "Q6_K"),
    "q4_0": ("Q4_0", "Q4_0", "Q8_0"),
}


def _more_bits(layer: int, n_layer: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between."""
    return layer < n_layer // 8 or layer >= 7 * n_layer // 8 or (layer - n_layer // 8) % 3 == 2


def estimated_file_bytes(shape: ModelShape, quant: str) -> int:
    """The size a converted file of this shape and type will have, before it is made.

    Follows the converter's and llama.cpp's choice of type per matrix, the fallbacks for rows that do
    not split into blocks included, plus the vocabulary and metadata the file also holds.
    """
    base, more, embed = _FILE_TYPES[quant]
    d, inner = shape.n_embd, shape.inner

    def matrix(kind: str, rows: int, row_len: int) -> int:
        block, size = _BLOCKS[kind]
        if row_len % block:  # K-quants fall back as llama.cpp does; the converter keeps such rows in f16
            kind = _K_FALLBACK.get(kind, "F16")
            block, size = _BLOCKS[kind]
        return rows * (row_len // block) * size

    total = matrix(embed, shape.vocab_size, d) + 4 * shape.n_positions * d  # position table: F32
    for layer in range(shape.n_layer):
        qkv_ffn_down = more if _more_bits(layer, shape.n_layer) else base
        total += matrix(qkv_ffn_down, 3 * d, d) + matrix(base, d, d) + matrix(base, inner, d)
        total += matrix(qkv_ffn_down, d, inner)
        total += 4 * (4 * d + 3 * d + d + inner + d)  # two layer norms and the biases: F32
    total += 4 * 2 * d  # the final layer norm
    # The vocabulary, its merges and the metadata: measured 1.07 MB for 16,384 tokens, 1.82 MB for 50,257.
    return total + 700_000 + 22 * shape.vocab_size


# -- what a file holds ---------------------------------------------------------------------------


def tensor_summary(path: Path) -> dict[str, Any]:
    """The matrices' types in a GGUF file, for the manifest: which type holds how many weights, and
    which matrices are not in the file's nominal type because their rows do not split into blocks."""
    import gguf

    reader = gguf.GGUFReader(path)
    types: dict[str, dict[str, int]] = {}
    narrow: list[str] = []  # matrices whose rows are not a multiple of a K-quant block
    for t in reader.tensors:
        name = t.tensor_type.name
        entry = types.setdefault(name, {"tensors": 0, "weights": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["weights"] += int(t.n_elements)
        entry["bytes"] += int(t.n_bytes)
        if len(t.shape) >= 2 and int(t.shape[0]) % K_BLOCK and t.tensor_type != gguf.GGMLQuantizationType.F32:
            narrow.append(t.name)
    return {
        "tensor_types": sorted(types),
        "tensor_type_counts": types,
        "rows_not_in_k_blocks": narrow,
    }


def describe(manifest: dict[str, Any]) -> Text:
    """What a cached file holds, in one line: its type, its size, and where its matrices differ from it."""
    quant = str(manifest.get("quant", "?"))
    counts: dict[str, dict[str, int]] = manifest.get("tensor_type_counts") or {}
    total = sum(c["weights"] for c in counts.values()) or 1
    # Largest share first: "Q5_0 62%, Q8_0 33%, F32 5%".
    shares = ", ".join(
        f"{name} {100 * c['weights'] / total:.0f}%"
        for name, c in sorted(counts.items(), key=lambda kv: -kv[1]["weights"])
        if c["weights"] / total >= 0.005
    )
    size = _fmt(int(manifest.get("size", 0)))
    en = f"{quant}, {size}: weights in {shares}" if shares else f"{quant}, {size}"
    ru = f"{quant}, {size}: веса в {shares}" if shares else f"{quant}, {size}"
    narrow = manifest.get("rows_not_in_k_blocks") or []
    if quant in K_QUANTS and narrow:
        en += (
            f"; {len(narrow)} matrices have rows that are not a multiple of {K_BLOCK}, so llama.cpp keeps them "
            "in a 32-block type instead (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0)"
        )
        ru += (
            f"; у {len(narrow)} матриц длина строки не кратна {K_BLOCK}, поэтому llama.cpp хранит их в типе с "
            "блоками по 32 (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0)"
        )
    return Text(en, ru)


def cached_files(model_id: str, root: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The converted files of one model (by the id its manifests record), with their manifests, smallest type last."""
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in iter_cached(root):
        try:
            manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no record, or a damaged one: the next load converts it again
        if isinstance(manifest, dict) and manifest.get("model_id") == model_id:
            found.append((path, manifest))
    order = {q: i for i, q in enumerate(QUANT_TYPES)}
    return sorted(found, key=lambda item: order.get(str(item[1].get("quant")), len(order)))


def iter_cached(root: Path | None = None) -> Iterator[Path]:
    """Every converted file in the cache (for listing and cleaning up)."""
    base = (root or cache_dir()) / "gguf"
    if base.is_dir():
        yield from sorted(base.glob("*/*.gguf"))


if __name__ == "__main__":
    # python -m gptdesk.models.gguf.convert --quantize SOURCE OUT FTYPE THREADS (the child of quantize()).
    if len(sys.argv) == 6 and sys.argv[1] == "--quantize":
        sys.exit(_quantize_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    sys.exit(2)
