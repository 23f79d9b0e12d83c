"""Generation settings: one validated, described model of every decoding knob."""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, Self

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from gptdesk.errors import InvalidInputError, SettingIssue, SettingsError
from gptdesk.i18n import Lang, Text
from gptdesk.settings.help import FIELD_HELP, TYPICAL, TYPICAL_RU, help_en

#: New tokens generated when neither max_new_tokens nor max_length is set.
DEFAULT_MAX_NEW_TOKENS = 100

MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 200
MAX_BAD_WORDS = 64
MAX_BAD_WORD_CHARS = 100
#: The smallest temperature above 0: below it the scores overflow float32 when divided, and
#: sampling either fails or turns into a disguised greedy search. Every face refuses it.
MIN_TEMPERATURE = 0.05


StopString = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARS)]
BadWord = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BAD_WORD_CHARS)]


class GenerationSettings(BaseModel):
    """Every decoding knob of `generate()`; defaults are the "Balanced" preset."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False)

    do_sample: bool = Field(default=True, description=help_en("do_sample"))
    # 0 would divide by zero when sampling; it is accepted only for greedy/beam decoding.
    temperature: float = Field(default=1.0, ge=0, le=5, description=help_en("temperature"))
    # Off values: top_k 0, top_p 1.0, repetition_penalty 1.0, no_repeat_ngram_size 0.
    top_k: int = Field(default=10, ge=0, le=1000, description=help_en("top_k"))
    top_p: float = Field(default=0.9, gt=0, le=1, description=help_en("top_p"))
    num_beams: int = Field(default=1, ge=1, le=32, description=help_en("num_beams"))
    num_return_sequences: int = Field(default=1, ge=1, le=16, description=help_en("num_return_sequences"))
    repetition_penalty: float = Field(default=1.1, ge=0.5, le=10, description=help_en("repetition_penalty"))
    no_repeat_ngram_size: int = Field(default=0, ge=0, le=10, description=help_en("no_repeat_ngram_size"))
    # Beam search only, as generate() names and defaults them.
    length_penalty: float = Field(default=1.0, ge=-10, le=10, description=help_en("length_penalty"))
    early_stopping: bool | Literal["never"] = Field(default=False, description=help_en("early_stopping"))
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096, description=help_en("max_new_tokens"))
    # Counts the prompt too: the hobby script's (and old transformers') way.
    max_length: int | None = Field(default=None, ge=1, le=8192, description=help_en("max_length"))
    min_new_tokens: int | None = Field(default=None, ge=0, le=4096, description=help_en("min_new_tokens"))
    min_length: int | None = Field(default=None, ge=0, le=8192, description=help_en("min_length"))
    # None = a fresh random seed each run (the engine records the one it drew).
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description=help_en("seed"))
    stop: list[StopString] = Field(default_factory=list, max_length=MAX_STOP_STRINGS, description=help_en("stop"))
    bad_words: list[BadWord] = Field(default_factory=list, max_length=MAX_BAD_WORDS, description=help_en("bad_words"))

    @field_validator("stop", "bad_words", mode="before")
    @classmethod
    def _single_stop_string(cls, value: object) -> object:
        # The OpenAI protocol allows one string as well as a list; so do we.
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _no_contradictions(self) -> Self:
        # SettingsError is not a ValueError, so pydantic lets it through unwrapped: a
        # contradictory GenerationSettings cannot be constructed by any path that validates.
        issues = self.contradictions()
        if issues:
            raise SettingsError(issues)
        return self

    @classmethod
    def build(cls, **values: object) -> Self:
        """Validate `values`; every problem becomes one bilingual issue of a SettingsError."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError([_issue_from_error(err) for err in exc.errors()]) from None

    def updated(self, **changes: object) -> Self:
        """A copy with `changes` applied, validated like `build`."""
        return self.build(**{**self.model_dump(), **changes})

    def contradictions(self) -> list[SettingIssue]:
        """Errors that involve more than one field (all of them, not just the first)."""
        issues: list[SettingIssue] = []
        if 0 < self.temperature < MIN_TEMPERATURE:
            issues.append(_below_floor(self.temperature))
        if self.do_sample and self.temperature == 0:
            issues.append(
                SettingIssue(
                    "temperature",
                    Text(
                        "temperature = 0 with do_sample on: sampling divides the scores by the "
                        "temperature, so 0 is impossible. Turn do_sample off for greedy "
                        "decoding, or use temperature >= 0.05.",
                        "temperature = 0 при включённом do_sample: при случайном выборе оценки "
                        "делятся на температуру, поэтому 0 невозможен. Выключите do_sample для "
                        "жадного поиска или задайте temperature не меньше 0.05.",
                    ),
                )
            )
        if self.max_new_tokens is not None and self.max_length is not None:
            issues.append(
                SettingIssue(
                    "max_length",
                    Text(
                        f"max_new_tokens = {self.max_new_tokens} and max_length = "
                        f"{self.max_length} are both set: they are two ways to limit the same "
                        "length. Set only one (max_new_tokens is the clearer).",
                        f"Заданы и max_new_tokens = {self.max_new_tokens}, и max_length = "
                        f"{self.max_length}: это два способа ограничить одну и ту же длину. "
                        "Задайте только один (понятнее max_new_tokens).",
                    ),
                )
            )
        pairs = (("min_new_tokens", "max_new_tokens"), ("min_length", "max_length"))
        for low_name, high_name in pairs:
            low, high = getattr(self, low_name), getattr(self, high_name)
            if low is not None and high is not None and low > high:
                issues.append(
                    SettingIssue(
                        low_name,
                        Text(
                            f"{low_name} = {low} is greater than {high_name} = {high}: a "
                            f"minimum above the maximum can never be met. Lower {low_name} or "
                            f"raise {high_name}.",
                            f"{low_name} = {low} больше, чем {high_name} = {high}: минимум "
                            f"больше максимума выполнить невозможно. Уменьшите {low_name} или "
                            f"увеличьте {high_name}.",
                        ),
                    )
                )
        n, beams = self.num_return_sequences, self.num_beams
        # transformers refuses this for beam sampling too, not only for plain beam search.
        if beams > 1 and n > beams:
            issues.append(
                SettingIssue(
                    "num_return_sequences",
                    Text(
                        f"num_return_sequences = {n} is greater than num_beams = {beams}: beam "
                        f"search can return only its {beams} beams. Set num_return_sequences "
                        f"to at most {beams}, or raise num_beams to {n}.",
                        f"num_return_sequences = {n} больше, чем num_beams = {beams}: лучевой "
                        f"поиск может вернуть только {_ru_count(beams, 'луч', 'луча', 'лучей')}. "
                        f"Задайте "
                        f"num_return_sequences не больше {beams} или увеличьте num_beams до {n}.",
                    ),
                )
            )
        if n > 1 and beams == 1 and not self.do_sample:
            issues.append(
                SettingIssue(
                    "num_return_sequences",
                    Text(
                        f"num_return_sequences = {n} with greedy decoding (do_sample off, "
                        "num_beams = 1): every variant would be the same text. Turn do_sample on, "
                        f"set num_beams to at least {n}, or set num_return_sequences to 1.",
                        f"num_return_sequences = {n} при жадном поиске (do_sample выключен, "
                        "num_beams = 1): все варианты были бы одним и тем же текстом. Включите "
                        f"do_sample, задайте num_beams не меньше {n} или num_return_sequences "
                        "= 1.",
                    ),
                )
            )
        return issues

    def warnings(self) -> list[SettingIssue]:
        """Legal but probably unintended settings (level "warning")."""
        issues: list[SettingIssue] = []
        if not self.do_sample:
            idle = {
                "temperature": self.temperature != 1.0,
                "top_k": self.top_k != 0,
                "top_p": self.top_p != 1.0,
            }
            for name, is_set in idle.items():
                if is_set:
                    value = getattr(self, name)
                    issues.append(
                        _warning(
                            name,
                            f"{name} = {value} has no effect because do_sample is off: it "
                            "only shapes random sampling. Turn do_sample on, or reset "
                            f"{name} to {_OFF[name]} to silence this.",
                            f"{name} = {value} ни на что не влияет, потому что do_sample "
                            "выключен: этот параметр действует только при случайном выборе. "
                            f"Включите do_sample или верните {name} = {_OFF[name]}.",
                        )
                    )
        if self.no_repeat_ngram_size == 1:
            issues.append(
                _warning(
                    "no_repeat_ngram_size",
                    "no_repeat_ngram_size = 1 forbids repeating any token at all, even a comma, "
                    "so the text soon degrades. Use 3 against looping "
                    "phrases, or 0 to turn it off.",
                    "no_repeat_ngram_size = 1 запрещает повторять вообще любой токен, даже "
                    "запятую, поэтому текст быстро портится. Против зацикленных фраз ставьте 3, "
                    "а 0 отключает запрет.",
                )
            )
        if self.repetition_penalty > 2:
            rp = self.repetition_penalty
            issues.append(
                _warning(
                    "repetition_penalty",
                    f"repetition_penalty = {rp} is strong: the model avoids every word it has "
                    "already used, even common ones, and starts distorting words. Values of "
                    "1.05–1.3 usually suffice.",
                    f"repetition_penalty = {rp} — сильный штраф: модель избегает всех уже "
                    "использованных слов, даже самых частых, и начинает их коверкать. Обычно "
                    "хватает 1.05–1.3.",
                )
            )
        elif self.repetition_penalty < 1:
            rp = self.repetition_penalty
            issues.append(
                _warning(
                    "repetition_penalty",
                    f"repetition_penalty = {rp} is below 1, so it rewards repetition and the "
                    "text tends to loop. Use 1.0 to turn it off, or 1.05–1.3 to curb loops.",
                    f"repetition_penalty = {rp} меньше 1, то есть поощряет повторы, и текст "
                    "склонен зацикливаться. 1.0 отключает штраф, 1.05–1.3 борется с повторами.",
                )
            )
        if self.num_beams >= 8:
            b = self.num_beams
            issues.append(
                _warning(
                    "num_beams",
                    f"num_beams = {b}: beam search runs {b} sequences side by side, so the "
                    f"attention cache takes about {b} times the memory and each token about "
                    f"{b} times the compute of a single beam. 3–5 beams are usually enough.",
                    f"num_beams = {b}: лучевой поиск ведёт {b} последовательностей "
                    f"одновременно, поэтому кэш внимания занимает примерно "
                    f"в {_ru_times(b)} больше "
                    f"памяти, а каждый токен требует примерно в {_ru_times(b)} больше вычислений, "
                    "чем "
                    "с одним лучом. Обычно хватает 3–5 лучей.",
                )
            )
        if self.min_new_tokens is not None and self.min_length is not None:
            issues.append(
                _warning(
                    "min_length",
                    f"min_length = {self.min_length} is ignored because min_new_tokens = "
                    f"{self.min_new_tokens} is also set. Set only one of them.",
                    f"min_length = {self.min_length} не учитывается, потому что задан и "
                    f"min_new_tokens = {self.min_new_tokens}. Задайте только один из них.",
                )
            )
        return issues

    def resolve_lengths(self, prompt_tokens: int) -> tuple[int, int]:
        """(min_new, max_new): how many tokens to generate after a prompt of this length."""
        if prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must be >= 0, got {prompt_tokens}")
        if self.max_new_tokens is not None:
            max_new = self.max_new_tokens
        elif self.max_length is not None:
            if self.max_length <= prompt_tokens:
                raise SettingsError([_no_room(self.max_length, prompt_tokens)])
            max_new = self.max_length - prompt_tokens
        else:
            max_new = DEFAULT_MAX_NEW_TOKENS
        if self.min_new_tokens is not None:
            min_new = self.min_new_tokens
        elif self.min_length is not None:
            min_new = max(0, self.min_length - prompt_tokens)
        else:
            min_new = 0
        return min(min_new, max_new), max_new


# The value that switches each sampling knob off.
_OFF: dict[str, str] = {"temperature": "1.0", "top_k": "0", "top_p": "1.0"}


def _ru_count(n: int, one: str, few: str, many: str) -> str:
    """'21 токен', '3 токена', '11 токенов': Russian nouns agree with the number."""
    if n % 10 == 1 and n % 100 != 11:
        word = one
    elif 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        word = few
    else:
        word = many
    return f"{n} {word}"


def _ru_times(n: int) -> str:
    return _ru_count(n, "раз", "раза", "раз")


def _warning(field: str, en: str, ru: str) -> SettingIssue:
    return SettingIssue(field, Text(en, ru), level="warning")


def _below_floor(temperature: float) -> SettingIssue:
    shown = _show(temperature)
    return SettingIssue(
        "temperature",
        Text(
            f"temperature = {shown} is below {MIN_TEMPERATURE}: dividing the scores by so small a number "
            "overflows, and sampling either fails or quietly becomes greedy. Use at least "
            f"{MIN_TEMPERATURE} (0.2–0.5 for cautious text), or turn do_sample off for greedy decoding "
            "(temperature 0 on the server).",
            f"temperature = {shown} меньше {MIN_TEMPERATURE}: деление оценок на такое малое число даёт "
            "переполнение, и случайный выбор либо ломается, либо незаметно становится жадным. Задайте "
            f"не меньше {MIN_TEMPERATURE} (0.2–0.5 для осторожного текста) или выключите do_sample для "
            "жадного поиска (temperature 0 на сервере).",
        ),
    )


def _no_room(max_length: int, prompt_tokens: int) -> SettingIssue:
    suggested = prompt_tokens + DEFAULT_MAX_NEW_TOKENS
    tokens_en = f"{prompt_tokens} token{'' if prompt_tokens == 1 else 's'}"
    tokens_ru = _ru_count(prompt_tokens, "токен", "токена", "токенов")
    return SettingIssue(
        "max_length",
        Text(
            f"max_length = {max_length} leaves no room to generate: the prompt alone is {tokens_en}, "
            f"and max_length counts the prompt plus the new text. Set max_length above {prompt_tokens} "
            f"(e.g. {suggested}), or set max_new_tokens instead.",
            f"max_length = {max_length} не оставляет места для генерации: одна затравка занимает "
            f"{tokens_ru}, а max_length считает затравку вместе с новым текстом. Задайте max_length "
            f"больше {prompt_tokens} (например, {suggested}) или задайте вместо него max_new_tokens.",
        ),
    )


def describe(field: str, lang: Lang | None = None) -> str:
    """The help text of one setting, in `lang` (default: the user's language)."""
    try:
        return FIELD_HELP[field].help.get(lang)
    except KeyError:
        raise InvalidInputError(_unknown_field(field, None)) from None


# -- turning pydantic's errors into bilingual issues ------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(bound: object) -> str:
    if isinstance(bound, float) and bound.is_integer():
        return str(int(bound))
    return str(bound)


def _bounds(field: str) -> dict[str, object]:
    found: dict[str, object] = {}
    for item in GenerationSettings.model_fields[field].metadata:
        for kind in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, kind.capitalize())):
                found[kind] = getattr(item, kind)
    return found


def _range(field: str) -> Text:
    """'between 0 and 5' for a field, from its own declared bounds."""
    b = _bounds(field)
    low = b.get("ge", b.get("gt"))
    high = b.get("le", b.get("lt"))
    lo, hi = _number(low), _number(high)
    if "gt" in b:
        text = Text(
            f"greater than {lo} and at most {hi}",
            f"больше {lo} и не больше {hi}",
        )
    else:
        text = Text(f"between {lo} and {hi}", f"от {lo} до {hi}")
    if GenerationSettings.model_fields[field].default is None:
        text = text + Text(" (or unset)", " (или пусто)")
    return text


def _typical(field: str) -> Text:
    if field not in TYPICAL:
        return Text("", "")
    en = TYPICAL[field]
    return Text(f" Typical values are {en}.", f" Обычно {TYPICAL_RU.get(field, en)}.")


def _unknown_field(name: str, value: object | None) -> Text:
    shown = "" if value is None else f" = {_show(value)}"
    close = difflib.get_close_matches(name, list(FIELD_HELP), n=3, cutoff=0.6)
    if close:
        options = ", ".join(close)
        hint = Text(f" Did you mean: {options}?", f" Возможно, имелось в виду: {options}?")
    else:
        options = ", ".join(FIELD_HELP)
        hint = Text(f" Known settings: {options}.", f" Известные параметры: {options}.")
    return (
        Text(
            f"Unknown setting {name!r}{shown}.",
            f"Неизвестный параметр «{name}»{shown}.",
        )
        + hint
    )


def _issue_from_error(err: ErrorDetails) -> SettingIssue:
    """One pydantic error dict -> one bilingual issue naming the field and the value."""
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind: str = err["type"]
    value: object = err["input"]
    field = str(loc[0]) if loc else "settings"
    if kind == "extra_forbidden":
        return SettingIssue(field, _unknown_field(field, value))
    if field not in FIELD_HELP:
        # Not a field error (e.g. the input was not a mapping); report pydantic's words.
        return SettingIssue(field, Text(str(err["msg"]), str(err["msg"])))
    if field == "stop":
        return SettingIssue(field, _stop_issue(loc, kind, value, str(err["msg"])))
    if field == "bad_words":
        return SettingIssue(field, _bad_words_issue(loc, kind, value, str(err["msg"])))
    where = f"{field} = {_show(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        text = (
            Text(
                f"{where} is out of range: it must be ",
                f"{where} вне допустимого диапазона: нужно ",
            )
            + _range(field)
            + Text(".", ".")
            + _typical(field)
        )
    elif kind == "finite_number":
        text = (
            Text(
                f"{where} is not a finite number: give a number ",
                f"{where} — не конечное число: укажите число ",
            )
            + _range(field)
            + Text(".", ".")
        )
    elif kind.startswith("bool"):
        text = Text(
            f"{where} is not true or false: give true or false (also accepted: 1/0, yes/no, on/off).",
            f"{where} — не «да» или «нет»: укажите true или false (подходят также 1/0, yes/no, on/off).",
        )
    elif kind.startswith("int"):
        text = (
            Text(
                f"{where} is not a whole number: give a whole number ",
                f"{where} — не целое число: укажите целое число ",
            )
            + _range(field)
            + Text(".", ".")
        )
    elif kind.startswith("float"):
        text = (
            Text(
                f"{where} is not a number: give a number ",
                f"{where} — не число: укажите число ",
            )
            + _range(field)
            + Text(".", ".")
        )
    else:
        msg = str(err["msg"])
        text = Text(f"{where} is invalid: {msg}.", f"{where} — недопустимое значение: {msg}.")
    return SettingIssue(field, text)


def _bad_words_issue(loc: tuple[int | str, ...], kind: str, value: object, msg: str) -> Text:
    if len(loc) >= 2:
        where = f"bad_words[{loc[1]}] = {_show(value)}"
        if kind == "string_too_short":
            return Text(
                f"{where} is an empty string: there is nothing to ban. Remove it.",
                f"{where} — пустая строка: запрещать нечего. Удалите её.",
            )
        if kind == "string_too_long" and isinstance(value, str):
            return Text(
                f"{where} is {len(value)} characters long: a banned word or phrase may have at most "
                f"{MAX_BAD_WORD_CHARS}. Shorten it.",
                f"{where} длиной {_ru_count(len(value), 'символ', 'символа', 'символов')}: запрещённое слово или "
                f"фраза может быть не длиннее {MAX_BAD_WORD_CHARS} символов. Сократите её.",
            )
        return Text(
            f"{where} is not a string: every banned entry must be text.",
            f"{where} — не строка: каждое запрещённое слово должно быть текстом.",
        )
    where = f"bad_words = {_show(value)}"
    if kind == "too_long" and isinstance(value, list | tuple):
        return Text(
            f"{where} has {len(value)} entries: at most {MAX_BAD_WORDS} are allowed. Keep the ones you need.",
            f"{where} содержит {_ru_count(len(value), 'запись', 'записи', 'записей')}: допускается не больше "
            f"{MAX_BAD_WORDS}. Оставьте только нужные.",
        )
    if kind == "list_type":
        return Text(
            f"{where} is not a list of strings: give a list such as ['однако', 'тем не менее'].",
            f"{where} — не список строк: укажите список, например ['однако', 'тем не менее'].",
        )
    return Text(f"{where} is invalid: {msg}.", f"{where} — недопустимое значение: {msg}.")


def _stop_issue(loc: tuple[int | str, ...], kind: str, value: object, msg: str) -> Text:
    if len(loc) >= 2:
        where = f"stop[{loc[1]}] = {_show(value)}"
        if kind == "string_too_short":
            return Text(
                f"{where} is an empty string: it would match everywhere and end generation at once. Remove it.",
                f"{where} — пустая строка: она нашлась бы где угодно и сразу остановила бы генерацию. Удалите её.",
            )
        if kind == "string_too_long" and isinstance(value, str):
            n = len(value)
            return Text(
                f"{where} is {n} characters long: a stop string may have at most {MAX_STOP_CHARS}. Shorten it.",
                f"{where} длиной {_ru_count(n, 'символ', 'символа', 'символов')}: "
                f"стоп-строка может быть не длиннее "
                f"{MAX_STOP_CHARS} символов. Сократите её.",
            )
        return Text(
            f"{where} is not a string: every stop entry must be text.",
            f"{where} — не строка: каждая стоп-строка должна быть текстом.",
        )
    where = f"stop = {_show(value)}"
    if kind == "too_long" and isinstance(value, list | tuple):
        n = len(value)
        return Text(
            f"{where} has {n} strings: at most {MAX_STOP_STRINGS} are allowed. Keep the ones you need.",
            f"{where} содержит {_ru_count(n, 'строку', 'строки', 'строк')}: "
            f"допускается не больше {MAX_STOP_STRINGS}. "
            "Оставьте только нужные.",
        )
    if kind == "list_type":
        return Text(
            f"{where} is not a list of strings: give a list such as ['\\n\\n'].",
            f"{where} — не список строк: укажите список, например ['\\n\\n'].",
        )
    return Text(f"{where} is invalid: {msg}.", f"{where} — недопустимое значение: {msg}.")
