"""What a GGUF file holds: the types GPT Desk makes, their names, and a file's size before it is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.models.shape import ModelShape

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
    size = short_size(int(manifest.get("size", 0)))
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


def short_size(n: int) -> str:
    """A size as the messages give it: "1.2 GB", "85 MB"."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"
