"""Story export (a path as text or Markdown, the whole tree as JSON) and import of that JSON, validated."""

from __future__ import annotations

import json
from typing import Any

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.story.model import FORMAT_NAME, FORMAT_VERSION, NODE_KINDS, Node, Story, StoryToken
from gptdesk.story.store import StoryStore

FORMATS = ("txt", "md", "json")
_STATUSES = ("running", "finished", "cancelled", "failed", "interrupted")


def export(story: Story, fmt: str, node_id: int | None = None) -> str:
    """The path to `node_id` (default: the current node) as txt or md, or the whole tree as json."""
    if fmt not in FORMATS:
        raise InvalidInputError(
            Text(
                f"Unknown export format {fmt!r}. Use one of: {', '.join(FORMATS)}.",
                f"Неизвестный формат экспорта {fmt!r}. Используйте один из: {', '.join(FORMATS)}.",
            )
        )
    if fmt == "json":
        return json.dumps(story.to_dict(), ensure_ascii=False, indent=1) + "\n"
    target = story.current if node_id is None else story.node(node_id)
    text = story.text(target.id)
    if fmt == "txt":
        return text + "\n"
    path = story.path(target.id)
    means = [m for m in (n.mean_logprob for n in path) if m is not None]
    fluency = f"{sum(means) / len(means):.2f}" if means else "—"
    title = story.title.replace("\n", " ") or f"Story {story.id}"
    # The prompt in bold, the generated text plain, so a reader sees where the model took over.
    root = path[0].text
    body = (
        f"**{root.strip()}**" + root[len(root.rstrip()) :] + "".join(n.text for n in path[1:]) if root.strip() else text
    )
    return (
        f"# {title}\n\n{body}\n\n---\n\n"
        f"*{story.model_id or '?'} · {story.engine or '?'} · "
        f"nodes {' → '.join(str(n.id) for n in path)} · mean log-prob {fluency}*\n"
    )


def parse(text: str) -> Story:
    """A story from its JSON form; InvalidInputError saying what is wrong and where (nothing stored)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _damaged(
            Text(
                f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                f"это не JSON ({exc.msg}, строка {exc.lineno}, столбец {exc.colno})",
            )
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise _damaged(
            Text(
                f'it has no "format": "{FORMAT_NAME}" field: it is not a GPT Desk story',
                f'в нём нет поля "format": "{FORMAT_NAME}": это не рассказ GPT Desk',
            )
        )
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _damaged(
            Text(
                f'its "version" is {version!r}, not a positive integer',
                f'его "version" — {version!r}, а не положительное целое',
            )
        )
    if version > FORMAT_VERSION:
        raise InvalidInputError(
            Text(
                f"This story was written by a newer GPT Desk (story format {version}; this version reads up to "
                f"{FORMAT_VERSION}). Update GPT Desk to import it. Nothing was imported.",
                f"Этот рассказ записан более новой версией GPT Desk (формат рассказа {version}; эта версия читает "
                f"до {FORMAT_VERSION}). Обновите GPT Desk, чтобы импортировать её. Ничего не импортировано.",
            )
        )
    try:
        return _story(data)
    except _Damaged as exc:
        raise _damaged(exc.text) from None
    except KeyError as exc:
        raise _damaged(Text(f"the field {exc} is missing", f"нет поля {exc}")) from None
    except (TypeError, ValueError) as exc:  # a value of the wrong type deeper in (a token's alternatives)
        raise _damaged(Text(f"a value is wrong ({exc})", f"неверное значение ({exc})")) from None


def import_story(store: StoryStore, text: str) -> int:
    """Store a story from its JSON form under new ids; returns its id. A damaged file stores nothing."""
    return store.insert_story(parse(text))


def _story(data: dict[str, Any]) -> Story:
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise _bad('"settings" is not an object', '"settings" — не объект')
    story = Story(
        id=0,
        title=str(data.get("title") or ""),
        settings=settings,
        current_node=_opt_int(data.get("current"), "current"),
        model_id=_opt_str(data.get("model_id")),
        engine=_opt_str(data.get("engine")),
        created_at=str(data.get("created_at") or ""),
    )
    nodes = data["nodes"]
    if not isinstance(nodes, list) or not nodes:
        raise _bad('"nodes" is not a non-empty list', '"nodes" — не непустой список')
    for i, raw in enumerate(nodes):
        if not isinstance(raw, dict):
            raise _bad(f"node {i} is not an object", f"узел {i} — не объект")
        node_id = _opt_int(raw["id"], f"node {i} id")
        parent = _opt_int(raw.get("parent"), f"node {i} parent")
        if node_id is None or node_id in story.nodes:
            raise _bad(
                f"node {i} has a missing or repeated id {raw['id']!r}",
                f"у узла {i} нет id или он повторён: {raw['id']!r}",
            )
        if parent is None and story.nodes:
            raise _bad(
                f"node {node_id} has no parent, but the story already has its root",
                f"у узла {node_id} нет родителя, а корень у рассказа уже есть",
            )
        if parent is not None and parent not in story.nodes:
            raise _bad(
                f"node {node_id}'s parent {parent} is not listed before it",
                f"родитель {parent} узла {node_id} не указан раньше него",
            )
        if i == 0 and parent is not None:
            raise _bad(
                "the first node is not the root (it has a parent)", "первый узел — не корень (у него есть родитель)"
            )
        kind = raw.get("kind") or ("root" if parent is None else "grow")
        status = raw.get("status") or "finished"
        if kind not in NODE_KINDS or status not in _STATUSES:
            raise _bad(
                f"node {node_id} has an unknown kind {kind!r} or status {status!r}",
                f"у узла {node_id} неизвестный вид {kind!r} или состояние {status!r}",
            )
        tokens_raw = raw["tokens"]
        if not isinstance(tokens_raw, list):
            raise _bad(f'node {node_id}\'s "tokens" is not a list', f'"tokens" узла {node_id} — не список')
        try:
            tokens = [StoryToken.from_dict(t) for t in tokens_raw]
        except (KeyError, TypeError) as exc:
            raise _bad(
                f"a token of node {node_id} is damaged ({exc})", f"токен узла {node_id} повреждён ({exc})"
            ) from None
        text = raw["text"]
        if not isinstance(text, str):
            raise _bad(f'node {node_id}\'s "text" is not a string', f'"text" узла {node_id} — не строка')
        node_settings = raw.get("settings")
        if node_settings is not None and not isinstance(node_settings, dict):
            raise _bad(f'node {node_id}\'s "settings" is not an object', f'"settings" узла {node_id} — не объект')
        story.nodes[node_id] = Node(
            id=node_id,
            story_id=0,
            parent_id=parent,
            kind=str(kind),
            status=str(status),
            text=text,
            tokens=tokens,
            settings=node_settings,
            seed=_opt_int(raw.get("seed"), f"node {node_id} seed"),
            sequence=_opt_int(raw.get("sequence"), f"node {node_id} sequence") or 0,
            model_id=_opt_str(raw.get("model_id")),
            engine=_opt_str(raw.get("engine")),
            finish_reason=_opt_str(raw.get("finish_reason")),
            bookmark=bool(raw.get("bookmark", False)),
            hidden=bool(raw.get("hidden", False)),
        )
    if story.current_node is not None and story.current_node not in story.nodes:
        raise _bad(
            f'"current" names node {story.current_node}, which is not in the story',
            f'"current" указывает на узел {story.current_node}, которого нет в рассказе',
        )
    return story


def _opt_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{what} is {value!r}, not an integer", f"{what}: {value!r} — не целое число")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class _Damaged(ValueError):
    """What is wrong with a story file, in both languages (caught by parse)."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


def _bad(en: str, ru: str) -> _Damaged:
    return _Damaged(Text(en, ru))


def _damaged(detail: Text) -> InvalidInputError:
    return InvalidInputError(
        Text(
            f"The story file cannot be imported: {detail.en}. Export the story again with "
            "`gptdesk story export STORY --format json`, or repair the file. Nothing was imported.",
            f"Файл рассказа нельзя импортировать: {detail.ru}. Экспортируйте рассказ заново командой "
            "`gptdesk story export РАССКАЗ --format json` или исправьте файл. Ничего не импортировано.",
        )
    )
