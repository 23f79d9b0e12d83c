"""`gptdesk story`: the writing desk's tree of continuations on the command line."""

from __future__ import annotations

import argparse
import functools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from gptdesk.cli.engine_options import add_adapter_option, add_ban_option, ban_overrides
from gptdesk.i18n import Text


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def _story_help() -> str:
    return _t(
        "story id, or 'last' for the story changed most recently",
        "номер рассказа или «last» — рассказ, изменённый последним",
    )


def story_ref(value: str) -> int | str:
    """A STORY argument: its id, or 'last' (resolved when the command runs: `with_story`)."""
    if value.strip().lower() == "last":
        return "last"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _t(
                f"'{value}' is not a story: give its id (see `gptdesk story ls`) or 'last'.",
                f"«{value}» — не рассказ: укажите его номер (см. `gptdesk story ls`) или «last».",
            )
        ) from None


Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def with_story(cmd: Command) -> Command:
    """`cmd` with args.story as an id: 'last' becomes the story changed most recently (`story ls` lists it first)."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        if args.story == "last":
            with _stories() as stories:
                listed = stories.list()
            if not listed:
                from gptdesk.errors import InvalidInputError

                raise InvalidInputError(
                    Text(
                        "There is no story yet, so 'last' names none. Start one with `gptdesk story new PROMPT`.",
                        "Рассказов ещё нет, и «last» ни на что не указывает. Начните рассказ командой "
                        "`gptdesk story new ЗАТРАВКА`.",
                    )
                )
            args.story = int(listed[0][0])
        return cmd(args, out, err)

    return run


def register(sub: Any) -> None:
    story = sub.add_parser(
        "story",
        help=_t("a tree of continuations: grow, branch from any token, export", "дерево продолжений"),
        description=_t(
            "A story is a tree of continuations kept in the history: grow a node by K children in one batch, "
            "branch from any generated token by taking one of the alternatives the model offered there.",
            "Рассказ — дерево продолжений в базе истории: нарастите узел на K потомков за один проход, "
            "ветвитесь от любого сгенерированного токена, выбрав одну из альтернатив, предложенных моделью.",
        ),
    )
    cmds = story.add_subparsers(dest="story_command", metavar="COMMAND", required=True)

    new = cmds.add_parser("new", help=_t("start a story from PROMPT", "начать рассказ с ЗАТРАВКИ"))
    new.add_argument("prompt", help=_t("the prompt; '-' reads standard input", "затравка; «-» — читать из stdin"))
    new.add_argument("--title", default="", help=_t("the story's title", "название рассказа"))
    _generation(new, preset_default="balanced")
    new.set_defaults(func=cmd_new)

    grow = cmds.add_parser("grow", help=_t("K children of a node, in one batch", "K потомков узла за один проход"))
    grow.add_argument("story", type=story_ref, help=_story_help())
    grow.add_argument(
        "--node", type=int, default=None, help=_t("node id (default: current)", "узел (по умолчанию текущий)")
    )
    _generation(grow, preset_default=None)
    grow.set_defaults(func=cmd_grow)

    br = cmds.add_parser(
        "branch", help=_t("take another token the model offered, and continue", "взять другой токен и продолжить")
    )
    br.add_argument("story", type=story_ref, help=_story_help())
    br.add_argument(
        "--node", type=int, required=True, help=_t("the node to branch from", "узел, от которого ветвиться")
    )
    br.add_argument(
        "--at", type=int, required=True, help=_t("index of the token to replace", "номер заменяемого токена")
    )
    br.add_argument(
        "--token", required=True, help=_t("an alternative of that token: its text or id", "альтернатива: текст или id")
    )
    _generation(br, preset_default=None, with_n=False)
    br.set_defaults(func=cmd_branch)

    ed = cmds.add_parser("edit", help=_t("a new branch with edited text", "новая ветвь с правленым текстом"))
    ed.add_argument("story", type=story_ref, help=_story_help())
    ed.add_argument("--node", type=int, required=True)
    ed.add_argument("--at", type=int, required=True, help=_t("character index in the node", "позиция символа в узле"))
    ed.add_argument("--text", required=True, help=_t("the text from that point on", "текст с этой позиции"))
    ed.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))
    ed.set_defaults(func=cmd_edit)

    show = cmds.add_parser("show", help=_t("the tree and the current text", "дерево и текущий текст"))
    show.add_argument("story", type=story_ref, help=_story_help())
    show.add_argument("--json", action="store_true", help=_t("the whole tree as JSON", "всё дерево в JSON"))
    show.set_defaults(func=cmd_show)

    exp = cmds.add_parser("export", help=_t("a path as txt/md, or the tree as json", "путь в txt/md или дерево в json"))
    exp.add_argument("story", type=story_ref, help=_story_help())
    exp.add_argument("--node", type=int, default=None, help=_t("end of the path (default: current)", "конец пути"))
    exp.add_argument("--format", required=True, choices=("txt", "md", "json"))
    exp.add_argument("--output", "-o", default=None, help=_t("write to FILE", "записать в ФАЙЛ"))
    exp.set_defaults(func=cmd_export)

    imp = cmds.add_parser("import", help=_t("import a story's JSON", "импортировать JSON рассказа"))
    imp.add_argument("file", help=_t("the JSON file; '-' reads standard input", "файл JSON; «-» — stdin"))
    imp.set_defaults(func=cmd_import)

    ls = cmds.add_parser("ls", help=_t("list the stories", "список рассказов"))
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_ls)

    mark = cmds.add_parser("mark", help=_t("bookmark or hide a node", "отметить или скрыть узел"))
    mark.add_argument("story", type=story_ref, help=_story_help())
    mark.add_argument("--node", type=int, required=True)
    flags = mark.add_mutually_exclusive_group()
    flags.add_argument("--bookmark", dest="bookmark", action="store_true", default=None)
    flags.add_argument("--no-bookmark", dest="bookmark", action="store_false")
    shown = mark.add_mutually_exclusive_group()
    shown.add_argument("--hide", dest="hidden", action="store_true", default=None)
    shown.add_argument("--unhide", dest="hidden", action="store_false")
    mark.set_defaults(func=cmd_mark)

    rm = cmds.add_parser("rm", help=_t("remove a story (or one node's subtree)", "удалить рассказ (или ветвь)"))
    rm.add_argument("story", type=story_ref, help=_story_help())
    rm.add_argument("--node", type=int, default=None, help=_t("remove only this node and its subtree", "только ветвь"))
    rm.set_defaults(func=cmd_rm)


def _generation(p: argparse.ArgumentParser, *, preset_default: str | None, with_n: bool = True) -> None:
    """The model and settings flags of `gptdesk generate`; on grow and branch they override the story's."""
    from gptdesk.cli.main import _SETTING_TYPES, _model_options
    from gptdesk.settings.help import FIELD_HELP
    from gptdesk.settings.presets import PRESETS

    _model_options(p)
    add_adapter_option(p)
    p.add_argument("--engine", default="auto", choices=("auto", "transformers", "llamacpp"))
    p.add_argument(
        "--preset", default=preset_default, help=_t("settings preset: ", "набор настроек: ") + ", ".join(PRESETS)
    )
    if with_n:
        p.add_argument("--n", type=int, default=1, help=_t("continuations, in one batch", "продолжений за один проход"))
    for name, kind in _SETTING_TYPES.items():
        if name != "num_return_sequences":
            p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=FIELD_HELP[name].help.get())
    sample = p.add_mutually_exclusive_group()
    sample.add_argument("--sample", dest="do_sample", action="store_true", default=None)
    sample.add_argument("--greedy", dest="do_sample", action="store_false")
    add_ban_option(p)
    p.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from gptdesk.cli.main import _SETTING_TYPES
    from gptdesk.settings.presets import get_preset

    values: dict[str, Any] = dict(get_preset(args.preset).values) if args.preset else {}
    values.update({k: getattr(args, k) for k in _SETTING_TYPES if getattr(args, k, None) is not None})
    if args.do_sample is not None:
        values["do_sample"] = args.do_sample
    values.update(ban_overrides(args))
    values.pop("num_return_sequences", None)
    return values


def _check_n(n: int) -> None:
    from gptdesk.errors import InvalidInputError

    if not 1 <= n <= 16:
        raise InvalidInputError(
            Text(
                f"--n {n}: a node grows by 1 to 16 children at a time. Use a value in that range.",
                f"--n {n}: узел растёт на 1–16 потомков за раз. Укажите значение в этих пределах.",
            )
        )


@contextmanager
def _stories() -> Iterator[Any]:
    from gptdesk.history.store import HistoryStore
    from gptdesk.story.store import StoryStore

    with HistoryStore() as history:
        yield StoryStore(history)


def _engine(args: argparse.Namespace, model: str | None, err: TextIO) -> Any:
    from gptdesk.cli.engine_options import adapter_option, cache_option
    from gptdesk.cli.main import _fetch_if_missing
    from gptdesk.engine import load_engine

    name = args.model or model
    _fetch_if_missing(name, err)
    options = {**cache_option(args), **adapter_option(args)}
    return load_engine(name, engine=args.engine, device=args.device, dtype=args.dtype, **options)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO, operation: Any, model: str | None) -> int:
    """Load the engine, run `operation(stories, engine, cancel)` under Ctrl+C, print what it made."""
    from gptdesk.cli.main import EXIT_INTERRUPTED, _CtrlC

    engine = _engine(args, model, err)
    cancel = threading.Event()
    try:
        with _stories() as stories, _CtrlC(cancel):
            grown = operation(stories, engine, cancel)
            story = stories.load(grown.story_id)
    finally:
        engine.close()
    for notice in grown.notices:
        print("! " + notice.text.get(), file=err)
    _print_made(story, grown.node_ids, args.json, out)
    return EXIT_INTERRUPTED if grown.cancelled else 0


def _print_made(story: Any, node_ids: list[int], as_json: bool, out: TextIO) -> None:
    if as_json:
        made = {"id": story.id, "current": story.current_node, "nodes": [story.nodes[i].to_dict() for i in node_ids]}
        out.write(json.dumps(made, ensure_ascii=False, indent=1) + "\n")
        return
    for node_id in node_ids:
        node = story.nodes[node_id]
        mean = f"{node.mean_logprob:.2f}" if node.mean_logprob is not None else "—"
        print(
            _t(
                f"--- story {story.id}, node {node.id} (child of {node.parent_id}), mean log-prob {mean} ---",
                f"--- рассказ {story.id}, узел {node.id} (потомок {node.parent_id}), ср. лог-вероятность {mean} ---",
            ),
            file=out,
        )
        print(story.text(node_id), file=out)


def cmd_new(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.cli.console import read_text
    from gptdesk.settings.generation import GenerationSettings
    from gptdesk.story.grow import new_story

    prompt = read_text(args.prompt)
    _check_n(args.n)
    settings = GenerationSettings.build(**_overrides(args))
    return _run(
        args,
        out,
        err,
        lambda stories, engine, cancel: new_story(
            stories, engine, prompt, settings, n=args.n, title=args.title, cancel=cancel
        ),
        None,
    )


@with_story
def cmd_grow(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.story.grow import grow

    _check_n(args.n)
    with _stories() as stories:
        story = stories.load(args.story)  # a missing story or node is named before a model loads
        if args.node is not None:
            story.node(args.node)
    return _run(
        args,
        out,
        err,
        lambda stories, engine, cancel: grow(
            stories, engine, args.story, args.node, n=args.n, overrides=_overrides(args), cancel=cancel
        ),
        story.model_id,
    )


@with_story
def cmd_branch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.story.grow import branch, check_branch

    with _stories() as stories:
        story = stories.load(args.story)
        check_branch(story, args.node, args.at, args.token)  # bad input is named before a model loads
    return _run(
        args,
        out,
        err,
        lambda stories, engine, cancel: branch(
            stories, engine, args.story, args.node, args.at, args.token, overrides=_overrides(args), cancel=cancel
        ),
        story.model_id,
    )


@with_story
def cmd_edit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.story.grow import edit

    with _stories() as stories:
        node_id = edit(stories, args.story, args.node, args.at, args.text)
        story = stories.load(args.story)
    _print_made(story, [node_id], args.json, out)
    return 0


@with_story
def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _stories() as stories:
        story = stories.load(args.story)
    if args.json:
        out.write(json.dumps(story.to_dict(), ensure_ascii=False, indent=1) + "\n")
        return 0
    print(f"{story.id}: {story.title}  ({story.model_id or '?'}, {story.engine or '?'})", file=out)
    for depth, node in story.walk():
        mean = f"{node.mean_logprob:6.2f}" if node.mean_logprob is not None else "     —"
        marks = ("*" if node.id == story.current.id else " ") + ("B" if node.bookmark else " ")
        marks += "H" if node.hidden else " "
        status = "" if node.status == "finished" else f" [{node.status}]"
        print(f"{marks} {'  ' * depth}#{node.id} {mean}  {node.opening()}{status}", file=out)
    print("", file=out)
    print(story.text(), file=out)
    return 0


@with_story
def cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.story.exchange import export

    with _stories() as stories:
        text = export(stories.load(args.story), args.format, args.node)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(_t(f"Wrote {args.output}.", f"Записано в {args.output}."), file=err)
    else:
        out.write(text)
    return 0


def cmd_import(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.cli.console import read_text
    from gptdesk.errors import InvalidInputError
    from gptdesk.story.exchange import import_story

    if args.file == "-":
        text = read_text("-")
    else:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                Text(
                    f"Cannot read the story file {args.file}: {exc}. Check the path.",
                    f"Не прочитать файл рассказа {args.file}: {exc}. Проверьте путь.",
                )
            ) from None
    with _stories() as stories:
        story_id = import_story(stories, text)
    print(story_id, file=out)
    print(_t(f"Imported as story {story_id}.", f"Импортировано как рассказ {story_id}."), file=err)
    return 0


def cmd_ls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _stories() as stories:
        rows = stories.list()
    if args.json:
        data = [{"id": i, "title": t, "nodes": n, "updated_at": u} for i, t, n, u in rows]
        out.write(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        return 0
    for story_id, title, nodes, updated in rows:
        print(f"{story_id:>5}  {updated[:19]}  {nodes:>4}  {title}", file=out)
    if not rows:
        print(
            _t("No stories yet: `gptdesk story new PROMPT`.", "Рассказов пока нет: `gptdesk story new ЗАТРАВКА`."),
            file=err,
        )
    return 0


@with_story
def cmd_mark(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _stories() as stories:
        stories.load(args.story).node(args.node)  # a missing story or node is named with the fix
        stories.set_marks(args.node, bookmark=args.bookmark, hidden=args.hidden)
        node = stories.load(args.story).nodes[args.node]
    marks = _t(
        f"Node {node.id}: bookmark {'on' if node.bookmark else 'off'}, {'hidden' if node.hidden else 'shown'}.",
        f"Узел {node.id}: закладка {'есть' if node.bookmark else 'нет'}, {'скрыт' if node.hidden else 'виден'}.",
    )
    print(marks, file=out)
    return 0


@with_story
def cmd_rm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _stories() as stories:
        if args.node is None:
            stories.delete(args.story)
            print(_t(f"Removed story {args.story}.", f"Рассказ {args.story} удалён."), file=err)
        else:
            stories.delete_node(args.story, args.node)
            print(_t(f"Removed node {args.node}.", f"Узел {args.node} удалён."), file=err)
    return 0
