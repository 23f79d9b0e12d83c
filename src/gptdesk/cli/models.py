"""The `gptdesk models` command: ls (the default), pull and rm, with a progress bar in the terminal."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from gptdesk.i18n import Text, current_language
from gptdesk.models.cost import available_memory, format_bytes
from gptdesk.models.gguf.converted import cache_total, gguf_root
from gptdesk.models.hub.download import fetch as fetch_plan
from gptdesk.models.hub.plan import plan
from gptdesk.models.hub.progress import DownloadProgress, format_duration
from gptdesk.models.hub.settings import HubSettings
from gptdesk.models.manage import SHOWN_DTYPES, ModelRow, delete_converted, delete_model, find_row, list_models

EXIT_OK = 0
_BAR_WIDTH = 24
_DTYPE_LABEL = {"float32": "fp32", "bfloat16": "bf16", "q8_0": "q8_0"}


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(subparsers: Any) -> None:
    """Add `models` (with ls, pull, rm) to the `gptdesk` parser."""
    mod = subparsers.add_parser(
        "models",
        help=_t(
            "list, download and delete models (bare: list)",
            "список, загрузка и удаление моделей (без действия — список)",
        ),
        description=_t(
            "Models GPT Desk knows and those in the Hugging Face cache: size on disk, memory needed per dtype "
            "and whether this machine has it. `pull` downloads (resumable, checked), `rm` deletes.",
            "Модели из каталога GPT Desk и из кэша Hugging Face: место на диске, память для каждого типа "
            "данных и хватает ли её на этом компьютере. `pull` скачивает (с докачкой и проверкой), `rm` удаляет.",
        ),
    )
    mod.add_argument("--json", action="store_true", help=_t("print JSON", "вывести JSON"))
    mod.set_defaults(func=cmd_ls)
    actions = mod.add_subparsers(dest="models_action", metavar="ACTION")

    ls = actions.add_parser("ls", help=_t("list models (the default)", "список моделей (по умолчанию)"))
    # SUPPRESS: `models --json ls` keeps the --json given before the action.
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=_t("print JSON", "вывести JSON"))
    ls.set_defaults(func=cmd_ls)

    pull = actions.add_parser(
        "pull",
        help=_t("download a model into the Hugging Face cache", "скачать модель в кэш Hugging Face"),
        description=_t(
            "Download NAME (a catalog name such as rugpt3large, or any hub id owner/name): only the files a "
            "GPT-2 model needs, safetensors preferred. An interrupted download resumes where it stopped; "
            "files are checked against the hub's sha256. Ctrl+C cancels and keeps what was downloaded.",
            "Скачать NAME (имя из каталога, например rugpt3large, или любой id на хабе вида владелец/имя): "
            "только файлы, нужные модели GPT-2, предпочтительно safetensors. Прерванная загрузка "
            "продолжается с места остановки; файлы сверяются с sha256 на хабе. Ctrl+C отменяет загрузку, "
            "скачанное сохраняется.",
        ),
    )
    pull.add_argument("name", help=_t("catalog name or hub id", "имя из каталога или id на хабе"))
    pull.add_argument("--revision", default="main", help=_t("branch, tag or commit", "ветка, тег или коммит"))
    pull.add_argument(
        "--endpoint",
        default=None,
        help=_t(
            "hub address or a mirror (default: HF_ENDPOINT, else https://huggingface.co)",
            "адрес хаба или зеркала (по умолчанию HF_ENDPOINT, иначе https://huggingface.co)",
        ),
    )
    pull.add_argument(
        "--token",
        default=None,
        help=_t(
            "access token for gated or private models (default: HF_TOKEN or `hf auth login`)",
            "токен для закрытых моделей (по умолчанию HF_TOKEN или `hf auth login`)",
        ),
    )
    pull.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help=_t(
            "do not re-check files that are already in the cache",
            "не перепроверять файлы, которые уже есть в кэше",
        ),
    )
    pull.set_defaults(func=cmd_pull)

    rm = actions.add_parser(
        "rm",
        help=_t("delete a downloaded model", "удалить скачанную модель"),
        description=_t(
            "Delete NAME from the Hugging Face cache, under every org name, partial downloads included, and its "
            "GGUF copies for the llama.cpp engine. --converted deletes only the GGUF copies.",
            "Удалить NAME из кэша Hugging Face под всеми именами организации, вместе с недокачанными файлами, и её "
            "копии GGUF для движка llama.cpp. С --converted удаляются только копии GGUF.",
        ),
    )
    rm.add_argument("name", help=_t("catalog name or hub id", "имя из каталога или id на хабе"))
    rm.add_argument(
        "--converted",
        action="store_true",
        help=_t(
            "delete only the converted GGUF files (they are made again when needed); works for the embedded model",
            "удалить только преобразованные файлы GGUF (при надобности они создаются заново); подходит и для "
            "встроенной модели",
        ),
    )
    rm.set_defaults(func=cmd_rm)


# -- ls ----------------------------------------------------------------------------------------------


def _row_json(r: ModelRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "aliases": list(r.aliases),
        "title": r.title.get(),
        "in_catalog": r.in_catalog,
        "params": r.params,
        "download_bytes": r.download_bytes,
        "disk_bytes": r.disk_bytes,
        "partial_bytes": r.partial_bytes,
        "status": r.status,
        "ram_bytes": r.ram_bytes,
        "fits": r.fits,
        "licence": r.licence,
        "local_path": str(r.local_path) if r.local_path else None,
        "converted": [
            {"quant": f.quant, "path": str(f.path), "bytes": f.bytes, "revision": f.revision} for f in r.converted
        ],
    }


def cmd_ls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    free = available_memory()
    hub = HubSettings()
    rows = list_models(hub.resolved_cache(), available=free)
    if getattr(args, "json", False):
        json.dump(
            {
                "available_memory_bytes": free,
                "cache_dir": str(hub.resolved_cache()),
                "gguf_cache": {"dir": str(gguf_root()), "bytes": cache_total()},
                "models": [_row_json(r) for r in rows],
            },
            out,
            ensure_ascii=False,
            indent=1,
        )
        out.write("\n")
        return EXIT_OK
    lang = current_language()
    ram_heads = "".join(f" {_t('RAM', 'ОЗУ') + ' ' + _DTYPE_LABEL[d]:>10}" for d in SHOWN_DTYPES)
    print(
        f"{_t('name', 'имя'):<16} {_t('params', 'парам.'):>7} {_t('download', 'загрузка'):>9} "
        f"{_t('on disk', 'на диске'):>9}{ram_heads}  {_t('status', 'состояние'):<18} id",
        file=out,
    )
    for r in rows:
        params = f"{r.params / 1e6:>6.0f}M" if r.params else f"{'?':>7}"
        download = format_bytes(r.download_bytes, lang) if r.download_bytes else "?"
        disk = format_bytes(r.disk_bytes, lang) if r.disk_bytes else "-"
        rams = ""
        for d in SHOWN_DTYPES:
            value = r.ram_bytes.get(d)
            cell = (format_bytes(value, lang) + ("" if r.fits.get(d) else "!")) if value else "?"
            rams += f" {cell:>10}"
        status = r.status_text().get()
        if r.status == "partial":
            status += f" ({format_bytes(r.partial_bytes, lang)})"
        print(f"{r.name:<16} {params} {download:>9} {disk:>9}{rams}  {status:<18} {r.id}", file=out)
        for f in r.converted:
            print(
                f"{'':<16} └ GGUF {f.quant:<5} {format_bytes(f.bytes, lang):>9}  {f.path}",
                file=out,
            )
    print(
        _t(
            f"Free memory now: {format_bytes(free)}. '!' marks a model that does not fit in that dtype "
            "(q8_0 is the quantized llama.cpp engine). Cache: " + str(hub.resolved_cache()),
            f"Свободно памяти: {format_bytes(free, 'ru')}. «!» — модель не помещается с этим типом данных "
            "(q8_0 — квантованный движок llama.cpp). Кэш: " + str(hub.resolved_cache()),
        ),
        file=out,
    )
    total = cache_total()
    if total:
        print(
            _t(
                f"Converted GGUF files (llama.cpp engine): {format_bytes(total)} in {gguf_root()}; "
                "`gptdesk models rm NAME --converted` deletes a model's copies.",
                f"Преобразованные файлы GGUF (движок llama.cpp): {format_bytes(total, 'ru')} в {gguf_root()}; "
                "`gptdesk models rm ИМЯ --converted` удаляет копии модели.",
            ),
            file=out,
        )
    return EXIT_OK


# -- pull --------------------------------------------------------------------------------------------


class TerminalProgress:
    """Draws DownloadProgress: one redrawn line on a terminal, a line per file and per 10% otherwise."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.last_key: tuple[str, int, str] | None = None
        self.last_decile = -1
        self.width = 0

    def __call__(self, p: DownloadProgress) -> None:
        lang = current_language()
        if self.tty:
            line = self.line(p)
            cols = shutil.get_terminal_size((100, 20)).columns - 1
            line = line[:cols]
            self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
            self.width = len(line)
            if p.phase == "done":
                self.stream.write("\n")
            self.stream.flush()
            return
        decile = int(p.fraction * 10)
        note = p.note.get(lang) if p.note else ""
        key = (p.filename, p.file_index, note)
        if p.phase == "done" or key != self.last_key or decile > self.last_decile:
            self.last_key = key
            self.last_decile = max(decile, self.last_decile)
            self.stream.write(self.line(p) + "\n")
            self.stream.flush()

    def line(self, p: DownloadProgress) -> str:
        lang = current_language()
        filled = round(p.fraction * _BAR_WIDTH)
        bar = "█" * filled + "░" * (_BAR_WIDTH - filled)
        parts = [
            f"{p.filename or p.repo_id} {p.file_index}/{p.file_count}",
            f"[{bar}]",
            f"{p.fraction * 100:5.1f}%",
            f"{format_bytes(p.done_bytes, lang)}/{format_bytes(p.total_bytes, lang)}",
        ]
        if p.phase == "verify":
            parts.append(_t("checking", "проверка"))
        if p.speed:
            parts.append(format_bytes(p.speed, lang) + _t("/s", "/с"))
        if p.eta is not None:
            parts.append(_t("ETA ", "осталось ") + format_duration(p.eta, lang))
        if p.note is not None:
            parts.append("— " + p.note.get(lang))
        return "  ".join(parts)


@contextmanager
def _ctrl_c_cancels(cancel: threading.Event) -> Iterator[None]:
    """Ctrl+C cancels the download cleanly, at once: fetch() turns the KeyboardInterrupt into its cancel,
    even inside a read that a stalled server never completes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        cancel.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_pull(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    lang = current_language()
    hub = HubSettings(endpoint=args.endpoint, token=args.token)
    the_plan = plan(args.name, hub=hub, revision=args.revision)
    here = the_plan.present_bytes()
    print(
        _t(
            f"{the_plan.repo_id} @ {the_plan.commit[:10]}: {len(the_plan.files)} files, "
            f"{format_bytes(the_plan.total_bytes)}"
            + (f" ({format_bytes(here)} already here)" if here else "")
            + f" from {the_plan.endpoint} into {the_plan.cache_dir}",
            f"{the_plan.repo_id} @ {the_plan.commit[:10]}: файлов {len(the_plan.files)}, "
            f"{format_bytes(the_plan.total_bytes, 'ru')}"
            + (f" (уже есть {format_bytes(here, 'ru')})" if here else "")
            + f" с {the_plan.endpoint} в {the_plan.cache_dir}",
        ),
        file=err,
    )
    cancel = threading.Event()
    with _ctrl_c_cancels(cancel):
        path = fetch_plan(the_plan, hub=hub, progress=TerminalProgress(err), cancel=cancel, verify_existing=args.verify)
    print(str(path), file=out)
    row = find_row(args.name, list_models(hub.resolved_cache()))
    short = row.name if row is not None else args.name
    print(
        _t(
            f'Ready. Try: gptdesk generate --model {short} "Москва — столица"',
            f'Готово. Попробуйте: gptdesk generate --model {short} "Москва — столица"',
        ),
        file=err,
    )
    if row is not None and row.ram_bytes and not row.fits.get("float32", True):
        fits = [d for d in SHOWN_DTYPES if row.fits.get(d)]
        need = format_bytes(row.ram_bytes["float32"], lang)
        print(
            _t(
                f"Note: in float32 it needs ≈ {need} of memory, more than this machine has free now; "
                + (
                    f"it fits in {', '.join(fits)} (--dtype bfloat16 or the quantized engine)."
                    if fits
                    else "close other programs or choose a smaller model."
                ),
                f"Внимание: во float32 ей нужно ≈ {need} памяти, больше, чем сейчас свободно; "
                + (
                    f"в {', '.join(fits)} она помещается (--dtype bfloat16 или квантованный движок)."
                    if fits
                    else "закройте другие программы или выберите модель поменьше."
                ),
            ),
            file=err,
        )
    return EXIT_OK


# -- rm ----------------------------------------------------------------------------------------------


def cmd_rm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.converted:
        freed = delete_converted(args.name)
        print(
            _t(
                f"Deleted the converted GGUF files of {args.name}: {format_bytes(freed)} freed.",
                f"Удалены преобразованные файлы GGUF модели {args.name}: освобождено {format_bytes(freed, 'ru')}.",
            )
            if freed
            else _t(
                f"{args.name} has no converted GGUF files in {gguf_root()}: nothing to delete.",
                f"У {args.name} нет преобразованных файлов GGUF в {gguf_root()}: удалять нечего.",
            ),
            file=out,
        )
        return EXIT_OK
    freed = delete_model(args.name, HubSettings().resolved_cache())
    print(
        _t(
            f"Deleted {args.name}: {format_bytes(freed)} freed.",
            f"Удалена {args.name}: освобождено {format_bytes(freed, 'ru')}.",
        ),
        file=out,
    )
    return EXIT_OK
