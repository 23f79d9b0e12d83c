"""A tuning run's options and the memory it needs, checked before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gptdesk.errors import InsufficientMemoryError, InvalidInputError
from gptdesk.i18n import Text
from gptdesk.models.cost import available_memory, format_bytes
from gptdesk.models.shape import ModelShape

#: GPT-2's four Conv1D matrices per layer: attention's fused q/k/v and output, the MLP's two.
TARGET_MODULES = ("c_attn", "c_proj", "c_fc")
#: The process before the model: Python, torch, transformers and peft (measured: ~0.45 GB RSS).
RUNTIME_BYTES = 600 * 1024**2
#: Minutes of training when neither --minutes nor --epochs is given.
DEFAULT_MINUTES = 10.0


@dataclass(frozen=True)
class TuneOptions:
    """How to tune; defaults suit a few hundred kilobytes of text on a laptop CPU."""

    rank: int = 8  # LoRA rank: the adapter's width per matrix
    alpha: float | None = None  # LoRA scale numerator; None: 2 * rank (peft scales by alpha / rank)
    dropout: float = 0.05  # LoRA dropout on the adapter's input
    learning_rate: float = 1e-3  # AdamW; LoRA tolerates (and needs, for short runs) a high rate
    seq_len: int = 256  # tokens per training sequence (capped at the model's context)
    stride: int | None = None  # tokens between sequence starts; None: seq_len // 2 (overlapping halves)
    batch_size: int = 4  # sequences per step
    minutes: float | None = None  # a time budget ...
    epochs: float | None = None  # ... or passes over the training text; neither: DEFAULT_MINUTES
    eval_every: int = 25  # steps between held-out evaluations (and checkpoints)
    patience: int = 3  # evaluations in a row without a new best held-out loss before stopping early
    heldout_sequences: int = 16  # at most this many held-out sequences per evaluation (the figure is a mean)
    seed: int = 0
    target_modules: tuple[str, ...] = TARGET_MODULES

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha) if self.alpha is not None else 2.0 * self.rank

    def for_model(self, n_positions: int) -> TuneOptions:
        return replace(self, seq_len=min(self.seq_len, n_positions))

    @property
    def step_stride(self) -> int:
        return self.stride if self.stride is not None else max(1, self.seq_len // 2)

    def check(self) -> None:
        problems: list[Text] = []

        def need(ok: bool, en: str, ru: str) -> None:
            if not ok:
                problems.append(Text(en, ru))

        need(
            1 <= self.rank <= 256,
            f"--rank {self.rank}: use 1 to 256 (8 is usual).",
            f"--rank {self.rank}: от 1 до 256 (обычно 8).",
        )
        need(
            self.seq_len >= 16, f"--seq-len {self.seq_len}: use 16 or more.", f"--seq-len {self.seq_len}: не меньше 16."
        )
        need(
            self.batch_size >= 1,
            f"--batch {self.batch_size}: use 1 or more.",
            f"--batch {self.batch_size}: не меньше 1.",
        )
        need(
            0 < self.learning_rate < 1,
            f"--lr {self.learning_rate}: use a rate between 0 and 1 (1e-3 is usual for LoRA).",
            f"--lr {self.learning_rate}: нужна скорость от 0 до 1 (для LoRA обычно 1e-3).",
        )
        need(
            self.stride is None or 1 <= self.stride <= self.seq_len,
            f"--stride {self.stride}: use 1 to the sequence length ({self.seq_len}).",
            f"--stride {self.stride}: от 1 до длины последовательности ({self.seq_len}).",
        )
        need(
            self.minutes is None or self.minutes > 0,
            f"--minutes {self.minutes}: give a positive number of minutes.",
            f"--minutes {self.minutes}: нужно положительное число минут.",
        )
        need(
            self.epochs is None or self.epochs > 0,
            f"--epochs {self.epochs}: give a positive number of passes.",
            f"--epochs {self.epochs}: нужно положительное число проходов.",
        )
        need(
            self.minutes is None or self.epochs is None,
            "Give --minutes or --epochs, not both.",
            "Укажите --minutes или --epochs, но не оба.",
        )
        need(
            self.eval_every >= 1,
            f"eval_every {self.eval_every}: use 1 or more.",
            f"eval_every {self.eval_every}: не меньше 1.",
        )
        if problems:
            raise InvalidInputError(Text("\n".join(p.en for p in problems), "\n".join(p.ru for p in problems)))


@dataclass(frozen=True)
class TuneMemory:
    """Bytes a tuning run needs, by part."""

    weights: int  # the base model in float32 (frozen)
    adapter: int  # LoRA weights, their gradients and AdamW's two moments
    activations: int  # with gradient checkpointing: each layer's input, plus one layer recomputed
    logits: int  # the output layer's logits, their log-softmax and gradient
    runtime: int

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.activations + self.logits + self.runtime

    def text(self) -> Text:
        parts = [
            ("model weights", "веса модели", self.weights),
            ("adapter and optimizer", "адаптер и оптимизатор", self.adapter),
            ("activations", "активации", self.activations),
            ("logits", "логиты", self.logits),
            ("runtime", "среда", self.runtime),
        ]
        return Text(
            ", ".join(f"{en} {format_bytes(n, 'en')}" for en, _, n in parts),
            ", ".join(f"{ru} {format_bytes(n, 'ru')}" for _, ru, n in parts),
        )


def lora_parameters(shape: ModelShape, rank: int, target_modules: tuple[str, ...] = TARGET_MODULES) -> int:
    """The adapter's parameter count: rank * (in + out) per adapted matrix."""
    d, inner = shape.n_embd, shape.inner
    per_layer = 0
    if "c_attn" in target_modules:
        per_layer += rank * (d + 3 * d)
    if "c_proj" in target_modules:
        per_layer += rank * (d + d) + rank * (inner + d)  # attention's and the MLP's c_proj
    if "c_fc" in target_modules:
        per_layer += rank * (d + inner)
    return shape.n_layer * per_layer


def estimate_memory(shape: ModelShape, options: TuneOptions) -> TuneMemory:
    b, t, d = options.batch_size, options.seq_len, shape.n_embd
    f32 = 4
    stored = shape.n_layer * b * t * d * f32  # checkpointed layer inputs
    # One layer's forward and backward at a time: q/k/v, attention scores per head, the MLP's inner width.
    one_layer = 2 * b * t * (8 * d + 2 * shape.inner + 2 * shape.n_head * t) * f32
    return TuneMemory(
        weights=shape.param_count * f32,
        adapter=lora_parameters(shape, options.rank, options.target_modules) * f32 * 4,
        activations=stored + one_layer,
        logits=3 * b * t * shape.vocab_size * f32,
        runtime=RUNTIME_BYTES,
    )


def check_memory(
    shape: ModelShape, options: TuneOptions, *, available: int | None = None, margin: float = 0.9
) -> TuneMemory:
    """The estimate, or InsufficientMemoryError with the figures and the smaller settings that would fit."""
    cost = estimate_memory(shape, options)
    free = available_memory() if available is None else available
    budget = free * margin
    if cost.total <= budget:
        return cost
    fits: list[Text] = []
    for batch in (2, 1):
        if batch < options.batch_size and estimate_memory(shape, replace(options, batch_size=batch)).total <= budget:
            fits.append(Text(f"--batch {batch}", f"--batch {batch}"))
            break
    for seq in (128, 64):
        if seq < options.seq_len and estimate_memory(shape, replace(options, seq_len=seq)).total <= budget:
            fits.append(Text(f"--seq-len {seq}", f"--seq-len {seq}"))
            break
    if fits:
        tail = Text(
            " Try " + " or ".join(f.en for f in fits) + ", or close other programs.",
            " Попробуйте " + " или ".join(f.ru for f in fits) + " либо закройте другие программы.",
        )
    else:
        tail = Text(
            " No batch or sequence length fits: choose a smaller model, or free "
            f"{format_bytes(cost.total - budget, 'en')} (close other programs).",
            " Не помещается ни при каком размере пакета и длине последовательности: выберите модель поменьше "
            f"или освободите {format_bytes(cost.total - budget, 'ru')} (закройте другие программы).",
        )
    raise InsufficientMemoryError(
        Text(
            f"Not enough memory to tune: the run needs ≈ {format_bytes(cost.total, 'en')} "
            f"({cost.text().en}), but only {format_bytes(free, 'en')} is available ({round(margin * 100)}% of it "
            "may be used).",
            f"Не хватает памяти для обучения: нужно ≈ {format_bytes(cost.total, 'ru')} ({cost.text().ru}), "
            f"а доступно {format_bytes(free, 'ru')} (использовать можно {round(margin * 100)}%).",
        )
        + tail
    )
