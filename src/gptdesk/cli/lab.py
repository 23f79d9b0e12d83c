"""The lab's commands: `gptdesk next`, `gptdesk explore` and `gptdesk advise`."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, TextIO

from gptdesk.cli.console import printable, readable, say
from gptdesk.cli.engine_options import add_adapter_option, add_ban_option, add_cache_option, ban_overrides
from gptdesk.cli.exits import EXIT_NOT_WRITTEN
from gptdesk.i18n import Text


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(sub: Any) -> None:
    from gptdesk.lab.advice import GOALS

    nxt = sub.add_parser(
        "next",
        help=_t(
            "show the next-token distribution and what the settings do to it",
            "показать распределение следующего токена и что с ним делают настройки",
        ),
        description=_t(
            "The model's probabilities for the token after PROMPT: raw (temperature 1, nothing cut) and "
            "after the settings (penalties, bans, temperature, top-k, top-p), with what each setting cuts.",
            "Вероятности модели для токена после ЗАТРАВКИ: исходные (температура 1, ничего не отсечено) и "
            "после настроек (штрафы, запреты, температура, top-k, top-p), с тем, что отсекает каждая настройка.",
        ),
    )
    nxt.add_argument("prompt", help=_t("the context; '-' reads standard input", "контекст; «-» — читать из stdin"))
    _common(nxt)
    nxt.add_argument("--top", type=int, default=30, help=_t("candidates to show", "сколько кандидатов показать"))
    nxt.add_argument(
        "--png", metavar="FILE", default=None, help=_t("also save the chart as PNG", "сохранить график в PNG")
    )
    nxt.add_argument(
        "--svg", metavar="FILE", default=None, help=_t("also save the chart as SVG", "сохранить график в SVG")
    )
    nxt.set_defaults(func=cmd_next)

    exp = sub.add_parser(
        "explore",
        help=_t(
            "generate a grid of settings on one prompt and seed, with measures",
            "сгенерировать сетку настроек на одной затравке и seed, с измерениями",
        ),
        description=_t(
            "Continue PROMPT once per combination of the --vary values, all with one seed, and measure each text: "
            "repeated word 3-grams, distinct-2, the model's mean log-probability (fluency), length, tokens/s.",
            "Продолжить ЗАТРАВКУ для каждого сочетания значений --vary с одним seed и измерить каждый текст: "
            "повторы троек слов, distinct-2, средняя лог-вероятность по модели (беглость), длина, токены/с.",
        ),
    )
    exp.add_argument(
        "prompt", nargs="?", help=_t("the prompt; '-' reads standard input", "затравка; «-» — читать из stdin")
    )
    _common(exp)
    exp.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="SETTING=V1,V2",
        help=_t(
            "a setting and its values, once or twice: temperature, top_k, top_p, repetition_penalty, "
            "no_repeat_ngram_size, num_beams, or preset (e.g. preset=balanced,precise,creative)",
            "настройка и её значения, один или два раза: temperature, top_k, top_p, repetition_penalty, "
            "no_repeat_ngram_size, num_beams или preset (например preset=balanced,precise,creative)",
        ),
    )
    exp.add_argument(
        "--save",
        action="store_true",
        help=_t("store the grid in the history as one group", "сохранить сетку в истории одной группой"),
    )
    exp.add_argument(
        "--reproduce", metavar="GROUP", default=None, help=_t("run a stored grid again", "повторить сохранённую сетку")
    )
    exp.add_argument("--list", action="store_true", help=_t("list the stored grids", "перечислить сохранённые сетки"))
    exp.set_defaults(func=cmd_explore)

    adv = sub.add_parser(
        "advise",
        help=_t(
            "suggest settings for a goal, with the figures behind them", "предложить настройки для цели, с цифрами"
        ),
        description=_t(
            "Search a small grid of settings on PROMPT and pick one by the goal's rule (see docs/lab.md).",
            "Перебрать небольшую сетку настроек на ЗАТРАВКЕ и выбрать по правилу цели (см. docs/lab.md).",
        ),
    )
    adv.add_argument("prompt", help=_t("the prompt; '-' reads standard input", "затравка; «-» — читать из stdin"))
    adv.add_argument("--goal", default="story", choices=list(GOALS), help=_t("what the text is for", "для чего текст"))
    adv.add_argument("--model", default=None, help=_t("model (default: embedded)", "модель (по умолчанию встроенная)"))
    adv.add_argument("--engine", default="auto", choices=("auto", "transformers", "llamacpp"))
    add_cache_option(adv)
    add_adapter_option(adv)
    adv.add_argument(
        "--seeds",
        type=int,
        default=2,
        help=_t("seeds tried per setting (default 2)", "seed на настройку (по умолчанию 2)"),
    )
    adv.add_argument(
        "--tokens",
        type=int,
        default=None,
        help=_t("new tokens per text (default 100)", "новых токенов на текст (по умолчанию 100)"),
    )
    adv.add_argument("--json", action="store_true", help=_t("print one JSON result", "вывести итог одним JSON"))
    adv.set_defaults(func=cmd_advise)


def _common(p: argparse.ArgumentParser) -> None:
    """The model and settings flags of `gptdesk generate`, as it spells them."""
    from gptdesk.cli.main import _SETTING_TYPES, _model_options
    from gptdesk.settings.help import FIELD_HELP
    from gptdesk.settings.presets import PRESETS

    _model_options(p)
    add_adapter_option(p)
    p.add_argument("--engine", default="auto", choices=("auto", "transformers", "llamacpp"))
    p.add_argument(
        "--preset", default="balanced", help=_t("settings preset: ", "набор настроек: ") + ", ".join(PRESETS)
    )
    for name, kind in _SETTING_TYPES.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=FIELD_HELP[name].help.get())
    sample = p.add_mutually_exclusive_group()
    sample.add_argument(
        "--sample", dest="do_sample", action="store_true", default=None, help=FIELD_HELP["do_sample"].help.get()
    )
    sample.add_argument(
        "--greedy", dest="do_sample", action="store_false", help=_t("do_sample off", "do_sample выключен")
    )
    add_ban_option(p)
    p.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))


def _settings(args: argparse.Namespace) -> Any:
    from gptdesk.cli.main import _SETTING_TYPES
    from gptdesk.settings.presets import get_preset

    overrides: dict[str, Any] = {k: getattr(args, k) for k in _SETTING_TYPES if getattr(args, k) is not None}
    if args.do_sample is not None:
        overrides["do_sample"] = args.do_sample
    overrides.update(ban_overrides(args))
    return get_preset(args.preset).settings(**overrides)


def _read(value: str) -> str:
    """The prompt, or standard input for '-', strictly UTF-8 (as `gptdesk generate` reads it)."""
    from gptdesk.cli.console import read_text

    return read_text(value)


def _load(args: argparse.Namespace, err: TextIO) -> Any:
    from gptdesk.cli.engine_options import adapter_option, cache_option
    from gptdesk.cli.main import _fetch_if_missing
    from gptdesk.engine import load_engine

    _fetch_if_missing(args.model, err)
    options: dict[str, Any] = {**cache_option(args), **adapter_option(args)}
    if hasattr(args, "device"):
        options.update(device=args.device, dtype=args.dtype)
    return load_engine(args.model, engine=args.engine, **options)


def cmd_next(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.errors import InvalidInputError
    from gptdesk.lab.nextview import NextTokenContext
    from gptdesk.lab.source import logits_source

    prompt = _read(args.prompt)
    settings = _settings(args)
    charts = [Path(p) for p in (args.png, args.svg) if p]
    for path in charts:  # a bad suffix is bad input: refused before anything is drawn or printed
        if path.suffix.lower() not in (".png", ".svg"):
            raise InvalidInputError(
                Text(
                    f"Cannot save a chart as '{printable(str(path))}': use a .png or .svg file name.",
                    f"Нельзя сохранить график как «{printable(str(path))}»: укажите имя файла .png или .svg.",
                )
            )
    engine = _load(args, err)
    try:
        ctx = NextTokenContext.for_prompt(logits_source(engine), prompt)
        view = ctx.view(settings, top=max(1, args.top))
    finally:
        engine.close()
    if args.json:
        result = {"prompt": prompt, "settings": settings.model_dump(), **view.to_dict()}
        json.dump(result, out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        _print_view(view, out, err)
    return _save_charts(view, charts, out, err)


def _save_charts(view: Any, paths: list[Path], out: TextIO, err: TextIO) -> int:
    """Draw the chart off screen into each file; a file that cannot be written is named (exit 5), the view
    has been printed already."""
    if not paths:
        return 0
    # The chart is drawn off screen whatever QT_QPA_PLATFORM says: xcb without a display aborts the
    # process ("no Qt platform plugin could be initialized"), and a file needs no display. No
    # QApplication exists yet in a CLI process, so the platform is still ours to choose.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from gptdesk.ui.lab.charts import export_view

    out.flush()
    code = 0
    with tempfile.TemporaryDirectory(prefix="gptdesk-chart-") as scratch:
        for path in paths:
            drawn = Path(scratch) / ("chart" + path.suffix.lower())
            export_view(view, drawn)
            problem: Text | None = None
            try:
                data = drawn.read_bytes()
                if not data:
                    problem = Text("the chart came out empty: is the disk full?", "график вышел пустым: диск полон?")
                else:
                    path.write_bytes(data)
            except OSError as exc:
                problem = Text(exc.strerror or str(exc), exc.strerror or str(exc))
            if problem is not None:
                say(
                    err,
                    readable(
                        err,
                        Text(
                            f"Error: the chart cannot be written to {path} ({problem.en}). Choose a file in a writable "
                            "folder with free space (e.g. --png ~/chart.png).",
                            f"Ошибка: график не записать в {path} ({problem.ru}). Укажите файл в папке, доступной для "
                            "записи и со свободным местом (например, --png ~/chart.png).",
                        ),
                    ),
                )
                code = EXIT_NOT_WRITTEN
    return code


def _print_view(view: Any, out: TextIO, err: TextIO) -> None:
    from gptdesk.lab.nextview import format_probability

    for note in view.notes:
        print("! " + note.get(), file=err)
    greedy = format_probability(view.greedy_final)
    print(
        _t(
            f"entropy {view.entropy_bits:.2f} bits (raw {view.raw_entropy_bits:.2f}); "
            f"{view.in_play} tokens in play; mass kept {view.mass_kept:.1%}; "
            f"greedy choice «{view.greedy_piece}» at {greedy}",
            f"энтропия {view.entropy_bits:.2f} бит (исходная {view.raw_entropy_bits:.2f}); "
            f"в игре токенов: {view.in_play}; сохранённая масса {view.mass_kept:.1%}; "
            f"жадный выбор «{view.greedy_piece}» с {greedy}",
        ),
        file=out,
    )
    status_text = {
        "kept": _t("", ""),
        "top_k": _t("cut by top-k", "отсечён top-k"),
        "top_p": _t("cut by top-p", "отсечён top-p"),
        "no_repeat_ngram": _t("banned: repeats an n-gram", "запрещён: повтор n-граммы"),
        "min_length": _t("banned: below the minimum length", "запрещён: минимальная длина"),
        "not_greedy": _t("not the greedy choice", "не жадный выбор"),
    }
    print(f"{'#':>3}  {_t('token', 'токен'):<16} {_t('raw', 'исходная'):>9} {_t('final', 'итоговая'):>9}", file=out)
    for rank, c in enumerate(view.candidates):
        if rank == view.top_k_rank:
            print("    " + "-" * 14 + " top-k " + "-" * 14, file=out)
        if rank == view.top_p_rank:
            print("    " + "-" * 14 + " top-p " + "-" * 14, file=out)
        shown = "«" + c.piece.replace("\n", "\\n") + "»"
        mark = (" *" + _t("penalized", "оштрафован")) if c.penalized else ""
        print(
            f"{rank + 1:>3}  {shown:<16} {format_probability(c.raw):>9} {format_probability(c.final):>9}  "
            f"{status_text[c.status]}{mark}",
            file=out,
        )


def cmd_explore(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.cli.main import _CtrlC
    from gptdesk.errors import GptDeskError, InvalidInputError
    from gptdesk.lab.explorer import grid_from_group, parse_axis, plan_grid, run_grid, save_grid

    if args.list or args.reproduce:
        from gptdesk.history.store import HistoryStore

        with HistoryStore() as store:
            if args.list:
                for stored, count, first_prompt in store.groups():
                    print(f"{stored}  {count:>3}  {first_prompt[:60]}", file=out)
                return 0
            prompt, axes, cells = grid_from_group(store, args.reproduce)
    else:
        if not args.prompt:
            raise InvalidInputError(
                Text(
                    "explore needs a PROMPT (or --reproduce GROUP, or --list).",
                    "explore нужна ЗАТРАВКА (или --reproduce ГРУППА, или --list).",
                )
            )
        prompt = _read(args.prompt)
        axes = [parse_axis(spec) for spec in args.vary]
        cells = plan_grid(_settings(args), axes)
    engine = _load(args, err)
    cancel = threading.Event()
    try:

        def progress(done: int, total: int, tokens: int) -> None:
            if not args.json and err.isatty():
                err.write(f"\r{_t('cell', 'ячейка')} {min(done + 1, total)}/{total}, {tokens} tok   ")
                err.flush()

        with _CtrlC(cancel):
            results = run_grid(engine, prompt, cells, cancel, on_progress=progress)
        if not args.json and err.isatty():
            err.write("\n")
        group_id: str | None = None
        save_failed: GptDeskError | None = None
        if args.save and results:
            from gptdesk.history.store import HistoryStore

            # A history that cannot be written costs the save, not the generated cells: they are
            # printed below, and the failure is told after them.
            try:
                with HistoryStore() as store:
                    group_id = save_grid(store, prompt, results, engine)
            except GptDeskError as exc:
                save_failed = exc
    finally:
        engine.close()
    if args.json:
        for result in results:
            record = result.to_dict(axes)
            record["group_id"] = group_id
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        for result in results:
            m = result.measures
            fluency = f"{m.mean_logprob:.2f}" if m.mean_logprob is not None else "-"
            tps = f"{m.tokens_per_second:.0f}" if m.tokens_per_second else "-"
            print(
                f"== {result.cell.label(axes)} | "
                + _t(
                    f"repeated 3-grams {m.repeated_3grams:.0%}, distinct-2 {m.distinct_2:.0%}, fluency {fluency}, "
                    f"{m.words} words, {tps} tok/s",
                    f"повторы троек {m.repeated_3grams:.0%}, distinct-2 {m.distinct_2:.0%}, беглость {fluency}, "
                    f"слов {m.words}, {tps} ток/с",
                ),
                file=out,
            )
            print(prompt + result.text, file=out)
        if group_id:
            print(_t(f"Saved as group {group_id}.", f"Сохранено группой {group_id}."), file=err)
    if save_failed is not None:
        out.flush()
        say(
            err,
            readable(
                err,
                Text("Error: the grid was not saved: ", "Ошибка: сетка не сохранена: ")
                + save_failed.text
                + Text(" The results above are complete.", " Результаты выше полные."),
            ),
        )
        return save_failed.exit_code
    if len(results) < len(cells):
        print(
            _t(
                f"Stopped: {len(results)} of {len(cells)} cells finished.",
                f"Остановлено: готово {len(results)} из {len(cells)} ячеек.",
            ),
            file=err,
        )
        return 130
    return 0


def cmd_advise(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.cli.main import _CtrlC
    from gptdesk.errors import InvalidInputError
    from gptdesk.lab.advice import ADVICE_TOKENS, advise, get_goal, rule_text

    prompt = _read(args.prompt)
    goal = get_goal(args.goal)
    tokens = args.tokens if args.tokens is not None else ADVICE_TOKENS
    if not 1 <= args.seeds <= 16 or not 1 <= tokens <= 512:
        raise InvalidInputError(
            Text(
                f"--seeds {args.seeds} --tokens {tokens}: use 1 to 16 seeds and 1 to 512 tokens.",
                f"--seeds {args.seeds} --tokens {tokens}: укажите от 1 до 16 seed и от 1 до 512 токенов.",
            )
        )
    engine = _load(args, err)
    cancel = threading.Event()
    try:

        def progress(done: int, total: int) -> None:
            if not args.json and err.isatty():
                err.write(f"\r{done}/{total}   ")
                err.flush()

        with _CtrlC(cancel):
            advice = advise(
                engine,
                prompt,
                goal,
                seeds=tuple(range(1, args.seeds + 1)),
                max_new_tokens=tokens,
                cancel=cancel,
                on_progress=progress,
            )
    finally:
        engine.close()
    if advice is None:
        print(_t("Stopped.", "Остановлено."), file=err)
        return 130
    if args.json:
        json.dump(advice.to_dict(), out, ensure_ascii=False, indent=1)
        out.write("\n")
        return 0
    if err.isatty():
        err.write("\n")
    print(advice.reason.get(), file=out)
    print(_t("Rule: ", "Правило: ") + rule_text(goal).get(), file=out)
    s = advice.settings
    print(
        f"gptdesk generate PROMPT --temperature {s.temperature} --top-k {s.top_k} --top-p {s.top_p} "
        f"--repetition-penalty {s.repetition_penalty}",
        file=out,
    )
    return 0
