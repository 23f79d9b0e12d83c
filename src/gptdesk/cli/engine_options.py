"""Options shared by the commands that load a local model: --cache-tokens and --adapter (generate, serve, the
lab, story; perplexity takes --adapter), and --ban (generate, the lab, story)."""

from __future__ import annotations

import argparse

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def add_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-tokens",
        type=int,
        default=None,
        metavar="N",
        help=_t(
            "llama.cpp keeps up to N tokens of earlier texts between generations, so continuing or repeating "
            "a text decodes only what is new (default: one full context of the model, or GPTDESK_CACHE_TOKENS; "
            "0 keeps nothing)",
            "llama.cpp хранит до N токенов прежних текстов между генерациями, чтобы продолжение или повтор "
            "текста считал только новое (по умолчанию — один полный контекст модели или GPTDESK_CACHE_TOKENS; "
            "0 — ничего не хранить)",
        ),
    )


def cache_option(args: argparse.Namespace) -> dict[str, int]:
    """--cache-tokens for the engines that keep a cache (llama.cpp; auto when it runs llama.cpp)."""
    value = getattr(args, "cache_tokens", None)
    if value is None:
        return {}
    from gptdesk.engine.llamacpp.native import check_cache_tokens

    value = check_cache_tokens(value, "--cache-tokens")
    if getattr(args, "engine", "auto") == "transformers":
        raise InvalidInputError(
            Text(
                f"--cache-tokens {value} sets llama.cpp's kept cache, but --engine is transformers. Drop "
                "--cache-tokens, or use --engine auto or llamacpp.",
                f"--cache-tokens {value} задаёт хранимый кэш llama.cpp, а --engine transformers. Уберите "
                "--cache-tokens или укажите --engine auto или llamacpp.",
            )
        )
    return {"cache_tokens": value}


def add_adapter_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--adapter",
        default=None,
        help=_t(
            "a LoRA adapter from `gptdesk tune` (see `gptdesk adapters ls`)",
            "адаптер LoRA из `gptdesk tune` (см. `gptdesk adapters ls`)",
        ),
    )


def adapter_option(args: argparse.Namespace) -> dict[str, str]:
    """--adapter: merged into the weights on transformers, applied at run time on llama.cpp."""
    name = getattr(args, "adapter", None)
    if name is None:
        return {}
    if getattr(args, "remote", None):
        raise InvalidInputError(
            Text(
                f"--adapter {name} applies to a local model; a remote server applies its own adapters. "
                "Leave out --remote, or --adapter.",
                f"--adapter {name} применяется к локальной модели; удалённый сервер применяет свои "
                "адаптеры. Уберите --remote или --adapter.",
            )
        )
    return {"adapter": name}


def add_ban_option(p: argparse.ArgumentParser) -> None:
    from gptdesk.settings.help import FIELD_HELP

    p.add_argument(
        "--ban",
        action="append",
        default=None,
        metavar="WORD",
        help=FIELD_HELP["bad_words"].help.get() + _t(" Repeat --ban for each.", " Повторите --ban для каждого."),
    )


def ban_overrides(args: argparse.Namespace) -> dict[str, list[str]]:
    """--ban WORD (repeated) as the bad_words setting."""
    words = getattr(args, "ban", None)
    return {} if words is None else {"bad_words": list(words)}
