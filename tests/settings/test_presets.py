"""Tests for the generation presets."""

from __future__ import annotations

import re

import pytest

from gptdesk.errors import InvalidInputError, SettingsError
from gptdesk.i18n import LANGUAGES
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import DEFAULT_PRESET, PRESETS, SAMPLING_FIELDS, Preset, get_preset

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def test_order_and_default() -> None:
    assert list(PRESETS) == ["balanced", "precise", "creative", "greedy", "sber_demo"]
    assert DEFAULT_PRESET == "balanced"
    assert DEFAULT_PRESET in PRESETS


def test_balanced_equals_the_settings_defaults() -> None:
    assert PRESETS["balanced"].settings() == GenerationSettings()


@pytest.mark.parametrize("preset_id", list(PRESETS))
def test_every_preset_validates(preset_id: str) -> None:
    preset = PRESETS[preset_id]
    settings = preset.settings()
    assert settings.contradictions() == []
    for field, value in preset.values.items():
        assert getattr(settings, field) == value


@pytest.mark.parametrize("preset_id", list(PRESETS))
def test_every_preset_sets_every_sampling_field(preset_id: str) -> None:
    assert set(SAMPLING_FIELDS) <= set(PRESETS[preset_id].values)


@pytest.mark.parametrize("preset_id", list(PRESETS))
def test_switching_presets_replaces_the_sampling_fields(preset_id: str) -> None:
    # Apply a preset on top of settings that came from another one, as the window does.
    start = PRESETS["sber_demo"].settings() if preset_id != "sber_demo" else PRESETS["creative"].settings()
    switched = start.updated(**PRESETS[preset_id].values)
    fresh = PRESETS[preset_id].settings()
    for field in SAMPLING_FIELDS:
        assert getattr(switched, field) == getattr(fresh, field)


def test_switching_to_sber_demo_clears_max_length() -> None:
    start = GenerationSettings.build(max_length=300)
    assert start.updated(**PRESETS["sber_demo"].values).max_new_tokens == 100


@pytest.mark.parametrize("preset_id", list(PRESETS))
def test_names_and_descriptions_are_bilingual(preset_id: str) -> None:
    preset = PRESETS[preset_id]
    assert isinstance(preset, Preset)
    assert preset.id == preset_id
    for text in (preset.name, preset.when):
        assert text.en.strip()
        assert text.ru.strip()
        assert CYRILLIC.search(text.ru)


def test_expected_values() -> None:
    precise = PRESETS["precise"].settings()
    assert (precise.temperature, precise.top_k, precise.top_p, precise.repetition_penalty) == (0.6, 20, 0.85, 1.15)
    creative = PRESETS["creative"].settings()
    assert (creative.temperature, creative.top_k, creative.top_p, creative.repetition_penalty) == (1.2, 0, 0.95, 1.05)
    greedy = PRESETS["greedy"].settings()
    assert greedy.do_sample is False
    assert greedy.num_beams == 1
    sber = PRESETS["sber_demo"].settings()
    assert sber.do_sample is True
    assert sber.num_beams == 10
    assert sber.repetition_penalty == 5.0
    assert sber.top_k == 5
    assert sber.top_p == 0.95
    assert sber.temperature == 1.0
    assert sber.no_repeat_ngram_size == 3
    assert sber.max_new_tokens == 100


def test_greedy_has_no_warnings() -> None:
    assert PRESETS["greedy"].settings().warnings() == []


def test_sber_demo_warns_about_its_cost() -> None:
    fields = {issue.field for issue in PRESETS["sber_demo"].settings().warnings()}
    assert fields == {"num_beams", "repetition_penalty"}


def test_overrides() -> None:
    settings = PRESETS["precise"].settings(seed=7, max_new_tokens=20)
    assert settings.seed == 7
    assert settings.max_new_tokens == 20
    assert settings.temperature == 0.6


def test_overrides_are_validated() -> None:
    with pytest.raises(SettingsError) as info:
        PRESETS["greedy"].settings(num_return_sequences=2)
    assert [i.field for i in info.value.issues] == ["num_return_sequences"]


def test_preset_values_are_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["balanced"].values["temperature"] = 2.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("balanced", "balanced"),
        ("SBER_DEMO", "sber_demo"),
        ("sber-demo", "sber_demo"),
        ("Greedy", "greedy"),
        ("  creative ", "creative"),
        ("Жадный", "greedy"),
        ("точный", "precise"),
        ("как в демо сбера", "sber_demo"),
        ("Sber demo", "sber_demo"),
    ],
)
def test_get_preset(query: str, expected: str) -> None:
    assert get_preset(query) is PRESETS[expected]


def test_unknown_preset_lists_the_valid_ids() -> None:
    with pytest.raises(InvalidInputError) as info:
        get_preset("wild")
    for lang in LANGUAGES:
        message = info.value.message(lang)
        assert "wild" in message
        for preset_id in PRESETS:
            assert preset_id in message
    assert "Unknown preset" in info.value.message("en")
    assert "Неизвестный пресет" in info.value.message("ru")
