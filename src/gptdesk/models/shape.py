"""The dimensions of a GPT-2-family model and the bytes per weight of each type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Bytes per weight. The GGML-style block formats carry one fp16 scale per block of 32 weights:
#: q8_0 = 32 int8 + 2 bytes, q4_0 = 32 nibbles + 2 bytes.
DTYPE_BYTES: dict[str, float] = {
    "float32": 4.0,
    "bfloat16": 2.0,
    "float16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    # llama.cpp's K-quants, at their nominal bits per weight for a model whose rows split into
    # 256-blocks (narrower models fall back to 32-block types of a few % more).
    "q6_K": 6.56 / 8,
    "q5_K_M": 5.69 / 8,
    "q4_K_M": 4.85 / 8,
}


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a GPT-2-family model that decide its size and its cache."""

    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    vocab_size: int
    n_inner: int | None = None  # None: the GPT-2 default of 4 * n_embd

    @property
    def inner(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def param_count(self) -> int:
        d, inner = self.n_embd, self.inner
        embeddings = self.vocab_size * d + self.n_positions * d  # wte + wpe
        layer_norm = 2 * d  # weight and bias
        attention = (d * 3 * d + 3 * d) + (d * d + d)  # c_attn + c_proj
        mlp = (d * inner + inner) + (inner * d + d)  # c_fc + c_proj
        per_layer = 2 * layer_norm + attention + mlp
        # The LM head is tied to wte (transformers' _tied_weights_keys), so it adds no parameters.
        return embeddings + self.n_layer * per_layer + layer_norm

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | object) -> ModelShape:
        """Read a config.json dict or a config object (GPT2Config or anything with the same names)."""

        def get(name: str) -> Any:
            if isinstance(cfg, Mapping):
                return cfg.get(name)
            return getattr(cfg, name, None)

        n_positions = get("n_positions")
        if n_positions is None:
            n_positions = get("n_ctx")  # old GPT-2 configs name the context length n_ctx only
        values = {
            "n_layer": get("n_layer"),
            "n_embd": get("n_embd"),
            "n_head": get("n_head"),
            "n_positions": n_positions,
            "vocab_size": get("vocab_size"),
        }
        missing = sorted(name for name, value in values.items() if value is None)
        if missing:
            raise ValueError(f"model config lacks {', '.join(missing)}; is it a GPT-2 config?")
        n_inner = get("n_inner")
        return cls(
            n_layer=int(values["n_layer"]),
            n_embd=int(values["n_embd"]),
            n_head=int(values["n_head"]),
            n_positions=int(values["n_positions"]),
            vocab_size=int(values["vocab_size"]),
            n_inner=int(n_inner) if n_inner is not None else None,
        )
