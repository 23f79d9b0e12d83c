"""A peft LoRA adapter of a GPT-2 model written as a GGUF LoRA adapter that llama.cpp applies at run time.

peft keeps, for each adapted layer, lora_A of shape (r, in) and lora_B of shape (out, r), GPT-2's Conv1D
layers included (peft transposes for them at run time: fan_in_fan_out). llama.cpp computes a layer as
W x + scale * B (A x) with `ggml_mul_mat(a, x)` and `ggml_mul_mat(b, ...)`, and checks that a's first
dimension is the base weight's input size and b's second is its output size: in numpy order that is
A as (r, in) and B as (out, r), so both are written as peft stores them. The scale llama.cpp uses is
`user_scale * alpha / r`, peft's `lora_alpha / r`: the file carries alpha and the engine sets scale 1.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gptdesk.errors import DamagedAdapterError
from gptdesk.i18n import Text

#: Bumped whenever the writer writes different bytes for the same adapter: older files are rewritten.
LORA_FORMAT = 1
FILE_NAME = "adapter.gguf"

#: GPT-2 module (as peft names it, under transformer.h.N) -> llama.cpp's tensor name for block N.
_TENSORS = {
    "attn.c_attn": "blk.{i}.attn_qkv.weight",
    "attn.c_proj": "blk.{i}.attn_output.weight",
    "mlp.c_fc": "blk.{i}.ffn_up.weight",
    "mlp.c_proj": "blk.{i}.ffn_down.weight",
}
_KEY = re.compile(
    r"(?:^|\.)h\.(?P<block>\d+)\.(?P<module>attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$"
)


def lora_tensors(weights: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
    """peft's tensors (by their safetensors keys) under llama.cpp's names: `<base>.lora_a` and `<base>.lora_b`.

    A key this writer does not know (an adapted embedding, a bias, another architecture) is refused
    rather than silently left out, since the adapter would then change the model less than peft does.
    """
    out: dict[str, np.ndarray[Any, Any]] = {}
    for key, value in weights.items():
        m = _KEY.search(key)
        if m is None:
            raise ValueError(f"tensor {key!r} is not a LoRA matrix of a GPT-2 attention or MLP layer")
        name = _TENSORS[m["module"]].format(i=int(m["block"])) + (".lora_a" if m["ab"] == "A" else ".lora_b")
        out[name] = np.ascontiguousarray(value, dtype=np.float32)
    for name in list(out):
        if name.endswith(".lora_a"):
            b = name[: -len(".lora_a")] + ".lora_b"
            if b not in out:
                raise ValueError(f"{name} has no {b}")
            if out[name].shape[0] != out[b].shape[1]:
                raise ValueError(f"{name} {out[name].shape} and {b} {out[b].shape} disagree on the rank")
    if not out:
        raise ValueError("the adapter holds no LoRA matrices")
    return out


def write_lora_gguf(adapter_folder: Path, alpha: float, out: Path) -> Path:
    """Write the peft adapter in `adapter_folder` as a GGUF LoRA adapter at `out` (atomically)."""
    import gguf
    from safetensors.numpy import load_file

    try:
        weights = load_file(str(adapter_folder / "adapter_model.safetensors"))
        config = json.loads((adapter_folder / "adapter_config.json").read_text(encoding="utf-8"))
        tensors = lora_tensors(weights)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise DamagedAdapterError(
            Text(
                f"The adapter in {adapter_folder} cannot be written for llama.cpp ({exc}). Tune it again, or use "
                "--engine transformers.",
                f"Адаптер в {adapter_folder} не удаётся записать для llama.cpp ({exc}). Обучите его заново "
                "или используйте --engine transformers.",
            )
        ) from exc
    if config.get("use_rslora"):
        raise DamagedAdapterError(
            Text(
                f"The adapter in {adapter_folder} uses rsLoRA scaling, which llama.cpp does not apply. Use "
                "--engine transformers with it.",
                f"Адаптер в {adapter_folder} использует масштаб rsLoRA, который llama.cpp не применяет. "
                "Используйте с ним --engine transformers.",
            )
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(str(tmp), "gpt2")
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(alpha))
        writer.add_uint32("gptdesk.lora_format", LORA_FORMAT)
        for name, value in sorted(tensors.items()):
            writer.add_tensor(name, value)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def ensure_lora_gguf(adapter_folder: Path, alpha: float, weights_digest: str, *, rewrite: bool = False) -> Path:
    """The adapter's GGUF file beside its peft files, written once per weights digest and writer format
    (`rewrite`: again, when llama.cpp could not read the kept one)."""
    out = adapter_folder / FILE_NAME
    stamp = adapter_folder / (FILE_NAME + ".json")
    wanted = {"weights_digest": weights_digest, "format": LORA_FORMAT, "alpha": float(alpha)}
    try:
        if not rewrite and out.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
            return out
    except (OSError, ValueError):
        pass
    write_lora_gguf(adapter_folder, alpha, out)
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return out
