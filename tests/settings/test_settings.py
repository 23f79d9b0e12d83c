"""Tests for GenerationSettings: ranges, types, contradictions, warnings, lengths and help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gptdesk.errors import InvalidInputError, SettingIssue, SettingsError
from gptdesk.i18n import set_language
from gptdesk.settings.generation import DEFAULT_MAX_NEW_TOKENS, GenerationSettings, describe
from gptdesk.settings.help import FIELD_HELP, FieldHelp

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
SRC = Path(__file__).resolve().parents[2] / "src"


def errors_of(**values: object) -> list[SettingIssue]:
    with pytest.raises(SettingsError) as info:
        GenerationSettings.build(**values)
    assert info.value.issues, "SettingsError without issues"
    for issue in info.value.issues:
        assert issue.level == "error"
    return info.value.issues


def only_error(**values: object) -> SettingIssue:
    issues = errors_of(**values)
    assert len(issues) == 1, issues
    return issues[0]


def assert_names(issue: SettingIssue, *parts: str) -> None:
    """Each part appears in both the English and the Russian text."""
    for part in parts:
        assert part in issue.text.en, (part, issue.text.en)
        assert part in issue.text.ru, (part, issue.text.ru)
    assert CYRILLIC.search(issue.text.ru), issue.text.ru


# -- defaults -----------------------------------------------------------------------------------


def test_defaults_are_valid_and_quiet() -> None:
    settings = GenerationSettings()
    assert settings == GenerationSettings.build()
    assert settings.do_sample is True
    assert settings.temperature == 1.0
    assert settings.top_k == 10
    assert settings.top_p == 0.9
    assert settings.num_beams == 1
    assert settings.num_return_sequences == 1
    assert settings.repetition_penalty == 1.1
    assert settings.no_repeat_ngram_size == 0
    assert settings.max_new_tokens is None
    assert settings.max_length is None
    assert settings.min_new_tokens is None
    assert settings.min_length is None
    assert settings.seed is None
    assert settings.stop == []
    assert settings.contradictions() == []
    assert settings.warnings() == []


def test_settings_error_is_invalid_input_and_joins_messages() -> None:
    with pytest.raises(SettingsError) as info:
        GenerationSettings.build(temperature=7.0, top_k=-1)
    error = info.value
    assert isinstance(error, InvalidInputError)
    assert error.exit_code == 2
    assert "temperature = 7.0" in error.message("en")
    assert "top_k = -1" in error.message("en")
    assert "вне допустимого диапазона" in error.message("ru")


# -- ranges -------------------------------------------------------------------------------------


def test_temperature_message_matches_house_example() -> None:
    issue = only_error(temperature=7.0)
    assert issue.field == "temperature"
    assert issue.text.en == (
        "temperature = 7.0 is out of range: it must be between 0 and 5. Typical values are 0.7–1.2."
    )
    assert issue.text.ru == "temperature = 7.0 вне допустимого диапазона: нужно от 0 до 5. Обычно 0.7–1.2."


@pytest.mark.parametrize(
    ("field", "value", "low", "high"),
    [
        ("temperature", -0.1, "0", "5"),
        ("temperature", 5.01, "0", "5"),
        ("top_k", -1, "0", "1000"),
        ("top_k", 1001, "0", "1000"),
        ("top_p", 0, "0", "1"),
        ("top_p", -0.5, "0", "1"),
        ("top_p", 1.01, "0", "1"),
        ("num_beams", 0, "1", "32"),
        ("num_beams", 33, "1", "32"),
        ("num_return_sequences", 0, "1", "16"),
        ("num_return_sequences", 17, "1", "16"),
        ("repetition_penalty", 0.49, "0.5", "10"),
        ("repetition_penalty", 10.5, "0.5", "10"),
        ("no_repeat_ngram_size", -1, "0", "10"),
        ("no_repeat_ngram_size", 11, "0", "10"),
        ("max_new_tokens", 0, "1", "4096"),
        ("max_new_tokens", 4097, "1", "4096"),
        ("max_length", 0, "1", "8192"),
        ("max_length", 8193, "1", "8192"),
        ("min_new_tokens", -1, "0", "4096"),
        ("min_new_tokens", 4097, "0", "4096"),
        ("min_length", -1, "0", "8192"),
        ("min_length", 8193, "0", "8192"),
        ("seed", -1, "0", "4294967295"),
        ("seed", 2**32, "0", "4294967295"),
    ],
)
def test_out_of_range(field: str, value: object, low: str, high: str) -> None:
    issue = only_error(**{field: value})
    assert issue.field == field
    assert_names(issue, f"{field} = {value!r}", low, high)
    assert "out of range" in issue.text.en
    assert "вне допустимого диапазона" in issue.text.ru


def test_top_p_range_says_strictly_greater_than_zero() -> None:
    issue = only_error(top_p=0)
    assert "greater than 0 and at most 1" in issue.text.en
    assert "больше 0 и не больше 1" in issue.text.ru


def test_optional_fields_say_they_may_be_unset() -> None:
    issue = only_error(max_new_tokens=0)
    assert "(or unset)" in issue.text.en
    assert "(или пусто)" in issue.text.ru


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0),
        ("temperature", 5.0),
        ("top_k", 0),
        ("top_k", 1000),
        ("top_p", 1.0),
        ("top_p", 0.01),
        ("num_beams", 32),
        ("repetition_penalty", 0.5),
        ("repetition_penalty", 10.0),
        ("no_repeat_ngram_size", 10),
        ("max_new_tokens", 4096),
        ("max_length", 8192),
        ("min_new_tokens", 0),
        ("min_length", 8192),
        ("seed", 0),
        ("seed", 2**32 - 1),
    ],
)
def test_bounds_are_inclusive(field: str, value: object) -> None:
    extra: dict[str, object] = {"do_sample": False} if (field, value) == ("temperature", 0.0) else {}
    settings = GenerationSettings.build(**{field: value}, **extra)
    assert getattr(settings, field) == value


def test_num_return_sequences_upper_bound_with_sampling() -> None:
    assert GenerationSettings.build(num_return_sequences=16).num_return_sequences == 16


# -- wrong types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "en", "ru"),
    [
        ("temperature", "abc", "is not a number", "не число"),
        ("top_p", [0.5], "is not a number", "не число"),
        ("temperature", None, "is not a number", "не число"),
        ("top_k", "many", "is not a whole number", "не целое число"),
        ("num_beams", 2.5, "is not a whole number", "не целое число"),
        ("seed", "x", "is not a whole number", "не целое число"),
        ("do_sample", "maybe", "is not true or false", "не «да» или «нет»"),
        ("stop", 5, "is not a list of strings", "не список строк"),
    ],
)
def test_wrong_type(field: str, value: object, en: str, ru: str) -> None:
    issue = only_error(**{field: value})
    assert issue.field == field
    assert_names(issue, f"{field} = {value!r}")
    assert en in issue.text.en
    assert ru in issue.text.ru


def test_wrong_type_names_the_valid_range() -> None:
    issue = only_error(temperature="abc")
    assert issue.text.en == "temperature = 'abc' is not a number: give a number between 0 and 5."
    assert issue.text.ru == "temperature = 'abc' — не число: укажите число от 0 до 5."


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_number(value: float) -> None:
    issue = only_error(temperature=value)
    assert issue.field == "temperature"
    assert_names(issue, f"temperature = {value!r}")
    assert "not a finite number" in issue.text.en


def test_numeric_strings_are_accepted() -> None:
    # The CLI and the server hand over text; pydantic's lax mode converts it.
    settings = GenerationSettings.build(temperature="0.8", top_k="40", do_sample="false")
    assert settings.temperature == 0.8
    assert settings.top_k == 40
    assert settings.do_sample is False


# -- unknown fields -----------------------------------------------------------------------------


def test_unknown_field_suggests_close_match() -> None:
    issue = only_error(temprature=0.7)
    assert issue.field == "temprature"
    assert_names(issue, "temprature", "0.7", "temperature")
    assert "Unknown setting" in issue.text.en
    assert "Did you mean" in issue.text.en
    assert "Неизвестный параметр" in issue.text.ru
    assert "Возможно, имелось в виду" in issue.text.ru


def test_unknown_field_without_close_match_lists_known_ones() -> None:
    issue = only_error(banana=1)
    assert_names(issue, "banana", "= 1")
    assert "Did you mean" not in issue.text.en
    assert "Known settings:" in issue.text.en
    assert "Известные параметры:" in issue.text.ru
    for name in FIELD_HELP:
        assert name in issue.text.en


# -- stop strings -------------------------------------------------------------------------------


def test_stop_accepts_list_and_single_string() -> None:
    assert GenerationSettings.build(stop=["\n\n", "###"]).stop == ["\n\n", "###"]
    assert GenerationSettings.build(stop="\n").stop == ["\n"]
    assert GenerationSettings.build(stop=["x" * 200] * 8).stop == ["x" * 200] * 8


def test_stop_empty_string_is_an_error() -> None:
    issue = only_error(stop=["ok", ""])
    assert issue.field == "stop"
    assert_names(issue, "stop[1] = ''")
    assert "empty string" in issue.text.en
    assert "пустая строка" in issue.text.ru


def test_stop_string_too_long() -> None:
    issue = only_error(stop=["x" * 201])
    assert issue.field == "stop"
    assert_names(issue, "stop[0]", "201", "200")


def test_too_many_stop_strings() -> None:
    issue = only_error(stop=[str(i) for i in range(9)])
    assert issue.field == "stop"
    assert_names(issue, "stop = ", "9", "8")
    assert "9 строк" in issue.text.ru


def test_stop_entry_of_wrong_type() -> None:
    issue = only_error(stop=[1])
    assert issue.field == "stop"
    assert_names(issue, "stop[0] = 1")


def test_all_field_errors_are_collected() -> None:
    issues = errors_of(temperature=9, top_k="x", stop=[""], colour="red")
    assert [i.field for i in issues] == ["temperature", "top_k", "stop", "colour"]


# -- contradictions -----------------------------------------------------------------------------


def test_zero_temperature_with_sampling() -> None:
    issue = only_error(temperature=0, do_sample=True)
    assert issue.field == "temperature"
    assert_names(issue, "temperature = 0", "do_sample", "0.05")


def test_zero_temperature_without_sampling_is_fine() -> None:
    assert GenerationSettings.build(temperature=0, do_sample=False).temperature == 0


def test_min_new_tokens_above_max_new_tokens() -> None:
    issue = only_error(min_new_tokens=60, max_new_tokens=50)
    assert issue.field == "min_new_tokens"
    assert_names(issue, "min_new_tokens = 60", "max_new_tokens = 50")


def test_min_length_above_max_length() -> None:
    issue = only_error(min_length=300, max_length=200)
    assert issue.field == "min_length"
    assert_names(issue, "min_length = 300", "max_length = 200")


def test_equal_min_and_max_are_fine() -> None:
    settings = GenerationSettings.build(min_new_tokens=50, max_new_tokens=50)
    assert settings.resolve_lengths(10) == (50, 50)


def test_both_max_new_tokens_and_max_length() -> None:
    issue = only_error(max_new_tokens=50, max_length=200)
    assert issue.field == "max_length"
    assert_names(issue, "max_new_tokens = 50", "max_length = 200")
    assert "Set only one" in issue.text.en
    assert "только один" in issue.text.ru


def test_more_sequences_than_beams_in_beam_search() -> None:
    issue = only_error(num_beams=3, do_sample=False, num_return_sequences=4)
    assert issue.field == "num_return_sequences"
    assert_names(issue, "num_return_sequences = 4", "num_beams = 3")


def test_more_sequences_than_beams_in_beam_sampling() -> None:
    # transformers' GenerationConfig.validate refuses this whenever num_beams > 1.
    issue = only_error(num_beams=2, do_sample=True, num_return_sequences=3)
    assert issue.field == "num_return_sequences"
    assert_names(issue, "num_return_sequences = 3", "num_beams = 2")


def test_sequences_up_to_beams_are_fine() -> None:
    settings = GenerationSettings.build(num_beams=4, do_sample=False, num_return_sequences=4)
    assert settings.num_return_sequences == 4


def test_several_sequences_with_greedy_decoding() -> None:
    issue = only_error(do_sample=False, num_beams=1, num_return_sequences=3, top_k=0, top_p=1.0)
    assert issue.field == "num_return_sequences"
    assert_names(issue, "num_return_sequences = 3", "do_sample")
    assert "same text" in issue.text.en


def test_several_sequences_with_sampling_are_fine() -> None:
    assert GenerationSettings.build(num_return_sequences=3).num_return_sequences == 3


def test_all_contradictions_are_collected() -> None:
    issues = errors_of(
        temperature=0,
        max_new_tokens=10,
        max_length=20,
        min_new_tokens=11,
        min_length=21,
        num_beams=2,
        num_return_sequences=3,
    )
    assert sorted(i.field for i in issues) == [
        "max_length",
        "min_length",
        "min_new_tokens",
        "num_return_sequences",
        "temperature",
    ]


def test_constructor_also_refuses_contradictions() -> None:
    with pytest.raises(SettingsError):
        GenerationSettings(temperature=0.0, do_sample=True)


# -- updated ------------------------------------------------------------------------------------


def test_updated_applies_changes_and_keeps_the_rest() -> None:
    base = GenerationSettings.build(seed=42, stop=["\n"])
    changed = base.updated(temperature=0.7, top_k=40)
    assert changed.temperature == 0.7
    assert changed.top_k == 40
    assert changed.seed == 42
    assert changed.stop == ["\n"]
    assert base.temperature == 1.0


def test_updated_validates_against_current_values() -> None:
    base = GenerationSettings.build(max_length=200)
    issue = errors_of_updated(base, max_new_tokens=50)
    assert issue.field == "max_length"
    assert base.updated(max_new_tokens=50, max_length=None).max_new_tokens == 50


def test_updated_reports_range_and_unknown_fields() -> None:
    base = GenerationSettings()
    with pytest.raises(SettingsError) as info:
        base.updated(temperature=-1, num_beans=4)
    assert [i.field for i in info.value.issues] == ["temperature", "num_beans"]
    assert "num_beams" in info.value.issues[1].text.en


def errors_of_updated(base: GenerationSettings, **changes: object) -> SettingIssue:
    with pytest.raises(SettingsError) as info:
        base.updated(**changes)
    assert len(info.value.issues) == 1
    return info.value.issues[0]


# -- warnings -----------------------------------------------------------------------------------


def warning_fields(settings: GenerationSettings) -> list[str]:
    found = settings.warnings()
    for issue in found:
        assert issue.level == "warning"
        assert CYRILLIC.search(issue.text.ru)
    return [issue.field for issue in found]


def test_sampling_knobs_without_sampling() -> None:
    settings = GenerationSettings.build(do_sample=False, temperature=0.7, top_k=50, top_p=0.9)
    assert warning_fields(settings) == ["temperature", "top_k", "top_p"]
    for issue in settings.warnings():
        assert_names(issue, issue.field, "do_sample")
        assert "no effect" in issue.text.en
        assert "ни на что не влияет" in issue.text.ru


def test_only_the_sampling_knobs_that_are_set_are_named() -> None:
    settings = GenerationSettings.build(do_sample=False, temperature=1.0, top_k=0, top_p=0.8)
    assert warning_fields(settings) == ["top_p"]


def test_sampling_knobs_are_fine_with_sampling() -> None:
    settings = GenerationSettings.build(temperature=0.7, top_k=50, top_p=0.8)
    assert warning_fields(settings) == []


def test_greedy_with_off_knobs_is_quiet() -> None:
    settings = GenerationSettings.build(do_sample=False, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    assert warning_fields(settings) == []


def test_no_repeat_ngram_size_one() -> None:
    assert warning_fields(GenerationSettings.build(no_repeat_ngram_size=1)) == ["no_repeat_ngram_size"]
    assert warning_fields(GenerationSettings.build(no_repeat_ngram_size=3)) == []


def test_strong_repetition_penalty() -> None:
    settings = GenerationSettings.build(repetition_penalty=2.5)
    assert warning_fields(settings) == ["repetition_penalty"]
    assert_names(settings.warnings()[0], "repetition_penalty = 2.5")
    assert warning_fields(GenerationSettings.build(repetition_penalty=2.0)) == []


def test_repetition_penalty_below_one_rewards_repetition() -> None:
    assert warning_fields(GenerationSettings.build(repetition_penalty=0.8)) == ["repetition_penalty"]


def test_many_beams_say_what_they_cost() -> None:
    settings = GenerationSettings.build(num_beams=8)
    assert warning_fields(settings) == ["num_beams"]
    issue = settings.warnings()[0]
    assert_names(issue, "num_beams = 8")
    assert "8 times the memory" in issue.text.en
    assert "в 8 раз больше памяти" in issue.text.ru
    assert warning_fields(GenerationSettings.build(num_beams=7)) == []


def test_both_minimums_set() -> None:
    settings = GenerationSettings.build(min_new_tokens=5, min_length=20)
    assert warning_fields(settings) == ["min_length"]


# -- resolve_lengths ----------------------------------------------------------------------------


def test_lengths_default() -> None:
    assert GenerationSettings().resolve_lengths(30) == (0, DEFAULT_MAX_NEW_TOKENS)
    assert DEFAULT_MAX_NEW_TOKENS == 100


def test_lengths_from_new_tokens() -> None:
    settings = GenerationSettings.build(max_new_tokens=40, min_new_tokens=10)
    assert settings.resolve_lengths(500) == (10, 40)


def test_lengths_from_total_length() -> None:
    settings = GenerationSettings.build(max_length=100, min_length=50)
    assert settings.resolve_lengths(30) == (20, 70)


def test_min_length_shorter_than_prompt_gives_zero() -> None:
    settings = GenerationSettings.build(max_length=100, min_length=20)
    assert settings.resolve_lengths(30) == (0, 70)


def test_min_new_tokens_wins_over_min_length() -> None:
    settings = GenerationSettings.build(min_new_tokens=5, min_length=50)
    assert settings.resolve_lengths(10) == (5, DEFAULT_MAX_NEW_TOKENS)


def test_min_is_capped_at_max() -> None:
    assert GenerationSettings.build(max_length=50, min_new_tokens=40).resolve_lengths(30) == (20, 20)
    assert GenerationSettings.build(min_new_tokens=300).resolve_lengths(5) == (DEFAULT_MAX_NEW_TOKENS,) * 2


def test_mixed_new_and_total_lengths() -> None:
    assert GenerationSettings.build(max_new_tokens=80, min_length=40).resolve_lengths(10) == (30, 80)


@pytest.mark.parametrize(("max_length", "prompt"), [(50, 50), (50, 80)])
def test_max_length_leaves_no_room(max_length: int, prompt: int) -> None:
    settings = GenerationSettings.build(max_length=max_length)
    with pytest.raises(SettingsError) as info:
        settings.resolve_lengths(prompt)
    (issue,) = info.value.issues
    assert issue.field == "max_length"
    assert_names(issue, f"max_length = {max_length}", str(prompt), "max_new_tokens")
    assert "larger" in issue.text.en or "above" in issue.text.en


def test_negative_prompt_length_is_a_bug() -> None:
    with pytest.raises(ValueError, match="prompt_tokens"):
        GenerationSettings().resolve_lengths(-1)


# -- help texts ---------------------------------------------------------------------------------


def test_field_help_covers_every_field_and_nothing_else() -> None:
    assert set(FIELD_HELP) == set(GenerationSettings.model_fields)


@pytest.mark.parametrize("field", list(GenerationSettings.model_fields))
def test_field_help_is_bilingual(field: str) -> None:
    entry = FIELD_HELP[field]
    assert isinstance(entry, FieldHelp)
    for text in (entry.label, entry.help):
        assert text.en.strip()
        assert text.ru.strip()
        assert CYRILLIC.search(text.ru), text.ru
        assert not CYRILLIC.search(text.en), text.en
    assert len(entry.label.en) <= 30
    assert entry.help.en.count(". ") >= 1


@pytest.mark.parametrize("field", list(GenerationSettings.model_fields))
def test_schema_descriptions_are_the_english_help(field: str) -> None:
    schema = GenerationSettings.model_json_schema()
    assert schema["properties"][field]["description"] == FIELD_HELP[field].help.en
    assert schema["additionalProperties"] is False


def test_num_beams_help_mentions_the_cost() -> None:
    assert "memory" in describe("num_beams", "en").lower()
    assert "память" in describe("num_beams", "ru").lower()


def test_describe_follows_the_language() -> None:
    assert describe("temperature", "en") == FIELD_HELP["temperature"].help.en
    assert describe("temperature", "ru") == FIELD_HELP["temperature"].help.ru


def test_describe_uses_the_current_language() -> None:
    set_language("ru")
    try:
        assert describe("top_p") == FIELD_HELP["top_p"].help.ru
    finally:
        set_language(None)


def test_describe_unknown_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        describe("temprature")
    assert "temperature" in info.value.message("en")
    assert "temperature" in info.value.message("ru")


# -- import hygiene -----------------------------------------------------------------------------


def test_import_does_not_pull_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "import gptdesk.settings.generation, gptdesk.settings.presets\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
    )
    assert result.stdout.strip() == ""
