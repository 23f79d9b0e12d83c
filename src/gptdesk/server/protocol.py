"""The OpenAI completions protocol: request and response shapes, and requests turned into GenerationSettings."""

from __future__ import annotations

import difflib
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gptdesk.errors import SettingIssue, SettingsError
from gptdesk.i18n import Text
from gptdesk.server.config import MAX_LOGPROBS, MAX_PROMPTS, ServerConfig
from gptdesk.server.errors import ContextLengthError, RequestError
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.help import FIELD_HELP

#: Request parameters that are GenerationSettings fields (request name -> settings field).
#: Their values go to GenerationSettings.build untouched, so a bad value gets the app's own message.
SETTINGS_PARAMS: dict[str, str] = {
    "max_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "n": "num_return_sequences",
    "seed": "seed",
    "stop": "stop",
    # GPT Desk's extra body fields (vLLM accepts the same names for top_k, repetition_penalty, min_tokens).
    "top_k": "top_k",
    "num_beams": "num_beams",
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
    "min_tokens": "min_new_tokens",
    # Beam search's own knobs, as transformers (and vLLM's older beam search) name them.
    "length_penalty": "length_penalty",
    "early_stopping": "early_stopping",
    # Words and phrases the model may not write (KoboldCpp's banned tokens, transformers' bad_words_ids).
    "bad_words": "bad_words",
}

#: The OpenAI defaults where they differ from GPT Desk's "balanced" preset: plain sampling at
#: temperature 1 with no top-k, no top-p and no repetition penalty, as every OpenAI client expects.
OPENAI_DEFAULTS: dict[str, object] = {
    "do_sample": True,
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "num_beams": 1,
    "num_return_sequences": 1,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
}

#: Where a logprob is minus infinity (a banned token), JSON cannot carry it: vLLM's stand-in.
NEG_INF_LOGPROB = -9999.0


class StreamOptions(BaseModel):
    """Options of a streamed response."""

    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = Field(
        default=False, description="Send one more chunk with token counts (usage) and no choices before [DONE]."
    )
    include_leading_beam: bool = Field(
        default=False,
        description="GPT Desk's extra: while a beam search runs, send chunks with no choices and a leading_beam "
        "member (the best hypothesis so far, which replaces the previous one). Off by default, since a client "
        "that reads choices[0] of every chunk would fail on them.",
    )


class CompletionRequest(BaseModel):
    """POST /v1/completions: OpenAI's legacy completions request plus GPT Desk's decoding knobs.

    Types are strict, as in the OpenAI API: a boolean is true or false (not "yes" or 1), a whole
    number is a JSON integer (not true, 5.0 or "5"), a number is a JSON number.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(default=None, description="The served model's id (GET /v1/models); may be left out.")
    prompt: str | list[str] = Field(description=f"The text to continue, or a list of 1–{MAX_PROMPTS} texts.")
    stream: bool = Field(default=False, description="Send tokens as server-sent events as they are generated.")
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(
        default=None,
        description="Return each token's log-probability and this many most likely alternatives (0–20).",
    )
    echo: bool = Field(default=False, description="Put the prompt in front of each returned text.")
    return_token_ids: bool = Field(default=False, description="Add each choice's token ids (as vLLM does).")
    user: str | None = Field(default=None, description="Accepted for compatibility; not used.")
    use_beam_search: bool | None = Field(
        default=None,
        description="vLLM's (older versions') beam search switch: beam search with best_of beams (default n), "
        "returning the n best; greedy beams unless temperature is given above 0. GPT Desk's own name is num_beams.",
    )
    # Numbers are `int | float` so that a value is kept (and quoted in a message) as the client wrote it.
    # OpenAI parameters GPT Desk does not implement: accepted only at their neutral values.
    suffix: str | None = None
    best_of: int | None = None
    presence_penalty: int | float | None = None
    frequency_penalty: int | float | None = None
    logit_bias: dict[str, int | float] | None = None
    # GenerationSettings fields: ranges are checked by GenerationSettings.build, documented by settings_schema().
    max_tokens: int | None = None
    temperature: int | float | None = None
    top_p: int | float | None = None
    n: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    bad_words: str | list[str] | None = None
    top_k: int | None = None
    num_beams: int | None = None
    repetition_penalty: int | float | None = None
    no_repeat_ngram_size: int | None = None
    min_tokens: int | None = None
    length_penalty: int | float | None = None
    early_stopping: bool | Literal["never"] | None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TokenizeRequest(BaseModel):
    """POST /v1/tokenize: how the served model splits a text into tokens."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(description="The text to split.")
    model: str | None = Field(default=None, description="The served model's id; may be left out.")


# -- responses ---------------------------------------------------------------------------------------


class TokenOut(BaseModel):
    id: int
    piece: str = Field(
        description="The token as readable text. A token that holds only part of a character (a byte-level "
        "vocabulary splits a rare character, 😀, into tokens of its UTF-8 bytes) shows that whole character."
    )
    bytes: list[int] = Field(
        description="The token's own bytes (UTF-8, 0–255): every token's bytes joined are the text exactly."
    )


class TokenizeResponse(BaseModel):
    tokens: list[TokenOut]
    count: int
    max_model_len: int


class Alternative(BaseModel):
    id: int
    piece: str
    logprob: float


class Logprobs(BaseModel):
    """OpenAI's completions logprobs, plus `top_alternatives` with token ids (GPT Desk's extra)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]
    top_alternatives: list[list[Alternative]] | None = None


class Choice(BaseModel):
    index: int
    text: str
    logprobs: Logprobs | None = None
    finish_reason: str | None = None
    # vLLM's field: the stop string that ended this text, or null (end of text, length).
    stop_reason: str | None = None
    token_ids: list[int] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class NoticeOut(BaseModel):
    code: str
    message: str
    en: str
    ru: str


class LeadingBeamOut(BaseModel):
    """The best hypothesis of a running beam search (GPT Desk's extra, sent when asked for).

    It replaces the previous one for the same index: a beam search may change its best text completely.
    """

    index: int  # the choice the best beam will become: prompt number × n
    text: str
    token_ids: list[int]
    score: float  # sum of log-probabilities / length ** length_penalty
    step: int


class Completion(BaseModel):
    """A completion, or one chunk of a streamed completion."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[Choice]
    usage: Usage | None = None
    # GPT Desk's extras: the seed actually used, prompt tokens dropped to fit, notices for the user.
    seed: int | None = None
    prompt_truncated_tokens: int | None = None
    notices: list[NoticeOut] | None = None
    leading_beam: LeadingBeamOut | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    max_model_len: int
    gptdesk: dict[str, Any] | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None
    gptdesk: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- schema -----------------------------------------------------------------------------------------


def completion_request_schema(config: ServerConfig) -> dict[str, Any]:
    """The JSON schema of CompletionRequest, its settings fields described from GenerationSettings."""
    schema = CompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    props = schema["properties"]
    settings_props = GenerationSettings.model_json_schema()["properties"]
    for param, field in SETTINGS_PARAMS.items():
        source = settings_props[field]
        bounds = {k: v for k, v in source.items() if k not in ("title", "default", "description")}
        kinds = bounds.pop("anyOf", None) or [bounds]
        props[param] = {
            "anyOf": [kind for kind in kinds if kind.get("type") != "null"] + [{"type": "null"}],
            "default": OPENAI_DEFAULTS.get(field, source.get("default")),
            "title": param.replace("_", " ").capitalize(),
            "description": FIELD_HELP[field].help.en,
        }
    limit = config.max_tokens_limit
    props["max_tokens"]["anyOf"][0]["maximum"] = limit
    props["max_tokens"]["default"] = config.default_max_tokens
    props["max_tokens"]["description"] = (
        f"The most new tokens to generate (this server allows up to {limit}, and up to "
        f"{config.max_request_tokens} in all per request: prompts × max(n, num_beams) × max_tokens). "
        + FIELD_HELP["max_new_tokens"].help.en
    )
    props["temperature"]["description"] = (
        "0 means greedy decoding (do_sample off); above 0 samples. " + FIELD_HELP["temperature"].help.en
    )
    for listed in ("stop", "bad_words"):
        props[listed]["anyOf"].insert(0, dict(settings_props[listed]["items"]))
    props["prompt"] = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_PROMPTS},
        ],
        "title": "Prompt",
        "description": props["prompt"]["description"],
    }
    props["logprobs"] = {
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_LOGPROBS}, {"type": "null"}],
        "default": None,
        "title": "Logprobs",
        "description": props["logprobs"]["description"],
    }
    return schema


# -- request -> settings ------------------------------------------------------------------------------


def parse_request(data: object) -> CompletionRequest:
    """Validate a decoded JSON body; a bad structure raises RequestError naming the parameter."""
    try:
        return CompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise request_error(exc, CompletionRequest) from None


def parse_tokenize(data: object) -> TokenizeRequest:
    try:
        return TokenizeRequest.model_validate(data)
    except ValidationError as exc:
        raise request_error(exc, TokenizeRequest) from None


def settings_from_request(req: CompletionRequest, config: ServerConfig) -> GenerationSettings:
    """The GenerationSettings a request asks for: OpenAI defaults, then the request's values.

    temperature 0 means greedy decoding, as in the OpenAI API; every value goes through
    GenerationSettings.build, so it is checked exactly as in the window and the CLI. The request's
    total work (check_work) must be within the server's bound.
    """
    _refuse_unsupported(req)
    values: dict[str, object] = dict(OPENAI_DEFAULTS)
    values["max_new_tokens"] = config.default_max_tokens
    for param, field in SETTINGS_PARAMS.items():
        value = getattr(req, param)
        if value is not None:
            values[field] = value
    if req.use_beam_search:
        values["num_beams"] = _beam_width(req)
        if req.temperature is None:
            values["temperature"] = 0.0  # vLLM's beam search is deterministic unless a temperature is given
    temperature = values["temperature"]
    if isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0:
        values["do_sample"] = False
        values["temperature"] = 1.0  # the neutral value: greedy decoding ignores it
    settings = GenerationSettings.build(**values)
    limit = config.max_tokens_limit
    asked = settings.max_new_tokens or 0
    if asked > limit:
        raise SettingsError(
            [
                SettingIssue(
                    "max_new_tokens",
                    Text(
                        f"max_tokens = {asked} is above this server's limit of {limit} new tokens per request. "
                        f"Ask for at most {limit}, or restart the server with a higher --max-tokens-limit.",
                        f"max_tokens = {asked} больше предела этого сервера: {limit} новых токенов на запрос. "
                        f"Запросите не больше {limit} или перезапустите сервер с большим --max-tokens-limit.",
                    ),
                )
            ]
        )
    check_work(len(req.prompts), settings, config)
    return settings


def sequences_per_prompt(settings: GenerationSettings) -> int:
    """How many sequences one prompt runs: its beams in a beam search (n of them are returned), else n."""
    return max(settings.num_return_sequences, settings.num_beams)


def check_work(prompts: int, settings: GenerationSettings, config: ServerConfig) -> None:
    """Refuse a request whose prompts × sequences × max_tokens is beyond the server's bound (400)."""
    sequences = sequences_per_prompt(settings)
    tokens = settings.max_new_tokens or config.max_tokens_limit
    work = prompts * sequences * tokens
    limit = config.max_request_tokens
    if work <= limit:
        return
    what = "num_beams" if settings.num_beams > 1 else "n"
    raise RequestError(
        Text(
            f"This request asks for up to {work} tokens in all ({prompts} prompt(s) × {sequences} sequences "
            f"({what}) × max_tokens {tokens}); this server allows {limit} per request. Lower max_tokens, n or "
            "num_beams, send fewer prompts per request, or restart the server with a higher --max-request-tokens.",
            f"Этот запрос просит в сумме до {work} токенов (затравок: {prompts} × последовательностей: {sequences} "
            f"({what}) × max_tokens {tokens}), а этот сервер разрешает {limit} на запрос. Уменьшите max_tokens, n "
            "или num_beams, отправляйте меньше затравок в одном запросе или перезапустите сервер с большим "
            "--max-request-tokens.",
        ),
        param="max_tokens",
        code="request_too_large",
    )


def check_room(prompt_tokens: int, context: int, settings: GenerationSettings, *, which: str = "") -> None:
    """Refuse a max_tokens that does not fit in the model's context beside the prompt (400, naming the most that fits).

    A prompt longer than the room it leaves is cut from the left (the model reads its last tokens, and
    prompt_truncated_tokens says how many went) only while max_tokens is at most half the context: a
    larger one would push out most of a prompt to make room for an answer the client could simply
    shorten. `which` names the prompt in a request of several ("prompt[2] "), else "".
    """
    max_new = settings.resolve_lengths(prompt_tokens)[1]
    room = context - prompt_tokens
    half = context // 2
    if max_new <= room or max_new <= half:
        return
    said = Text(
        f"max_tokens = {max_new} does not fit: the {which or 'prompt '}has {prompt_tokens} tokens and this model's "
        f"context holds {context} tokens in all",
        f"max_tokens = {max_new} не помещается: в {which or 'затравке '}{prompt_tokens} токенов, а контекст этой "
        f"модели — {context} токенов всего",
    )
    if room >= half:
        fix = Text(
            f", so at most {room} new tokens fit. Use max_tokens = {room} or less.",
            f", поэтому помещается не больше {room} новых токенов. Укажите max_tokens = {room} или меньше.",
        )
    elif room > 0:
        fix = Text(
            f", so at most {room} new tokens fit beside it. Use max_tokens = {room} or less, or a shorter prompt; "
            f"with max_tokens up to {half} (half the context) the prompt's first tokens are dropped to make room.",
            f", поэтому рядом с ней помещается не больше {room} новых токенов. Укажите max_tokens = {room} или "
            f"меньше либо затравку короче; при max_tokens до {half} (половина контекста) первые токены затравки "
            "отбрасываются, чтобы освободить место.",
        )
    else:
        fix = Text(
            f": the prompt alone fills it. Use max_tokens = {half} or less (half the context), and the prompt's "
            "first tokens are dropped to make room; or send a shorter prompt.",
            f": одна затравка заполняет его. Укажите max_tokens = {half} или меньше (половина контекста), и "
            "первые токены затравки будут отброшены, чтобы освободить место; или отправьте затравку короче.",
        )
    raise ContextLengthError(said + fix)


def _beam_width(req: CompletionRequest) -> int:
    """The beams of a vLLM-style use_beam_search request: best_of, else n; at least 2."""
    n = req.n if req.n is not None else 1
    width = req.best_of if req.best_of is not None else n
    if req.num_beams is not None and req.num_beams != width:
        raise RequestError(
            Text(
                f"use_beam_search with best_of (or n) = {width} contradicts num_beams = {req.num_beams}: they "
                "are two names for the beam count. Give only one of them.",
                f"use_beam_search с best_of (или n) = {width} противоречит num_beams = {req.num_beams}: это два "
                "названия числа лучей. Укажите только одно из них.",
            ),
            param="num_beams",
        )
    if width < 2:
        raise RequestError(
            Text(
                f"use_beam_search needs at least 2 beams, but best_of (or n) = {width}. Give best_of = the beam "
                "count (e.g. 4), with n up to it for the best texts returned; or use num_beams.",
                f"Для use_beam_search нужно не меньше 2 лучей, а best_of (или n) = {width}. Укажите в best_of "
                "число лучей (например, 4), а в n — сколько лучших текстов вернуть (не больше него); или "
                "используйте num_beams.",
            ),
            param="best_of",
        )
    return width


def _refuse_unsupported(req: CompletionRequest) -> None:
    """OpenAI parameters GPT Desk does not implement: refuse any but their neutral values, saying what to use."""
    if isinstance(req.prompt, list) and not 1 <= len(req.prompt) <= MAX_PROMPTS:
        count = len(req.prompt)
        raise RequestError(
            Text(
                f"prompt is a list of {count} texts: one request takes 1–{MAX_PROMPTS}. "
                + ("Send at least one text." if count == 0 else "Split them over several requests."),
                f"prompt — список из {count} текстов, а один запрос принимает 1–{MAX_PROMPTS}. "
                + ("Отправьте хотя бы один текст." if count == 0 else "Разделите их на несколько запросов."),
            ),
            param="prompt",
        )
    if req.suffix:
        raise RequestError(
            Text(
                f"suffix = {_show(req.suffix)}: GPT-2 models only continue text; they cannot fill in before a "
                "suffix. Leave suffix out.",
                f"suffix = {_show(req.suffix)}: модели GPT-2 только продолжают текст и не умеют вставлять его "
                "перед суффиксом. Уберите suffix.",
            ),
            param="suffix",
        )
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(req, name)
        if value:
            raise RequestError(
                Text(
                    f"{name} = {value} is not supported by GPT Desk. Use repetition_penalty instead "
                    "(1.0 is off; 1.05–1.3 curbs repetition), or no_repeat_ngram_size.",
                    f"{name} = {value} GPT Desk не поддерживает. Используйте вместо него repetition_penalty "
                    "(1.0 — выключен; 1.05–1.3 борется с повторами) или no_repeat_ngram_size.",
                ),
                param=name,
            )
    if req.logit_bias:
        raise RequestError(
            Text(
                "logit_bias is not supported by GPT Desk. Leave it out; to keep words out of the text "
                "use stop strings or repetition_penalty.",
                "logit_bias GPT Desk не поддерживает. Уберите его; чтобы не допустить слов в тексте, "
                "используйте стоп-строки или repetition_penalty.",
            ),
            param="logit_bias",
        )
    n = req.n if req.n is not None else 1
    if req.best_of is not None and req.best_of != n and not req.use_beam_search:
        raise RequestError(
            Text(
                f"best_of = {req.best_of} is not supported on its own (only best_of = n). To pick the most likely "
                "of several texts use beam search: num_beams (or use_beam_search with best_of as the beam count), "
                "with n up to the beam count.",
                f"best_of = {req.best_of} сам по себе не поддерживается (только best_of = n). Чтобы выбрать самый "
                "вероятный из нескольких текстов, используйте лучевой поиск: num_beams (или use_beam_search, где "
                "best_of — число лучей), а n не больше числа лучей.",
            ),
            param="best_of",
        )
    if req.echo and req.logprobs is not None:
        raise RequestError(
            Text(
                "echo together with logprobs would need the prompt's log-probabilities, which GPT Desk does not "
                "compute. Drop echo (and put the prompt in front yourself) or drop logprobs.",
                "echo вместе с logprobs потребовал бы log-вероятностей затравки, которые GPT Desk не "
                "вычисляет. Уберите echo (и добавьте затравку к тексту сами) или уберите logprobs.",
            ),
            param="echo",
        )
    for index, prompt in enumerate(req.prompts):
        check_text(prompt, "prompt" if isinstance(req.prompt, str) else f"prompt[{index}]")


def check_text(text: str, name: str) -> None:
    """Refuse a lone UTF-16 surrogate: the tokenizer cannot read it, and no real text contains one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            Text(
                f"{name} has an invalid character at position {exc.start} (a lone UTF-16 surrogate, "
                f"{text[exc.start]!a}). Send valid Unicode text: a JSON escape such as \\ud83d must be "
                "followed by its pair.",
                f"В {name} недопустимый символ в позиции {exc.start} (одиночный суррогат UTF-16, "
                f"{text[exc.start]!a}). Отправьте корректный текст Unicode: экранированный символ вроде "
                "\\ud83d должен идти вместе со своей парой.",
            ),
            param=name.split("[")[0],
        ) from None


def _show(value: object) -> str:
    """A value as the client wrote it (JSON), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_WHOLE = Text(
    "a whole number (a JSON integer such as 20: not a string, not true/false, not 20.0)",
    "целое число (целое число JSON, например 20: не строка, не true/false и не 20.0)",
)
_NUMBER = Text(
    "a number (such as 0.8: not a string, not true/false)", "число (например, 0.8: не строка и не true/false)"
)
_WHOLE_PARAMS = ("max_tokens", "n", "seed", "top_k", "num_beams", "no_repeat_ngram_size", "min_tokens")

#: What each parameter must be, for the error message when its JSON type is wrong.
_EXPECTED: dict[str, Text] = {
    "prompt": Text(
        f"a string, or a list of 1–{MAX_PROMPTS} strings (token-id prompts are not supported: send the text)",
        f"строка или список из 1–{MAX_PROMPTS} строк (затравки из номеров токенов не поддерживаются: отправьте текст)",
    ),
    "model": Text("a model id from GET /v1/models, or nothing", "id модели из GET /v1/models или ничего"),
    "stream": Text("true or false", "true или false"),
    "echo": Text("true or false", "true или false"),
    "return_token_ids": Text("true or false", "true или false"),
    "stream_options": Text('an object such as {"include_usage": true}', 'объект вида {"include_usage": true}'),
    "logprobs": Text(
        f"a whole number 0–{MAX_LOGPROBS} (alternatives per token), or nothing",
        f"целое число 0–{MAX_LOGPROBS} (альтернатив на токен) или ничего",
    ),
    "text": Text("a string", "строка"),
    "user": Text("a string", "строка"),
    "suffix": Text("nothing (not supported)", "ничего (не поддерживается)"),
    "best_of": Text("a whole number equal to n, or nothing", "целое число, равное n, или ничего"),
    "presence_penalty": Text("0 or nothing (not supported)", "0 или ничего (не поддерживается)"),
    "frequency_penalty": Text("0 or nothing (not supported)", "0 или ничего (не поддерживается)"),
    "logit_bias": Text("nothing (not supported)", "ничего (не поддерживается)"),
    "use_beam_search": Text("true or false", "true или false"),
    "include_usage": Text("true or false", "true или false"),
    "include_leading_beam": Text("true or false", "true или false"),
    **{name: _WHOLE for name in _WHOLE_PARAMS},
    **{name: _NUMBER for name in ("temperature", "top_p", "repetition_penalty", "length_penalty")},
    "early_stopping": Text('true, false or "never"', 'true, false или "never"'),
    "stop": Text("a string or a list of strings", "строка или список строк"),
    "bad_words": Text("a string or a list of strings", "строка или список строк"),
}


def request_error(exc: ValidationError, model: type[BaseModel]) -> RequestError:
    """The first structural problem of a request body as a bilingual RequestError."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(err["loc"])
    if not loc:
        return RequestError(
            Text(
                f"The request body is {_json_kind(err['input'])}, not a JSON object. Send an object such as "
                '{"prompt": "Москва — столица", "max_tokens": 20}.',
                f"Тело запроса — {_json_kind_ru(err['input'])}, а не объект JSON. Отправьте объект вида "
                '{"prompt": "Москва — столица", "max_tokens": 20}.',
            ),
            param=None,
            code="invalid_request",
        )
    name = str(loc[0])
    parts = [name]
    for part in loc[1:]:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
        elif part in _EXPECTED:  # a nested field (stream_options.include_usage); not a union's type tag
            parts.append(str(part))
    where = ".".join(parts)
    if err["type"] == "extra_forbidden":
        if name == "stream_options" and len(loc) > 1:
            return _unknown_param(f"stream_options.{loc[-1]}", err["input"], list(StreamOptions.model_fields))
        return _unknown_param(where, err["input"], list(model.model_fields))
    if err["type"] == "missing":
        wanted = _EXPECTED.get(name, Text("a value", "значение"))
        return RequestError(
            Text(
                f"{where} is missing: the request must give it ({wanted.en}).",
                f"{where} не указан, а он обязателен ({wanted.ru}).",
            ),
            param=name,
            code="missing_required_parameter",
        )
    expected = _EXPECTED.get(parts[-1].split("[")[0], Text(str(err["msg"]), str(err["msg"])))
    shown = f"{where} = {_show(err['input'])}"
    return RequestError(
        Text(f"{shown} is invalid: give {expected.en}.", f"{shown} — недопустимое значение: нужно {expected.ru}."),
        param=name,
    )


def check_logprobs(value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_LOGPROBS:
        raise RequestError(
            Text(
                f"logprobs = {value} is out of range: give a whole number 0–{MAX_LOGPROBS} (how many "
                "alternatives to return per token), or leave it out.",
                f"logprobs = {value} вне диапазона: укажите целое число 0–{MAX_LOGPROBS} (сколько "
                "альтернатив вернуть на токен) или не указывайте его.",
            ),
            param="logprobs",
        )


def _unknown_param(name: str, value: object, known: list[str]) -> RequestError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        hint = Text(f" Did you mean: {', '.join(close)}?", f" Возможно, имелось в виду: {', '.join(close)}?")
    else:
        hint = Text(f" Known parameters: {', '.join(known)}.", f" Известные параметры: {', '.join(known)}.")
    return RequestError(
        Text(
            f"Unknown parameter {name!r} = {_show(value)}.",
            f"Неизвестный параметр «{name}» = {_show(value)}.",
        )
        + hint,
        param=name,
        code="unknown_parameter",
    )


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if value is None:
        return "null"
    return "not a JSON object"


def _json_kind_ru(value: object) -> str:
    if isinstance(value, list):
        return "массив JSON"
    if isinstance(value, str):
        return "строка JSON"
    if isinstance(value, bool):
        return "логическое значение JSON"
    if isinstance(value, int | float):
        return "число JSON"
    if value is None:
        return "null"
    return "не объект JSON"


def finite_logprob(value: float | None) -> float | None:
    """A log-probability JSON can carry: -inf (a banned token) becomes -9999.0, NaN becomes null."""
    if value is None or math.isnan(value):
        return None
    return max(value, NEG_INF_LOGPROB)
