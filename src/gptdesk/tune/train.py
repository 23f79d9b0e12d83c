"""LoRA tuning through peft on the reference engine's model: the loop, its checkpoints and its measures."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gptdesk.errors import TuneCancelled
from gptdesk.evaluate.perplexity import measure
from gptdesk.i18n import Text
from gptdesk.models.adapters import Adapter, AdapterManifest, adapters_dir, check_new, install
from gptdesk.models.locate import ResolvedModel, read_config
from gptdesk.models.shape import ModelShape
from gptdesk.tune import checkpoint
from gptdesk.tune.data import TuneTexts, cut_sequences, training_sequences
from gptdesk.tune.options import DEFAULT_MINUTES, TuneMemory, TuneOptions, check_memory


@dataclass(frozen=True)
class TuneProgress:
    """Where a run stands, for a progress bar and a loss chart."""

    phase: str  # "measure" (held-out before), "train", "evaluate" (held-out after)
    step: int
    total_steps: int | None  # None while only a time budget bounds the run and no step was timed yet
    epoch: float
    loss: float | None  # training loss, smoothed
    heldout_loss: float | None  # the latest held-out evaluation
    tokens_per_s: float
    elapsed_s: float
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.step / self.total_steps) if self.total_steps else None


@dataclass
class TuneResult:
    """The end of a run: the adapter saved (None when stopped: the checkpoint is there for --resume)."""

    adapter: Adapter | None
    stopped: bool  # Ctrl+C / Stop
    early_stopped: bool  # the held-out loss stopped improving
    steps: int
    tokens_seen: int
    seconds: float
    bpc_before: float
    bpc_after: float | None
    checkpoint: Path | None
    history: list[tuple[int, float | None, float | None]] = field(default_factory=list)  # step, train, held-out
    memory: TuneMemory | None = None

    @property
    def improvement(self) -> float | None:
        if self.bpc_after is None or self.bpc_before <= 0:
            return None
        return 1.0 - self.bpc_after / self.bpc_before


ProgressFn = Callable[[TuneProgress], None]


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def bits_per_char(model: Any, tokenizer: Any, text: str, context: int, cancel: threading.Event | None = None) -> float:
    """Held-out bits per character under `model` (peft-wrapped or not), by perplexity's method."""
    import torch

    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = next(core.parameters()).device

    def score(ids: list[int], start: int) -> Any:
        with torch.inference_mode():
            full = torch.tensor([ids], device=device)
            hidden = core.transformer(full).last_hidden_state[0]
            parts = []
            for a in range(start - 1, len(ids) - 1, 256):
                b = min(a + 256, len(ids) - 1)
                logprobs = torch.log_softmax(core.lm_head(hidden[a:b]).float(), dim=-1)
                parts.append(logprobs.gather(1, full[0, a + 1 : b + 1, None])[:, 0])
            return torch.cat(parts).double().cpu().numpy()

    was_training = model.training
    model.eval()
    try:
        result = measure(text, tokenizer, score, context=context, cancel=cancel)
    finally:
        model.train(was_training)
    if not result.complete:
        raise TuneCancelled(
            Text(
                "Stopped while measuring the held-out text, before any training: nothing was saved.",
                "Остановлено во время оценки проверочного текста, до обучения: ничего не сохранено.",
            )
        )
    return result.bits_per_char


def _heldout_loss(model: Any, sequences: list[list[int]], device: str) -> float:
    import torch

    was_training = model.training
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for seq in sequences:
            ids = torch.tensor([seq], device=device)
            total += float(model(input_ids=ids, labels=ids).loss)
    model.train(was_training)
    return total / len(sequences)


def _batch(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """The sequence indices of `step`: epochs of seeded permutations, so a resumed run takes the same batches."""
    import torch

    out = []
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, i = divmod(k, n)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        out.append(int(torch.randperm(n, generator=gen)[i]))
    return out


def tune(
    texts: TuneTexts,
    resolved: ResolvedModel,
    name: str,
    options: TuneOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    device: str = "auto",
    available_memory: int | None = None,
    replace_existing: bool = False,
) -> TuneResult:
    """Tune a LoRA adapter on `texts` for the model `resolved` and store it as `name`.

    Stop (cancel set) after the first step saves a checkpoint and returns with `stopped`; `resume` goes on
    from it. Before the first step a stop raises TuneCancelled: there is nothing to keep.
    """
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from gptdesk.models.tokenizer import load_tokenizer

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    options = options or TuneOptions()
    check_new(name, replace=replace_existing or resume)
    options.check()
    cancel = cancel or threading.Event()
    shape = ModelShape.from_config(read_config(resolved.path))
    options = options.for_model(shape.n_positions)
    memory = check_memory(shape, options, available=available_memory)
    dev = pick_device(device)
    started = time.perf_counter()

    tokenizer = load_tokenizer(resolved.path)
    sequences = training_sequences(texts, tokenizer, options.seq_len, options.step_stride)
    held_ids = [int(i) for i in tokenizer(texts.heldout_text, add_special_tokens=False)["input_ids"]]
    held_len = min(options.seq_len, len(held_ids))
    held_seqs = cut_sequences(held_ids, held_len, held_len)[: options.heldout_sequences]

    torch.manual_seed(options.seed)
    base: Any = GPT2LMHeadModel.from_pretrained(resolved.path, dtype=torch.float32)
    base.config.use_cache = False
    base.to(dev)
    folder = checkpoint.checkpoint_dir(name)

    def report(phase: str, step: int, total: int | None, loss: float | None, held: float | None, tps: float) -> None:
        if progress is None:
            return
        elapsed = time.perf_counter() - started
        eta = None
        if options.minutes is not None or options.epochs is None:
            budget = 60.0 * (options.minutes or DEFAULT_MINUTES)
            eta = max(0.0, budget - (prior_seconds + train_seconds))
        elif total and step:
            eta = (prior_seconds + train_seconds) * (total - step) / step
        progress(
            TuneProgress(phase, step, total, step * options.batch_size / len(sequences), loss, held, tps, elapsed, eta)
        )

    prior_seconds = 0.0
    train_seconds = 0.0
    report("measure", 0, None, None, None, 0.0)
    bpc_before = bits_per_char(base, tokenizer, texts.heldout_text, shape.n_positions, cancel)

    config = LoraConfig(
        r=options.rank,
        lora_alpha=round(options.lora_alpha),
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        fan_in_fan_out=True,  # GPT-2's Conv1D keeps its weight as (in, out)
        bias="none",
        task_type="CAUSAL_LM",
    )
    model: Any = get_peft_model(base, config)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=0.0)

    step = 0
    tokens_seen = 0
    history: list[tuple[int, float | None, float | None]] = []
    best_loss = math.inf
    best_state: dict[str, Any] | None = None
    since_best = 0
    if resume:
        _meta, state = checkpoint.load(folder, base_model=resolved.model_id, texts_digest=texts.digest)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens_seen, prior_seconds = int(state["step"]), int(state["tokens_seen"]), float(state["seconds"])
        history = [(int(h[0]), h[1], h[2]) for h in state["history"]]
        best_loss, since_best = float(state["best_loss"]), int(state["since_best"])
        best_state = state.get("best_state")
        bpc_before = float(state.get("bpc_before", bpc_before))

    if options.epochs is not None:
        total_steps: int | None = max(1, math.ceil(options.epochs * len(sequences) / options.batch_size))
        deadline = math.inf
    else:
        total_steps = None
        deadline = 60.0 * (options.minutes or DEFAULT_MINUTES)

    def save_checkpoint() -> None:
        state = {
            "adapter": get_peft_model_state_dict(model),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "tokens_seen": tokens_seen,
            "seconds": prior_seconds + train_seconds,
            "history": history,
            "best_loss": best_loss,
            "since_best": since_best,
            "best_state": best_state,
            "bpc_before": bpc_before,
        }
        meta = checkpoint.CheckpointMeta(
            name, resolved.model_id, resolved.revision, texts.digest, step, asdict(options)
        )
        checkpoint.save(folder, model, state, meta)

    model.train()
    smoothed: float | None = None
    early = False
    stopped = False
    loop_started = time.perf_counter()
    while True:
        if total_steps is not None and step >= total_steps:
            break
        if prior_seconds + train_seconds >= deadline:
            break
        if cancel.is_set():
            stopped = True
            break
        batch = torch.tensor([sequences[i] for i in _batch(step, options.batch_size, len(sequences), options.seed)])
        batch = batch.to(dev)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += int(batch.numel())
        value = float(loss.detach())
        smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
        train_seconds = time.perf_counter() - loop_started
        rate = tokens_seen / max(prior_seconds + train_seconds, 1e-9)
        if total_steps is None and deadline < math.inf:
            per_step = (prior_seconds + train_seconds) / step
            total_steps_shown: int | None = step + int(max(0.0, deadline - prior_seconds - train_seconds) / per_step)
        else:
            total_steps_shown = total_steps
        held: float | None = None
        if step % options.eval_every == 0:
            held = _heldout_loss(model, held_seqs, dev)
            if held < best_loss:
                best_loss, since_best = held, 0
                best_state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
            else:
                since_best += 1
            history.append((step, smoothed, held))
            save_checkpoint()
            if since_best >= options.patience:
                early = True
        else:
            history.append((step, smoothed, None))
        report("train", step, total_steps_shown, smoothed, held, rate)
        if early:
            break

    if stopped:
        if step == 0:
            raise TuneCancelled(
                Text(
                    "Stopped before the first training step: nothing was saved.",
                    "Остановлено до первого шага обучения: ничего не сохранено.",
                )
            )
        save_checkpoint()
        return TuneResult(
            None,
            True,
            False,
            step,
            tokens_seen,
            prior_seconds + train_seconds,
            bpc_before,
            None,
            folder,
            history,
            memory,
        )

    # The end: keep the weights of the best held-out evaluation when a later one was worse.
    if best_state is not None and since_best > 0:
        set_peft_model_state_dict(model, best_state)
    report("evaluate", step, step, smoothed, None, 0.0)
    bpc_after = bits_per_char(model, tokenizer, texts.heldout_text, shape.n_positions)
    seconds = prior_seconds + train_seconds
    manifest = AdapterManifest(
        name=name,
        base_model=resolved.model_id,
        base_revision=resolved.revision,
        rank=options.rank,
        alpha=options.lora_alpha,
        target_modules=list(options.target_modules),
        texts_digest=texts.digest,
        texts_chars=len(texts.text),
        texts_bytes=texts.n_bytes,
        texts_files=[Path(f).name for f in texts.files],
        steps=step,
        tokens_seen=tokens_seen,
        seconds=round(seconds, 1),
        heldout_bpc_before=bpc_before,
        heldout_bpc_after=bpc_after,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        extra={"options": asdict(options), "early_stopped": early, "device": dev},
    )
    root = adapters_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=root))
    model.save_pretrained(str(staging))
    adapter = install(staging, manifest, replace=replace_existing or resume)
    checkpoint.remove(folder)
    return TuneResult(adapter, False, early, step, tokens_seen, seconds, bpc_before, bpc_after, None, history, memory)
