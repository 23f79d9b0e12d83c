"""Backslash escapes in settings typed as text (stop strings): the CLI and the window decode them alike."""

from __future__ import annotations

import re
import unicodedata

# One escape: \x41, \u0416, \U0001F600, \N{...}, \101 (octal), \n and friends, or a lone trailing backslash.
_ESCAPE = re.compile(
    r"\\(?:x(?P<x>[0-9a-fA-F]{2})|u(?P<u>[0-9a-fA-F]{4})|U(?P<U>[0-9a-fA-F]{8})|N\{(?P<N>[^}]*)\}"
    r"|(?P<o>[0-7]{1,3})|(?P<c>.)|(?P<end>\Z))",
    re.DOTALL,
)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def decode_escapes(value: str) -> str:
    """Backslash escapes as in a Python string (\\n, \\t, \\xHH, \\uHHHH, …) decoded; other text untouched.

    Unlike bytes.decode("unicode_escape"), non-ASCII text (Cyrillic) passes through as it is. An
    unknown escape such as \\q is kept as typed, as Python does; a malformed one raises ValueError
    that names it.
    """

    def one(match: re.Match[str]) -> str:
        code: int | None = None
        if match["x"] is not None:
            code = int(match["x"], 16)
        elif match["u"] is not None:
            code = int(match["u"], 16)
        elif match["U"] is not None:
            code = int(match["U"], 16)
        elif match["N"] is not None:
            try:
                return unicodedata.lookup(match["N"])
            except KeyError:
                raise ValueError(match[0]) from None
        elif match["o"] is not None:
            code = int(match["o"], 8)
        elif match["end"] is not None:
            raise ValueError("\\")
        else:
            char = match["c"]
            if char in "xuUN":  # the long forms above did not match: too few digits or no braces
                raise ValueError(match.string[match.start() : match.start() + 6])
            return _SIMPLE.get(char, match[0])
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ValueError(match[0])
        return chr(code)

    return _ESCAPE.sub(one, value)
