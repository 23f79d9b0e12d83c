"""The catalog of known models: ids, aliases, shapes, sizes and licences."""

from __future__ import annotations

from dataclasses import dataclass

from gptdesk.i18n import Text
from gptdesk.models.shape import DTYPE_BYTES, ModelShape

EMBEDDED_ID = "embedded"


@dataclass(frozen=True)
class CatalogEntry:
    """A model GPT Desk knows by name."""

    id: str  # the canonical hub id (or "embedded")
    short: str  # a short name for the command line
    aliases: tuple[str, ...]
    title: Text
    shape: ModelShape
    licence: str
    description: Text
    weights_dtype: str = "float32"  # how the hub stores the weights, for the download size

    @property
    def n_params(self) -> int:
        return self.shape.param_count

    @property
    def download_bytes(self) -> int:
        return int(self.n_params * DTYPE_BYTES[self.weights_dtype])

    def names(self) -> tuple[str, ...]:
        return (self.id, self.short, *self.aliases)


_RUGPT_LICENCE = "MIT (ai-forever/ru-gpts)"

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        id=EMBEDDED_ID,
        short="ruslit-tiny",
        aliases=("builtin",),
        title=Text("Embedded Russian literature model", "Встроенная модель русской литературы"),
        # The real figures are read from the shipped config.json; this is its shape.
        shape=ModelShape(n_layer=7, n_embd=384, n_head=6, n_positions=512, vocab_size=16384),
        licence="MIT (trained by GPT Desk on public-domain texts)",
        description=Text(
            "A small GPT-2 trained on Russian classics; ships inside GPT Desk and works offline.",
            "Небольшая GPT-2, обученная на русской классике; входит в GPT Desk и работает без сети.",
        ),
        weights_dtype="float16",
    ),
    CatalogEntry(
        id="ai-forever/rugpt3small_based_on_gpt2",
        short="rugpt3small",
        aliases=("sberbank-ai/rugpt3small_based_on_gpt2",),
        title=Text("ruGPT-3 Small (125M)", "ruGPT-3 Small (125M)"),
        shape=ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=2048, vocab_size=50264),
        licence=_RUGPT_LICENCE,
        description=Text(
            "Sber's smallest Russian GPT-3: fast on any laptop, simple texts.",
            "Самая маленькая ruGPT-3 от Сбера: быстрая на любом ноутбуке, простые тексты.",
        ),
    ),
    CatalogEntry(
        id="ai-forever/rugpt3medium_based_on_gpt2",
        short="rugpt3medium",
        aliases=("sberbank-ai/rugpt3medium_based_on_gpt2",),
        title=Text("ruGPT-3 Medium (356M)", "ruGPT-3 Medium (356M)"),
        shape=ModelShape(n_layer=24, n_embd=1024, n_head=16, n_positions=2048, vocab_size=50257),
        licence=_RUGPT_LICENCE,
        description=Text(
            "A balance of quality and speed; needs about 1.5 GB of RAM in float32.",
            "Баланс качества и скорости; около 1,5 ГБ памяти во float32.",
        ),
    ),
    CatalogEntry(
        id="ai-forever/rugpt3large_based_on_gpt2",
        short="rugpt3large",
        aliases=("sberbank-ai/rugpt3large_based_on_gpt2",),
        title=Text("ruGPT-3 Large (760M)", "ruGPT-3 Large (760M)"),
        shape=ModelShape(n_layer=24, n_embd=1536, n_head=16, n_positions=2048, vocab_size=50257),
        licence=_RUGPT_LICENCE,
        description=Text(
            "The best ruGPT-3 that runs on a laptop; 3 GB in float32, 1.5 GB in bfloat16.",
            "Лучшая ruGPT-3 для ноутбука; 3 ГБ во float32, 1,5 ГБ в bfloat16.",
        ),
    ),
    CatalogEntry(
        id="openai-community/gpt2",
        short="gpt2",
        aliases=(),
        title=Text("GPT-2 (124M, English)", "GPT-2 (124M, английский)"),
        shape=ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257),
        licence="MIT (OpenAI)",
        description=Text(
            "OpenAI's original GPT-2 small; English only.",
            "Оригинальная GPT-2 small от OpenAI; только английский.",
        ),
    ),
)


def find_entry(name: str) -> CatalogEntry | None:
    """The catalog entry with this id, short name or alias (case-insensitive), if any."""
    key = name.strip().lower()
    for entry in CATALOG:
        if key in (n.lower() for n in entry.names()):
            return entry
    return None
