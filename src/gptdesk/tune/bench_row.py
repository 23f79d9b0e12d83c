"""The bench's tune row (issue 20): a few LoRA steps on a shape's random weights in the bench's worker.

Registered in evaluate.bench_rows' registry from here, so the bench (evaluate) never imports the tuner (tune
imports evaluate for its bits per character); `gptdesk bench` imports this module to have the row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.evaluate.bench_rows import Run, row_kind

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
