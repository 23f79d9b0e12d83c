"""LoRA tuning on a tiny random GPT-2: the adapter and its measures, Stop and --resume, a full disk, memory."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import pytest

from gptdesk.errors import DiskSpaceError, InsufficientMemoryError, TuneCancelled
from gptdesk.models.adapters import load_adapter
from gptdesk.models.locate import resolve
from gptdesk.models.shape import ModelShape
from gptdesk.tune import checkpoint
from gptdesk.tune.data import TuneTexts, read_texts
from gptdesk.tune.options import TuneOptions, check_memory
from gptdesk.tune.train import TuneProgress, tune

SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ru_literature" / "prose" / "Chekhov"


@pytest.fixture
def texts(tmp_path: Path) -> TuneTexts:
    # A few pages of one held-out work (see models/embedded/README.md), the same on every run.
    source = SOURCE / "Дама с собачкой.txt"
    text = source.read_text(encoding="utf-8")[:12000]
    path = tmp_path / "chekhov.txt"
    path.write_text(text, encoding="utf-8")
    return read_texts([path])


FAST = TuneOptions(rank=4, epochs=0.1, batch_size=2, seq_len=32, eval_every=2, heldout_sequences=4)


def test_tuning_saves_an_adapter_with_its_manifest_and_lowers_the_held_out_bits(
    texts: TuneTexts, tiny_model_dir: Path
) -> None:
    seen: list[TuneProgress] = []
    options = TuneOptions(rank=4, epochs=0.5, batch_size=4, seq_len=32, eval_every=5, learning_rate=3e-3)
    result = tune(texts, resolve(tiny_model_dir), "tiny", options, progress=seen.append, device="cpu")
    assert result.adapter is not None and result.bpc_after is not None
    assert result.bpc_after < result.bpc_before
    m = load_adapter("tiny").manifest
    assert (m.base_model, m.rank, m.steps) == (str(tiny_model_dir), 4, result.steps)
    assert m.texts_digest == texts.digest and m.texts_chars == len(texts.text)
    assert m.heldout_bpc_after == result.bpc_after and m.target_modules == ["c_attn", "c_proj", "c_fc"]
    phases = [p.phase for p in seen]
    assert phases[0] == "measure" and phases[-1] == "evaluate" and "train" in phases
    trained = [p for p in seen if p.phase == "train"]
    assert trained[-1].step == result.steps == trained[-1].total_steps
    assert all(p.tokens_per_s > 0 and p.loss is not None and p.eta_s is not None for p in trained)
    assert any(p.heldout_loss is not None for p in trained)
    assert not checkpoint.checkpoint_dir("tiny").exists()  # a finished run leaves no checkpoint


def test_stop_saves_a_checkpoint_and_resume_finishes_the_same_run(texts: TuneTexts, tiny_model_dir: Path) -> None:
    cancel = threading.Event()

    def stop_after_three(p: TuneProgress) -> None:
        if p.phase == "train" and p.step == 3:
            cancel.set()

    model = resolve(tiny_model_dir)
    first = tune(texts, model, "resumed", FAST, progress=stop_after_three, cancel=cancel, device="cpu")
    assert first.stopped and first.adapter is None and first.steps == 3
    assert first.checkpoint is not None and checkpoint.load_meta(first.checkpoint) is not None
    steps: list[int] = []
    second = tune(texts, model, "resumed", FAST, progress=lambda p: steps.append(p.step), resume=True, device="cpu")
    assert second.adapter is not None and not second.stopped
    assert min(s for s in steps if s) == 4  # it went on after step 3
    assert second.bpc_before == first.bpc_before
    full = tune(texts, model, "straight", FAST, device="cpu")
    assert second.steps == full.steps


def test_stop_in_the_first_second_saves_nothing(texts: TuneTexts, tiny_model_dir: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TuneCancelled, match="nothing was saved"):
        tune(texts, resolve(tiny_model_dir), "early", FAST, cancel=cancel, device="cpu")
    assert not checkpoint.checkpoint_dir("early").exists()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(
    texts: TuneTexts, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    real_save = torch.save
    calls = {"n": 0}

    def save_until_full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:  # the second checkpoint finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(DiskSpaceError) as info:
        tune(texts, resolve(tiny_model_dir), "full", FAST, device="cpu")
    assert "previous checkpoint (step 2)" in str(info.value)
    monkeypatch.setattr(torch, "save", real_save)
    meta, state = checkpoint.load(
        checkpoint.checkpoint_dir("full"), base_model=str(tiny_model_dir), texts_digest=texts.digest
    )
    assert meta.step == state["step"] == 2
    leftovers = [p.name for p in checkpoint.checkpoint_dir("full").parent.iterdir()]
    assert leftovers == ["full"]


def test_resume_refuses_other_texts(texts: TuneTexts, tiny_model_dir: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    model = resolve(tiny_model_dir)
    tune(texts, model, "mixed", FAST, progress=lambda p: cancel.set() if p.step == 1 else None, cancel=cancel)
    other = tmp_path / "other.txt"
    other.write_text(texts.text.replace("а", "о"), encoding="utf-8")
    with pytest.raises(Exception, match="other texts"):
        tune(read_texts([other]), model, "mixed", FAST, resume=True, device="cpu")


def test_the_memory_estimate_refuses_with_the_figures_and_what_to_change() -> None:
    small = ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=2048, vocab_size=50257)
    options = TuneOptions(batch_size=8, seq_len=512)
    with pytest.raises(InsufficientMemoryError) as info:
        check_memory(small, options, available=2 * 1024**3)
    message = str(info.value)
    assert "Not enough memory to tune" in message and "logits" in message
    assert "--batch" in message or "--seq-len" in message
    with pytest.raises(InsufficientMemoryError, match="choose a smaller model"):
        check_memory(small, options, available=200 * 1024**2)
    assert check_memory(small, TuneOptions(), available=16 * 1024**3).total < 2 * 1024**3
