"""The bench's tuning rows (issue 20): a few LoRA steps on a shape's random weights in the bench's worker,
and greedy decoding with a LoRA adapter on llama.cpp.

Registered in evaluate.bench_rows' registry from here, so the bench (evaluate) never imports the tuner (tune
imports evaluate for its bits per character); `gptdesk bench` imports this module to have the row.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gptdesk.evaluate.bench_rows import Run, greedy, row_kind

#: The tune row: LoRA rank 8 on 512-token sequences, batch 1, as issue 20 measured its peak RAM.
TUNE_SEQ_LEN = 512
#: The tune row's time budget: the first step always runs; a Large step takes longer than this on a laptop.
TUNE_SECONDS = 3.0


@row_kind("tune", streams_tokens=False, loads_engine=False)
def tune_row(model_folder: Any, prompt: str, new: int) -> Run:
    """A few LoRA tuning steps on the model's folder (gradient checkpointing, fp32): tokens trained per second.

    The row's figure that matters is the worker's peak RAM (the tuning targets: Small ≤ 2 GB, Large ≤ 6 GB).
    """
    import tempfile

    from gptdesk.evaluate.bench_quality import heldout_text
    from gptdesk.models.adapters import remove_adapter
    from gptdesk.models.locate import resolve
    from gptdesk.tune.data import read_texts
    from gptdesk.tune.options import TuneOptions
    from gptdesk.tune.train import tune

    del prompt, new  # the text is the shipped held-out prose; the steps are bounded by time
    with tempfile.TemporaryDirectory(prefix="gptdesk-bench-tune-") as tmp:
        path = Path(tmp) / "prose.txt"
        path.write_text(heldout_text()[:40_000], encoding="utf-8")
        options = TuneOptions(rank=8, seq_len=TUNE_SEQ_LEN, batch_size=1, minutes=TUNE_SECONDS / 60, eval_every=10**6)
        result = tune(read_texts([path]), resolve(str(model_folder)), "bench-tune", options, replace_existing=True)
        remove_adapter("bench-tune")  # the bench measures; it keeps no adapter in the user's cache
    return Run(result.tokens_seen / max(result.seconds, 1e-9), [])


#: The adapter row's adapter: what `gptdesk tune` makes by default (rank 8 on c_attn, c_proj and c_fc).
ADAPTER_NAME = "bench-adapter"


@contextlib.contextmanager
def bench_adapter(model_folder: Any) -> Iterator[dict[str, Any]]:
    """A LoRA adapter of `gptdesk tune`'s default rank and modules, with random weights, for the row's model:
    stored while the row runs (the engine loads it as a user's adapter, converted to GGUF), then removed."""
    import tempfile

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    from gptdesk.models.adapters import AdapterManifest, install, remove_adapter
    from gptdesk.models.locate import resolve
    from gptdesk.tune.options import TuneOptions

    options = TuneOptions()
    resolved = resolve(str(model_folder))
    name = f"{ADAPTER_NAME}-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="gptdesk-bench-adapter-") as tmp:
        torch.manual_seed(0)
        config = LoraConfig(
            r=options.rank,
            lora_alpha=round(options.lora_alpha),
            target_modules=list(options.target_modules),
            fan_in_fan_out=True,
            bias="none",
        )
        model = get_peft_model(GPT2LMHeadModel.from_pretrained(resolved.path), config)
        for key, parameter in model.named_parameters():
            if "lora_B" in key:  # peft starts B at zero; a tuned adapter's are not
                parameter.data.normal_(0, 0.01)
        staging = Path(tmp) / "adapter"
        model.save_pretrained(str(staging))
        del model
        manifest = AdapterManifest(
            name, resolved.model_id, resolved.revision, options.rank, options.lora_alpha,
            list(options.target_modules), "0" * 64, 0, 0, [], 0, 0, 0.0, 0.0, 0.0,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
        install(staging, manifest, replace=True)
    try:
        yield {"adapter": name}
    finally:
        remove_adapter(name)


@row_kind("greedy_adapter", engine_options=bench_adapter)
def greedy_with_adapter(engine: Any, prompt: str, new: int) -> Run:
    """Greedy decoding with a LoRA adapter applied (beside the plain q8_0 row: the adapter's cost in speed)."""
    return greedy(engine, prompt, new)
