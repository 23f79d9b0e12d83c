"""`gptdesk tune FILES…` (a LoRA adapter from the user's texts) and `gptdesk adapters ls|show|rm`."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from gptdesk.i18n import Text, current_language

_BAR_WIDTH = 20
#: The issue's target for `gptdesk tune` on the embedded model: held-out bits/char down by at least this share.
TARGET_IMPROVEMENT = 0.05


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tune",
        help=_t("teach the model your texts (a LoRA adapter)", "научить модель вашим текстам (адаптер LoRA)"),
        description=_t(
            "Tune a LoRA adapter on your UTF-8 text files. The last ~5% of the text is held out and its bits per "
            "character are measured before and after. Ctrl+C saves a checkpoint; --resume goes on from it. The "
            "adapter is kept in the cache: use it with --adapter NAME.",
            "Обучить адаптер LoRA на ваших текстовых файлах в UTF-8. Последние ~5% текста откладываются, и их "
            "биты на символ измеряются до и после. Ctrl+C сохраняет контрольную точку; --resume продолжает с неё. "
            "Адаптер хранится в кэше: применяйте его через --adapter ИМЯ.",
        ),
    )
    p.add_argument("files", nargs="+", help=_t("UTF-8 text files", "текстовые файлы в UTF-8"))
    p.add_argument(
        "--model",
        default=None,
        help=_t("catalog name, hub id or folder (default: the embedded model)", "модель (по умолчанию встроенная)"),
    )
    p.add_argument(
        "--name",
        default=None,
        help=_t("the adapter's name (default: the first file's name)", "имя адаптера (по умолчанию — имя файла)"),
    )
    p.add_argument("--rank", type=int, default=8, help=_t("LoRA rank (default 8)", "ранг LoRA (по умолчанию 8)"))
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=float, default=None, help=_t("time budget (default 10)", "бюджет времени (по умолчанию 10)")
    )
    budget.add_argument("--epochs", type=float, default=None, help=_t("passes over the text", "проходы по тексту"))
    p.add_argument(
        "--batch", type=int, default=4, help=_t("sequences per step (default 4)", "последовательностей за шаг")
    )
    p.add_argument(
        "--seq-len", type=int, default=256, help=_t("tokens per sequence (default 256)", "токенов в последовательности")
    )
    p.add_argument("--lr", type=float, default=1e-3, help=_t("learning rate (default 1e-3)", "скорость обучения"))
    p.add_argument(
        "--resume", action="store_true", help=_t("go on from the saved checkpoint", "продолжить с контрольной точки")
    )
    p.add_argument("--replace", action="store_true", help=_t("replace an adapter of that name", "заменить адаптер"))
    p.add_argument("--device", default="auto", help=_t("cpu, cuda or auto", "cpu, cuda или auto"))
    p.add_argument("--json", action="store_true", help=_t("print the result as JSON", "вывести результат в JSON"))
    p.set_defaults(func=cmd_tune)

    a = subparsers.add_parser("adapters", help=_t("LoRA adapters in the cache", "адаптеры LoRA в кэше"))
    asub = a.add_subparsers(dest="adapters_command", metavar="{ls,show,rm,merge}")
    ls = asub.add_parser("ls", help=_t("list the adapters", "список адаптеров"))
    ls.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))
    ls.set_defaults(func=cmd_adapters_ls)
    show = asub.add_parser("show", help=_t("an adapter's manifest", "манифест адаптера"))
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))
    show.set_defaults(func=cmd_adapters_show)
    rm = asub.add_parser("rm", help=_t("remove an adapter", "удалить адаптер"))
    rm.add_argument("name")
    rm.set_defaults(func=cmd_adapters_rm)
    merge = asub.add_parser(
        "merge",
        help=_t(
            "merge an adapter into its model's weights: a model folder and a GGUF file at full speed",
            "слить адаптер с весами модели: папка модели и файл GGUF на полной скорости",
        ),
    )
    merge.add_argument("name")
    merge.add_argument(
        "--quant",
        default="q8_0",
        help=_t("the GGUF type to write (default q8_0)", "тип GGUF для записи (по умолчанию q8_0)"),
    )
    merge.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))
    merge.set_defaults(func=cmd_adapters_merge)
    a.set_defaults(func=cmd_adapters_ls, json=False)


class TuneBar:
    """Draws TuneProgress: one redrawn line on a terminal, a line per evaluation otherwise."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.width = 0

    def __call__(self, p: Any) -> None:
        line = self.line(p)
        if self.tty:
            line = line[: shutil.get_terminal_size((100, 20)).columns - 1]
            self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
            self.width = len(line)
        elif p.phase != "train" or p.heldout_loss is not None or p.step == 1:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0

    @staticmethod
    def line(p: Any) -> str:
        from gptdesk.models.hub.progress import format_duration

        lang = current_language()
        if p.phase == "measure":
            return _t("Measuring the held-out text before tuning…", "Оценка проверочного текста до обучения…")
        if p.phase == "evaluate":
            return _t("Measuring the held-out text after tuning…", "Оценка проверочного текста после обучения…")
        fraction = p.fraction or 0.0
        filled = round(fraction * _BAR_WIDTH)
        parts = [
            f"[{'█' * filled}{'░' * (_BAR_WIDTH - filled)}]",
            _t("step", "шаг") + f" {p.step}/{p.total_steps or '?'}",
        ]
        if p.loss is not None:
            parts.append(_t(f"loss {p.loss:.3f}", f"потери {p.loss:.3f}"))
        if p.heldout_loss is not None:
            parts.append(_t(f"held-out {p.heldout_loss:.3f}", f"проверка {p.heldout_loss:.3f}"))
        parts.append(_t(f"{p.tokens_per_s:,.0f} tokens/s", f"{p.tokens_per_s:,.0f} ток/с"))
        if p.eta_s is not None:
            parts.append(_t("ETA ", "осталось ") + format_duration(p.eta_s, lang))
        return "  ".join(parts)


def cmd_tune(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.models.cost import format_bytes
    from gptdesk.models.locate import read_config, resolve
    from gptdesk.models.shape import ModelShape
    from gptdesk.tune.data import default_name, read_texts
    from gptdesk.tune.options import TuneOptions, check_memory
    from gptdesk.tune.train import tune

    name = args.name or default_name(args.files[0])
    options = TuneOptions(
        rank=args.rank,
        minutes=args.minutes,
        epochs=args.epochs,
        batch_size=args.batch,
        seq_len=args.seq_len,
        learning_rate=args.lr,
    )
    options.check()
    texts = read_texts([Path(f) for f in args.files])
    resolved = resolve(args.model)
    lang = current_language()
    err.write(
        _t(
            f"Tuning '{name}' on {resolved.model_id}: {len(texts.text):,} characters, the last "
            f"{len(texts.heldout_text):,} held out.\n",
            f"Обучение «{name}» на {resolved.model_id}: {len(texts.text):,} символов, последние "
            f"{len(texts.heldout_text):,} отложены для проверки.\n",
        )
    )
    shape = ModelShape.from_config(read_config(resolved.path))
    memory = check_memory(shape, options.for_model(shape.n_positions))
    err.write(
        _t("Memory estimate: ", "Оценка памяти: ") + format_bytes(memory.total, lang) + f" ({memory.text().get()})\n"
    )
    cancel = threading.Event()
    bar = TuneBar(err)
    previous = None
    if threading.current_thread() is threading.main_thread():

        def stop(signum: int, frame: FrameType | None) -> None:
            if cancel.is_set():
                raise KeyboardInterrupt
            cancel.set()

        previous = signal.signal(signal.SIGINT, stop)
    try:
        result = tune(
            texts,
            resolved,
            name,
            options,
            progress=bar,
            cancel=cancel,
            resume=args.resume,
            device=args.device,
            replace_existing=args.replace,
        )
    finally:
        bar.end()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if result.stopped:
        err.write(
            _t(
                f"Stopped at step {result.steps}; the checkpoint is saved. Go on with: gptdesk tune "
                f"{' '.join(args.files)} --name {name} --resume\n",
                f"Остановлено на шаге {result.steps}; контрольная точка сохранена. Продолжить: gptdesk tune "
                f"{' '.join(args.files)} --name {name} --resume\n",
            )
        )
        if args.json:
            json.dump({"name": name, "stopped": True, "steps": result.steps}, out)
            out.write("\n")
        return 130
    assert result.adapter is not None and result.bpc_after is not None
    gain = result.improvement or 0.0
    met = gain >= TARGET_IMPROVEMENT
    if args.json:
        json.dump(
            {
                **result.adapter.manifest.as_dict(),
                "path": str(result.adapter.path),
                "early_stopped": result.early_stopped,
            },
            out,
            ensure_ascii=False,
        )
        out.write("\n")
        return 0
    out.write(
        _t(
            f"Adapter '{name}' saved in {result.adapter.path}\n"
            f"Held-out bits/char: {result.bpc_before:.4f} before, {result.bpc_after:.4f} after "
            f"({gain * 100:+.1f}% lower)\n"
            f"Steps: {result.steps} ({result.tokens_seen:,} tokens, {result.seconds:.0f} s)"
            f"{', stopped early: the held-out loss rose' if result.early_stopped else ''}\n"
            f"Target (held-out bits/char down by >= {TARGET_IMPROVEMENT:.0%}): {'met' if met else 'not met'}\n"
            f'Use it: gptdesk generate --adapter {name} "..."\n',
            f"Адаптер «{name}» сохранён в {result.adapter.path}\n"
            f"Биты на символ на проверочном тексте: {result.bpc_before:.4f} до, {result.bpc_after:.4f} после "
            f"(ниже на {gain * 100:+.1f}%)\n"
            f"Шагов: {result.steps} ({result.tokens_seen:,} токенов, {result.seconds:.0f} с)"
            f"{', ранняя остановка: потери на проверке выросли' if result.early_stopped else ''}\n"
            f"Цель (биты на символ ниже на >= {TARGET_IMPROVEMENT:.0%}): {'достигнута' if met else 'не достигнута'}\n"
            f'Применение: gptdesk generate --adapter {name} "..."\n',
        )
    )
    return 0


def _row(a: Any) -> str:
    m = a.manifest
    return (
        f"{m.name:<24} {m.base_model:<28} r{m.rank:<4} {m.steps:>6} "
        f"{m.heldout_bpc_before:.3f} -> {m.heldout_bpc_after:.3f}  {m.created[:10]}"
    )


def cmd_adapters_ls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.models.adapters import list_adapters

    found = list_adapters()
    if getattr(args, "json", False):
        json.dump([{**a.manifest.as_dict(), "path": str(a.path)} for a in found], out, ensure_ascii=False)
        out.write("\n")
        return 0
    if not found:
        out.write(
            _t(
                "No adapters yet. Make one with: gptdesk tune FILE.txt --name NAME\n",
                "Адаптеров пока нет. Создайте: gptdesk tune ФАЙЛ.txt --name ИМЯ\n",
            )
        )
        return 0
    out.write(
        _t(
            f"{'name':<24} {'base model':<28} {'rank':<5} {'steps':>6} held-out bits/char  date\n",
            f"{'имя':<24} {'базовая модель':<28} {'ранг':<5} {'шагов':>6} бит/символ (проверка)  дата\n",
        )
    )
    for a in found:
        out.write(_row(a) + "\n")
    return 0


def cmd_adapters_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.models.adapters import load_adapter

    adapter = load_adapter(args.name)
    data = {**adapter.manifest.as_dict(), "path": str(adapter.path)}
    if args.json:
        json.dump(data, out, ensure_ascii=False)
        out.write("\n")
        return 0
    for key, value in data.items():
        if key == "extra":
            continue
        out.write(f"{key}: {value}\n")
    return 0


def cmd_adapters_rm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.models.adapters import remove_adapter

    folder = remove_adapter(args.name)
    out.write(_t(f"Removed adapter '{args.name}' ({folder}).\n", f"Адаптер «{args.name}» удалён ({folder}).\n"))
    return 0


def cmd_adapters_merge(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gptdesk.models.gguf.sizes import canonical_quant
    from gptdesk.tune.merge import merge_adapter

    def progress(text: Text, fraction: float | None) -> None:
        shown = f" ({fraction:.0%})" if fraction is not None else ""
        err.write(f"{text.get()}{shown}\n")

    merged = merge_adapter(args.name, canonical_quant(args.quant), progress=progress)
    if args.json:
        json.dump({"name": merged.name, "folder": str(merged.folder), "gguf": str(merged.gguf)}, out)
        out.write("\n")
        return 0
    out.write(
        _t(
            f"Merged adapter '{merged.name}' into {merged.folder}\nGGUF: {merged.gguf}\n"
            f'Generate with it at full speed: gptdesk generate "..." --model {merged.folder}\n',
            f"Адаптер «{merged.name}» слит с весами: {merged.folder}\nGGUF: {merged.gguf}\n"
            f'Генерация на полной скорости: gptdesk generate "..." --model {merged.folder}\n',
        )
    )
    return 0
