"""Named generation presets, kept as data beside the settings they produce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

#: Every preset sets all of these, so switching presets replaces the whole decoding strategy
#: instead of leaving the previous preset's knobs behind.
SAMPLING_FIELDS: tuple[str, ...] = (
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "num_beams",
    "repetition_penalty",
    "no_repeat_ngram_size",
)


@dataclass(frozen=True)
class Preset:
    """A named set of setting values and a sentence on when to use it."""

    id: str
    name: Text
    when: Text
    values: Mapping[str, object]

    def settings(self, **overrides: object) -> GenerationSettings:
        """The preset's settings with `overrides` on top (raises SettingsError if invalid)."""
        return GenerationSettings.build(**{**self.values, **overrides})


def _preset(id: str, name: Text, when: Text, **values: object) -> Preset:
    return Preset(id, name, when, MappingProxyType(values))


_ALL = (
    _preset(
        "balanced",
        Text("Balanced", "Сбалансированный"),
        Text(
            "The default: varied but coherent text for most prompts.",
            "По умолчанию: разнообразный, но связный текст для большинства затравок.",
        ),
        do_sample=True,
        temperature=1.0,
        top_k=10,
        top_p=0.9,
        num_beams=1,
        repetition_penalty=1.1,
        no_repeat_ngram_size=0,
    ),
    _preset(
        "precise",
        Text("Precise", "Точный"),
        Text(
            "When the text should stay close to the prompt: answers, summaries, continuing facts.",
            "Когда текст должен держаться ближе к затравке: ответы, пересказы, продолжение фактов.",
        ),
        do_sample=True,
        temperature=0.6,
        top_k=20,
        top_p=0.85,
        num_beams=1,
        repetition_penalty=1.15,
        no_repeat_ngram_size=0,
    ),
    _preset(
        "creative",
        Text("Creative", "Творческий"),
        Text(
            "For stories and poems, when surprising word choices matter more than staying on topic.",
            "Для рассказов и стихов, когда неожиданные слова важнее, чем строгое следование теме.",
        ),
        do_sample=True,
        temperature=1.2,
        top_k=0,
        top_p=0.95,
        num_beams=1,
        repetition_penalty=1.05,
        no_repeat_ngram_size=0,
    ),
    _preset(
        "greedy",
        Text("Greedy", "Жадный"),
        Text(
            "When the same prompt must always give the same text, e.g. to compare models or check a setup.",
            "Когда одна и та же затравка должна всегда давать один и тот же текст, например "
            "для сравнения моделей или проверки настройки.",
        ),
        do_sample=False,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
    ),
    _preset(
        "sber_demo",
        Text("Sber demo", "Как в демо Сбера"),
        Text(
            "To reproduce the ai-forever ruGPT-3 example notebook; slow and memory-hungry (10 beams).",
            "Чтобы повторить пример из Jupyter-ноутбука ai-forever для ruGPT-3; медленно и требует "
            "много памяти (10 лучей).",
        ),
        do_sample=True,
        temperature=1.0,
        top_k=5,
        top_p=0.95,
        num_beams=10,
        repetition_penalty=5.0,
        no_repeat_ngram_size=3,
        max_new_tokens=100,
        # Clears a max_length left by earlier settings, which would clash with max_new_tokens.
        max_length=None,
    ),
)

PRESETS: dict[str, Preset] = {preset.id: preset for preset in _ALL}
DEFAULT_PRESET = "balanced"


def get_preset(id_or_name: str) -> Preset:
    """A preset by id ("sber_demo") or by English or Russian name, ignoring case."""
    wanted = id_or_name.strip().casefold()
    as_id = wanted.replace("-", "_").replace(" ", "_")
    for preset in PRESETS.values():
        if as_id == preset.id or wanted in (preset.name.en.casefold(), preset.name.ru.casefold()):
            return preset
    listing = ", ".join(f"{p.id} ({p.name.en} / {p.name.ru})" for p in PRESETS.values())
    raise InvalidInputError(
        Text(
            f"Unknown preset {id_or_name!r}. Valid presets: {listing}.",
            f"Неизвестный пресет «{id_or_name}». Доступные пресеты: {listing}.",
        )
    )
