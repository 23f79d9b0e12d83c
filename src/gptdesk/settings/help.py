"""Each generation setting's label and help: what it does, typical values, what it costs (English and Russian)."""

from __future__ import annotations

from dataclasses import dataclass

from gptdesk.i18n import Text


@dataclass(frozen=True)
class FieldHelp:
    """A setting's short label and its help (what it does, typical values, what it costs)."""

    label: Text
    help: Text


FIELD_HELP: dict[str, FieldHelp] = {
    "do_sample": FieldHelp(
        Text("Random sampling", "Случайный выбор"),
        Text(
            "When on, each next token is drawn at random from the model's probabilities, "
            "shaped by temperature, top_k and top_p, so every run gives a different text. "
            "When off, the model always takes the most likely token (greedy decoding, or beam "
            "search if num_beams > 1): the output is repeatable but often dull and repetitive. "
            "Either way it costs nothing extra.",
            "Если включено, каждый следующий токен выбирается случайно по вероятностям модели, "
            "которые настраивают temperature, top_k и top_p, поэтому каждый запуск даёт новый "
            "текст. Если выключено, модель всегда берёт самый вероятный токен (жадный поиск или "
            "лучевой поиск при num_beams > 1): результат повторяется от запуска к запуску, но "
            "часто скучен и склонен к повторам. На скорость не влияет.",
        ),
    ),
    "temperature": FieldHelp(
        Text("Temperature", "Температура"),
        Text(
            "Divides the model's scores before sampling: below 1 the likely tokens become "
            "likelier and the text more predictable, above 1 the text becomes more varied and, "
            "past about 1.5, incoherent. Typical values are 0.7–1.2; the smallest is 0.05 (0 only "
            "with do_sample off). It only matters when do_sample is on. Costs nothing.",
            "Делит оценки модели перед случайным выбором: ниже 1 вероятные токены становятся "
            "ещё вероятнее и текст предсказуемее, выше 1 текст разнообразнее, а примерно после "
            "1.5 он теряет связность. Обычно 0.7–1.2; наименьшая — 0.05 (0 только при "
            "выключенном do_sample). Действует только при включённом do_sample. На скорость не влияет.",
        ),
    ),
    "top_k": FieldHelp(
        Text("Top-k", "Топ-k"),
        Text(
            "Sampling chooses only among the k most likely tokens; 0 turns this limit off. "
            "Small values (5–40) keep the text on track, large ones let in rarer words. "
            "Costs next to nothing.",
            "Случайный выбор идёт только среди k самых вероятных токенов; 0 отключает это "
            "ограничение. Малые значения (5–40) удерживают текст в рамках темы, большие "
            "пропускают более редкие слова. На скорость почти не влияет.",
        ),
    ),
    "top_p": FieldHelp(
        Text("Top-p (nucleus)", "Топ-p (ядерная выборка)"),
        Text(
            "Sampling chooses only among the most likely tokens whose probabilities add up to p; "
            "1.0 turns this limit off. Typical values are 0.8–0.95: lower values make the text "
            "safer and plainer. Costs next to nothing.",
            "Случайный выбор идёт только среди самых вероятных токенов, чьи вероятности в сумме "
            "дают p; 1.0 отключает это ограничение. Обычно 0.8–0.95: чем меньше значение, тем "
            "осторожнее и проще текст. На скорость почти не влияет.",
        ),
    ),
    "num_beams": FieldHelp(
        Text("Beams", "Число лучей"),
        Text(
            "Beam search keeps this many candidate texts at every step and returns the most "
            "likely ones; 1 means no beam search. Values of 3–5 give more coherent but more "
            "predictable text. Memory for the attention cache and time per token grow roughly "
            "in proportion: 10 beams cost about 10 times as much as one.",
            "Лучевой поиск на каждом шаге держит столько вариантов текста и возвращает самые "
            "вероятные; 1 — без лучевого поиска. Значения 3–5 дают более связный, но и более "
            "предсказуемый текст. Память под кэш внимания и время на токен растут примерно "
            "пропорционально: 10 лучей обходятся примерно в 10 раз дороже одного.",
        ),
    ),
    "num_return_sequences": FieldHelp(
        Text("Variants", "Число вариантов"),
        Text(
            "How many different texts to generate from the same prompt in one run. With "
            "sampling each variant is drawn independently; with beam search they are the best "
            "beams, so there can be no more of them than num_beams. Memory and time grow with "
            "the count.",
            "Сколько разных текстов получить из одной затравки за один запуск. При случайном "
            "выборе каждый вариант генерируется независимо, при лучевом поиске это лучшие лучи, "
            "поэтому вариантов не может быть больше, чем num_beams. Память и время растут с "
            "числом вариантов.",
        ),
    ),
    "repetition_penalty": FieldHelp(
        Text("Repetition penalty", "Штраф за повторы"),
        Text(
            "Makes tokens that already occur in the text (the prompt included) less likely; "
            "1.0 turns it off. Values of 1.05–1.3 curb loops; above 2 the model starts avoiding "
            "ordinary words and distorting them. Costs next to nothing.",
            "Снижает вероятность токенов, которые уже встречались в тексте (включая затравку); "
            "1.0 отключает штраф. Значения 1.05–1.3 избавляют от зацикливания; выше 2 модель "
            "начинает избегать обычных слов и коверкать их. На скорость почти не влияет.",
        ),
    ),
    "no_repeat_ngram_size": FieldHelp(
        Text("No-repeat n-gram size", "Запрет повтора n-грамм"),
        Text(
            "Forbids any run of this many tokens from occurring twice; 0 turns it off. 3 is a "
            "common choice against looping phrases; 1 would forbid repeating any token at all, "
            "even a comma. Slightly slows every step on long texts.",
            "Запрещает повторно использовать любую последовательность из стольких токенов; "
            "0 отключает запрет. Против зацикленных фраз обычно ставят 3; значение 1 запретило "
            "бы повторять вообще любой токен, даже запятую. На длинных текстах немного "
            "замедляет каждый шаг.",
        ),
    ),
    "length_penalty": FieldHelp(
        Text("Length penalty", "Штраф за длину"),
        Text(
            "Beam search only: a finished candidate's score is its total log-probability divided by "
            "its length to this power. Above 0 (1.0 is the default) longer texts are favoured, below 0 "
            "shorter ones; 0 compares raw probabilities, which favours short texts. Costs nothing.",
            "Только для лучевого поиска: оценка законченного варианта — его суммарная "
            "лог-вероятность, делённая на длину в этой степени. Больше 0 (по умолчанию 1.0) — "
            "предпочтение длинным текстам, меньше 0 — коротким; 0 сравнивает вероятности как есть, "
            "что выгодно коротким текстам. На скорость не влияет.",
        ),
    ),
    "early_stopping": FieldHelp(
        Text("Early stopping", "Ранняя остановка"),
        Text(
            "Beam search only: when to stop. true — as soon as num_beams candidates have ended; "
            'false (the default) — when no running beam is likely to beat them; "never" — only '
            "when none can beat them at all (the canonical beam search, the slowest). true is the fastest.",
            "Только для лучевого поиска: когда останавливаться. true — как только закончились "
            "num_beams вариантов; false (по умолчанию) — когда ни один идущий луч, скорее всего, "
            'их не превзойдёт; "never" — только когда превзойти их уже невозможно '
            "(канонический лучевой поиск, самый медленный). true — самый быстрый.",
        ),
    ),
    "max_new_tokens": FieldHelp(
        Text("Max new tokens", "Макс. новых токенов"),
        Text(
            "The most tokens to generate, not counting the prompt. Time grows with every token, "
            "and the prompt plus the new tokens must fit the model's context (1024 tokens for "
            "GPT-2, 2048 for ruGPT-3). If unset, max_length is used, or else 100 new tokens.",
            "Сколько токенов сгенерировать самое большее, не считая затравки. Время растёт с "
            "каждым токеном, а затравка вместе с новыми токенами должна поместиться в контекст "
            "модели (1024 токена у GPT-2, 2048 у ruGPT-3). Если не задано, берётся max_length, "
            "а без него — 100 новых токенов.",
        ),
    ),
    "max_length": FieldHelp(
        Text("Max length", "Макс. длина"),
        Text(
            "The most tokens in total, the prompt included: the older way to limit length, so "
            "a long prompt leaves less room for new text. Set either this or max_new_tokens, "
            "not both. If neither is set, 100 new tokens are generated.",
            "Наибольшая общая длина в токенах вместе с затравкой: это старый способ ограничить "
            "длину, и чем длиннее затравка, тем меньше места остаётся новому тексту. Задайте "
            "либо его, либо max_new_tokens, но не оба. Если не задано ни то ни другое, "
            "генерируется 100 новых токенов.",
        ),
    ),
    "min_new_tokens": FieldHelp(
        Text("Min new tokens", "Мин. новых токенов"),
        Text(
            "The model may not end the text (emit its end-of-text token) before it has "
            "generated this many tokens, the prompt not counted. Useful when the model stops "
            "too early; 0 or unset means no minimum. Costs only the time of the extra tokens.",
            "Модель не может закончить текст (выдать токен конца текста), пока не сгенерирует "
            "столько токенов, не считая затравки. Полезно, если модель обрывает текст слишком "
            "рано; 0 или пусто — без минимума. Стоит только времени на дополнительные токены.",
        ),
    ),
    "min_length": FieldHelp(
        Text("Min length", "Мин. длина"),
        Text(
            "Like min_new_tokens, but the prompt counts too: the older way, which has no effect "
            "once the prompt is longer than this. 0 or unset means no minimum. Costs only the "
            "time of the extra tokens.",
            "То же, что min_new_tokens, но с учётом затравки: это старый способ, и если "
            "затравка длиннее, параметр ни на что не влияет. 0 или пусто — без минимума. "
            "Стоит только времени на дополнительные токены.",
        ),
    ),
    "seed": FieldHelp(
        Text("Seed", "Зерно"),
        Text(
            "Starts the random number generator from a fixed point, so the same prompt, "
            "settings and model give the same text again. Leave it unset for a fresh random "
            "seed on every run. Costs nothing.",
            "Задаёт начальное состояние генератора случайных чисел, чтобы та же затравка с теми "
            "же параметрами и моделью снова дала тот же текст. Оставьте пустым, чтобы каждый "
            "запуск получал новое случайное зерно. На скорость не влияет.",
        ),
    ),
    "stop": FieldHelp(
        Text("Stop strings", "Стоп-строки"),
        Text(
            "Generation ends as soon as the text contains one of these strings. Up to 8 "
            "strings of 1–200 characters, e.g. a blank line to stop after one paragraph. "
            "Saves the time the model would spend on unwanted text.",
            "Генерация заканчивается, как только в тексте появляется одна из этих строк. До 8 "
            "строк длиной от 1 до 200 символов, например пустая строка, чтобы остановиться "
            "после одного абзаца. Экономит время, которое модель потратила бы на ненужный текст.",
        ),
    ),
    "bad_words": FieldHelp(
        Text("Banned words", "Запрещённые слова"),
        Text(
            "Words and phrases the model may not write (as transformers' bad_words_ids): a word that is "
            "one token is never chosen; for a longer one its last token is refused wherever the tokens "
            "before it have just been written. Each is banned as written and with a space before it (how "
            "it appears inside a sentence); the letter case counts. Up to 64 entries of 1–100 characters. "
            "Costs next to nothing.",
            "Слова и фразы, которые модели нельзя писать (как bad_words_ids в transformers): слово из "
            "одного токена не выбирается никогда; у более длинного запрещается последний токен там, где "
            "только что написаны токены перед ним. Каждое запрещается как написано и с пробелом перед ним "
            "(так оно встречается внутри предложения); регистр букв учитывается. До 64 записей длиной "
            "от 1 до 100 символов. На скорость почти не влияет.",
        ),
    ),
}

# Typical values quoted in range errors, so a message also says what to pick.
TYPICAL: dict[str, str] = {
    "temperature": "0.7–1.2",
    "top_k": "0 or 5–40",
    "top_p": "0.8–0.95",
    "num_beams": "1–5",
    "num_return_sequences": "1–4",
    "repetition_penalty": "1.0–1.3",
    "no_repeat_ngram_size": "0 or 2–4",
    "max_new_tokens": "50–500",
    "max_length": "100–1024",
}
TYPICAL_RU: dict[str, str] = {
    "top_k": "0 или 5–40",
    "no_repeat_ngram_size": "0 или 2–4",
}


def help_en(name: str) -> str:
    """The English help of a field, for pydantic's description."""
    return FIELD_HELP[name].help.en
