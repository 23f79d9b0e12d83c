"""`gptdesk bench`: its flags, checked before anything runs; its worker processes, which end with it."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from gptdesk.errors import EngineError, InvalidInputError
from gptdesk.evaluate.bench import CONFIGS, SHAPES
from gptdesk.i18n import Text

#: Linux's prctl option that signals a process when the thread that started it ends (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: A worker's exit status when it ends because the bench that started it is gone.
EXIT_ORPHANED = 3


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(subparsers: Any) -> None:
    from gptdesk.evaluate.bench_quality import QUALITY_TYPES

    p = subparsers.add_parser(
        "bench",
        help=_t("compare the engines' speed and memory", "сравнить скорость и память движков"),
        description=_t(
            "Benchmark the reference engine (fp32, bf16, and beam search with the Sber demo preset) and the "
            "llama.cpp engine (f16, q8_0, q4_0) on random models of ruGPT-3's shapes, against the measured "
            "memory bandwidth. Heavy: the Large shape needs about 4 GB of RAM and several minutes.",
            "Замерить эталонный движок (fp32, bf16 и лучевой поиск с пресетом «Как в демо Сбера») и движок "
            "llama.cpp (f16, q8_0, q4_0) на случайных моделях формы ruGPT-3, сравнив с измеренной "
            "пропускной способностью памяти. Тяжело: форме Large нужно около 4 ГБ памяти и несколько минут.",
        ),
    )
    p.add_argument(
        "--shapes", default="small,large", help=_t("comma-separated: small, large", "через запятую: small, large")
    )
    p.add_argument(
        "--configs",
        default=",".join(c.key for c in CONFIGS),
        help=_t("rows to run: ", "какие строки: ") + ", ".join(c.key for c in CONFIGS),
    )
    p.add_argument("--runs", type=int, default=3, help=_t("timed runs per row (median)", "замеров на строку (медиана)"))
    p.add_argument(
        "--beam-runs", type=int, default=1, help=_t("timed runs of the beam-search row", "замеров строки с лучами")
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help=_t(
            "run every row this many times in turn, each time in a fresh process; ×fp32 is then the median "
            "of the rounds' ratios (steadier on a busy machine)",
            "прогнать все строки столько раз по очереди, каждый раз в новом процессе; ×fp32 тогда — медиана "
            "отношений по кругам (устойчивее на загруженной машине)",
        ),
    )
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=20)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=_t("default: one per physical core", "по умолчанию: по числу физических ядер"),
    )
    p.add_argument(
        "--json", dest="json_path", default=None, help=_t("where to write the results", "куда записать результаты")
    )
    p.add_argument(
        "--quality",
        default=",".join(QUALITY_TYPES),
        help=_t(
            "types whose quality is measured on the embedded model (comma-separated, or none): ",
            "типы, чьё качество измеряется на встроенной модели (через запятую или none): ",
        )
        + ", ".join(QUALITY_TYPES),
    )
    p.set_defaults(func=cmd_bench)


def _names(value: str, allowed: set[str], flag: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in allowed]
    if bad or not chosen:
        raise InvalidInputError(
            Text(
                f"{flag} = {','.join(chosen)}: unknown {', '.join(bad) or '(empty)'}; "
                f"choose from {', '.join(sorted(allowed))}.",
                f"{flag} = {','.join(chosen)}: неизвестно {', '.join(bad) or '(пусто)'}; "
                f"выберите из {', '.join(sorted(allowed))}.",
            )
        )
    return chosen


def check_writable(path: Path, given: bool) -> None:
    """Create the results file now (and remove it again if it was not there): a bench that runs for
    minutes must not find at its end that it cannot keep what it measured."""
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fix = (
            Text(
                "Pass --json with a file in a folder you can write.",
                "Укажите в --json файл в папке, доступной для записи.",
            )
            if given
            else Text(
                "Pass --json with a file you can write, or set GPTDESK_CACHE_DIR to a folder you can write.",
                "Укажите в --json файл, доступный для записи, или задайте GPTDESK_CACHE_DIR с доступной папкой.",
            )
        )
        raise InvalidInputError(
            Text(
                f"--json {path}: cannot write the results there ({reason}). ",
                f"--json {path}: туда не записать результаты ({reason}). ",
            )
            + fix
        ) from exc


def cmd_bench(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import gptdesk.tune.bench_row  # noqa: F401  (registers the tune row)
    from gptdesk.cli.bench_report import print_summary, printing_events
    from gptdesk.engine.llamacpp.native import default_threads
    from gptdesk.evaluate.bench import bench_dir, check_plan, record_measurements, run_bench
    from gptdesk.evaluate.bench_quality import parse_types, run_quality

    # Every flag is checked here, before the first measure: a worker must not find a bad value minutes in.
    shapes = _names(args.shapes, set(SHAPES), "--shapes")
    configs = _names(args.configs, {c.key for c in CONFIGS}, "--configs")
    for value, name in (
        (args.runs, "--runs"),
        (args.beam_runs, "--beam-runs"),
        (args.rounds, "--rounds"),
        (args.new_tokens, "--new-tokens"),
        (args.prompt_tokens, "--prompt-tokens"),
    ):
        if value < 1:
            raise InvalidInputError(Text(f"{name} = {value}: use at least 1.", f"{name} = {value}: нужно не меньше 1."))
    threads = args.threads if args.threads is not None else default_threads()
    quality_types = parse_types(args.quality)
    check_plan(shapes, threads=threads, new_tokens=args.new_tokens, prompt_tokens=args.prompt_tokens)
    path = Path(args.json_path) if args.json_path else bench_dir() / "results.json"
    check_writable(path, args.json_path is not None)

    events = printing_events(out)
    report = run_bench(
        shapes,
        configs=configs,
        runs=args.runs,
        beam_runs=args.beam_runs,
        new_tokens=args.new_tokens,
        prompt_tokens=args.prompt_tokens,
        threads=threads,
        measure=speed_worker,
        events=events,
        rounds=args.rounds,
    )
    report["quality"] = run_quality(quality_types, threads=threads, measure=quality_worker, say=events.say)
    print_summary(report, out)
    problem = record_measurements(report)
    if problem is not None:
        print(
            _t(
                f"\nThe figures could not be kept for the model manager ({problem}).",
                f"\nЦифры не удалось сохранить для менеджера моделей ({problem}).",
            ),
            file=err,
        )
    try:
        path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        raise EngineError(
            Text(
                f"Cannot write the results to {path}: {exc}. Pass --json with another path.",
                f"Не удаётся записать результаты в {path}: {exc}. Укажите другой путь в --json.",
            )
        ) from exc
    print(_t(f"\nResults written to {path}", f"\nРезультаты записаны в {path}"), file=out)
    return 0


# -- the worker processes ------------------------------------------------------------------------


def speed_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Time one row of the table in a fresh process (evaluate.bench.Measure)."""
    return run_worker("speed", spec, timeout)


def quality_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Measure one type's quality in a fresh process."""
    return run_worker("quality", spec, timeout)


def run_worker(job: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run `job` on `spec` in a fresh Python; its figures, or RuntimeError with its last lines of output.

    The worker ends with this process however this one ends (see die_with_parent); when this one is
    interrupted in Python (KeyboardInterrupt), subprocess.run kills the worker before re-raising.
    """
    command = [
        sys.executable,
        "-m",
        "gptdesk.cli.bench",
        "--worker",
        job,
        json.dumps(spec),
        "--parent",
        str(os.getpid()),
    ]
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"no result within {timeout:.0f} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(" | ".join(tail) or f"exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def die_with_parent(parent: int) -> None:
    """End this process when `parent` ends, however it ends (Ctrl+C, kill, kill -9): a bench worker left
    behind would keep two cores busy for minutes.

    Linux: the kernel sends SIGKILL when the parent's spawning thread exits (prctl PR_SET_PDEATHSIG).
    Elsewhere, or if prctl fails: a thread polls the parent's pid once a second.
    """
    armed = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(int(signal.SIGKILL)), 0, 0, 0) == 0
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(EXIT_ORPHANED)
    if armed:
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(argv: list[str]) -> int:
    """`python -m gptdesk.cli.bench --worker JOB SPEC --parent PID`: one measure, its figures as a JSON line."""
    at = argv.index("--worker")
    job, spec = argv[at + 1], json.loads(argv[at + 2])
    die_with_parent(int(argv[argv.index("--parent") + 1]))
    result: dict[str, Any]
    if job == "speed":
        import gptdesk.tune.bench_row  # noqa: F401  (registers the tune row)
        from gptdesk.evaluate.bench_rows import measure_row

        result = measure_row(spec)
    elif job == "quality":
        from gptdesk.evaluate.bench_quality import measure_type

        result = measure_type(spec["type"], int(spec["threads"]))
    else:
        raise SystemExit(f"unknown worker job {job!r}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv))
