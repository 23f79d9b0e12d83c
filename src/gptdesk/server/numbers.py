"""Strict JSON reading of a request body: numbers no parameter could take are the client's error, not a 500."""

from __future__ import annotations

import json

from gptdesk.i18n import Text
from gptdesk.server.errors import RequestError

#: The most digits a JSON integer may have: every parameter fits in far fewer (a seed has at most 10), and
#: Python refuses to read more than 4300 at all.
MAX_INT_DIGITS = 64


class UnreadableNumber(ValueError):
    """A number in the body that no parameter could take; its message says which."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


def parse_int(digits: str) -> int:
    """json's parse_int: a whole number of at most MAX_INT_DIGITS digits."""
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        # Python would refuse beyond 4300 digits with a ValueError that used to end as a 500.
        raise UnreadableNumber(
            Text(
                f"The request body is not valid JSON for this API: it has a whole number of {count} digits, and no "
                f"parameter takes one longer than {MAX_INT_DIGITS} digits (a seed has at most 10). Send each "
                "value within its range.",
                f"Тело запроса не подходит этому API: в нём целое число из {count} цифр, а ни один параметр не "
                f"принимает чисел длиннее {MAX_INT_DIGITS} цифр (у зерна их не больше 10). Отправляйте каждое "
                "значение в его диапазоне.",
            )
        )
    return int(digits)


def refuse_constant(name: str) -> object:
    """json's parse_constant: NaN and Infinity are Python's, not JSON's."""
    raise UnreadableNumber(
        Text(
            f"The request body is not valid JSON: {name} is not a JSON value (Python writes it, JSON does not). "
            "Send a finite number.",
            f"Тело запроса — не корректный JSON: {name} не является значением JSON (так пишет Python, но не JSON). "
            "Отправьте конечное число.",
        )
    )


def strict_loads(body: bytes) -> object:
    """The body as JSON; RequestError (invalid_json) naming what is wrong otherwise."""
    try:
        return json.loads(body, parse_int=parse_int, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(
            Text(
                f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
                "Send a JSON object with double-quoted names and strings.",
                f"Тело запроса — не корректный JSON: {exc.msg} в строке {exc.lineno}, столбце {exc.colno}. "
                "Отправьте объект JSON с именами и строками в двойных кавычках.",
            ),
            code="invalid_json",
        ) from None
    except UnicodeDecodeError as exc:
        raise RequestError(
            Text(
                f"The request body is not UTF-8 text (byte {exc.start} is invalid). Send JSON encoded as UTF-8.",
                f"Тело запроса — не текст UTF-8 (байт {exc.start} недопустим). Отправьте JSON в кодировке UTF-8.",
            ),
            code="invalid_json",
        ) from None
    except RecursionError:
        raise RequestError(
            Text(
                "The request body's JSON is nested too deeply to read. Send a flat object of parameters.",
                "JSON в теле запроса слишком глубоко вложен. Отправьте простой объект с параметрами.",
            ),
            code="invalid_json",
        ) from None
    except UnreadableNumber as exc:
        raise RequestError(exc.text, code="invalid_json") from None
    except ValueError as exc:  # any other number Python cannot read: still the client's JSON, not a bug
        raise RequestError(
            Text(
                f"The request body's JSON cannot be read ({exc}). Send plain JSON numbers and strings.",
                f"JSON в теле запроса не читается ({exc}). Отправьте обычные числа и строки JSON.",
            ),
            code="invalid_json",
        ) from None
