"""History exports: Markdown for reading, JSON for tools, plain text for pasting."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from gptdesk.errors import InvalidInputError
from gptdesk.history.store import GenerationRecord
from gptdesk.i18n import Lang, Text, current_language

FORMATS: dict[str, str] = {"markdown": ".md", "json": ".json", "text": ".txt"}


def export(records: Sequence[GenerationRecord], fmt: str, lang: Lang | None = None) -> str:
    """The records in `fmt` (markdown, json or text); labels in `lang` (default: the user's)."""
    lang = lang or current_language()
    if fmt == "json":
        return to_json(records)
    if fmt == "markdown":
        return to_markdown(records, lang)
    if fmt == "text":
        return to_text(records, lang)
    raise InvalidInputError(
        Text(
            f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.",
            f"Неизвестный формат экспорта «{fmt}»: используйте один из {', '.join(FORMATS)}.",
        )
    )


def to_json(records: Sequence[GenerationRecord]) -> str:
    payload = {"format": "gptdesk-history", "version": 1, "generations": [r.to_dict() for r in records]}
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


_L = {
    "generation": Text("Generation", "Генерация"),
    "prompt": Text("Prompt", "Затравка"),
    "output": Text("Output", "Текст"),
    "variant": Text("Variant", "Вариант"),
    "settings": Text("Settings", "Параметры"),
    "model": Text("Model", "Модель"),
    "seed": Text("Seed", "Зерно"),
    "status": Text("Status", "Состояние"),
    "timings": Text("Timings", "Время"),
    "versions": Text("Library versions", "Версии библиотек"),
    "error": Text("Error", "Ошибка"),
    "unset": Text("unset", "не задано"),
    "random": Text("random", "случайное"),
}


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks inside the text."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _timings(r: GenerationRecord, lang: Lang) -> str:
    parts = []
    if r.generated_tokens is not None:
        parts.append(f"{r.generated_tokens} " + Text("tokens", "токенов").get(lang))
    if r.first_token_s is not None:
        parts.append(Text("first token", "первый токен").get(lang) + f" {r.first_token_s:.2f} s")
    if r.tokens_per_second is not None:
        parts.append(f"{r.tokens_per_second:.1f} " + Text("tok/s", "ток/с").get(lang))
    if r.total_s is not None:
        parts.append(Text("total", "всего").get(lang) + f" {r.total_s:.2f} s")
    return ", ".join(parts) or "—"


def _model(r: GenerationRecord) -> str:
    where = " ".join(x for x in (r.engine, r.device, r.dtype) if x)
    return f"{r.model_id or '?'} @ {r.model_revision or '?'}" + (f" ({where})" if where else "")


def to_markdown(records: Sequence[GenerationRecord], lang: Lang = "en") -> str:
    out: list[str] = []
    for r in records:
        out.append(f"## {_L['generation'].get(lang)} #{r.id} — {r.created_at}\n")
        out.append(f"- **{_L['model'].get(lang)}:** {_model(r)}")
        out.append(f"- **{_L['seed'].get(lang)}:** {r.seed if r.seed is not None else '—'}")
        out.append(f"- **{_L['status'].get(lang)}:** {r.status} ({r.finish_reason or '—'})")
        out.append(f"- **{_L['timings'].get(lang)}:** {_timings(r, lang)}")
        out.append(f"- **{_L['versions'].get(lang)}:** " + ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items())))
        note = r.reproducibility_note()
        if note is not None:
            out.append(f"- **{_L['versions'].get(lang)}:** {note.get(lang)}")
        if r.error:
            out.append(f"- **{_L['error'].get(lang)}:** {r.error}")
        out.append(f"\n### {_L['prompt'].get(lang)}\n")
        fence = _fence(r.prompt)
        out.append(f"{fence}text\n{r.prompt}\n{fence}\n")
        for index, text in enumerate(r.texts):
            title = _L["output"].get(lang)
            if len(r.texts) > 1:
                title += f" — {_L['variant'].get(lang).lower()} {index + 1}"
            fence = _fence(text)
            out.append(f"### {title}\n\n{fence}text\n{text}\n{fence}\n")
        out.append(f"### {_L['settings'].get(lang)}\n")
        out.append("| | |\n|---|---|")
        for key, value in r.settings.items():
            shown = _L["unset"].get(lang) if value is None else json.dumps(value, ensure_ascii=False)
            if key == "seed" and value is None:
                shown = _L["random"].get(lang)
            escaped = shown.replace("|", "\\|")
            out.append(f"| `{key}` | {escaped} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def to_text(records: Sequence[GenerationRecord], lang: Lang = "en") -> str:
    out: list[str] = []
    for r in records:
        out.append(f"=== {_L['generation'].get(lang)} #{r.id} — {r.created_at} — {_model(r)}, seed {r.seed}")
        out.append(f"--- {_L['prompt'].get(lang)} ---")
        out.append(r.prompt)
        for index, text in enumerate(r.texts):
            label = _L["output"].get(lang)
            if len(r.texts) > 1:
                label += f" ({_L['variant'].get(lang).lower()} {index + 1})"
            out.append(f"--- {label} ---")
            out.append(text)
        out.append("")
    return "\n".join(out)
