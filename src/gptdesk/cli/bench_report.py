"""`gptdesk bench`'s printing: the progress lines, each shape's table and the summary of what each type costs."""

from __future__ import annotations

from typing import Any, TextIO

from gptdesk.evaluate.bench import SHAPES, BenchEvents, Row, ratios, ru_plural
from gptdesk.evaluate.bench_quality import QUALITY_TYPES, SPEED_KEY
from gptdesk.i18n import Text


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def _runs_en(n: object) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def printing_events(out: TextIO) -> BenchEvents:
    """The bench's progress as lines on `out`; each shape's table as soon as it is measured."""

    def say(text: Text) -> None:
        print(text.get(), file=out, flush=True)

    last: dict[str, float] = {}

    def converting(label: str, text: Text, fraction: float | None) -> None:
        # A line a quarter of the way at most, and the last one.
        before = last.get(label, -1.0)
        if fraction is not None and (fraction >= before + 0.25 or fraction >= 1.0) and fraction != before:
            last[label] = fraction
            print(f"    {text.get()} ({fraction:.0%})", file=out, flush=True)

    def shape_done(shape_name: str, rows: list[Row], report: dict[str, Any]) -> None:
        last.clear()  # the next shape converts its own files
        print_table(shape_name, rows, report, out)

    return BenchEvents(say=say, converting=converting, shape_done=shape_done)


def print_table(shape_name: str, rows: list[Row], report: dict[str, Any], out: TextIO) -> None:
    from gptdesk.models.cost import format_bytes

    machine = report["machine"]
    s = report["settings"]
    bandwidth = machine["read_bandwidth_bytes_per_s"]
    rounds = int(s.get("rounds", 1))
    runs_ru = f"{s['runs']} {ru_plural(int(s['runs']), 'запуска', 'запусков', 'запусков')}"
    print(file=out)
    print(
        _t(
            f"{SHAPES[shape_name]} shape, random weights; {machine['threads']} threads; prompt {s['prompt_tokens']} "
            f"tokens, {s['new_tokens']} new tokens (beam: up to 100), greedy; medians of {_runs_en(s['runs'])} "
            f"(beam: {s['beam_runs']})"
            + (f" in each of {rounds} rounds, ×fp32 the median of the rounds' ratios" if rounds > 1 else "")
            + f"; read bandwidth {bandwidth / 1e9:.1f} GB/s",
            f"Форма {SHAPES[shape_name]}, случайные веса; потоков: {machine['threads']}; затравка "
            f"{s['prompt_tokens']} токенов, новых токенов {s['new_tokens']} (лучи: до 100), жадный поиск; "
            f"медианы {runs_ru} (лучи: {s['beam_runs']})"
            + (f" в каждом из {rounds} кругов, ×fp32 — медиана отношений по кругам" if rounds > 1 else "")
            + f"; пропускная способность памяти {bandwidth / 1e9:.1f} ГБ/с",
        ),
        file=out,
    )
    columns = _t(
        "engine|weights|tok/s|×fp32|1st tok|peak RSS|load|floor|% floor|steady|% floor",
        "движок|веса|ток/с|×fp32|1-й ток|пик RSS|загр.|предел|% пред.|ровно|% пред.",
    ).split("|")
    widths = (-42, 8, 7, 6, 8, 9, 6, 6, 7, 7, 7)
    header = " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        if r.error:
            print(f"{r.label:<42} {format_bytes(r.weights_bytes):>8}  ! {r.error[:80]}", file=out)
            continue
        floor = bandwidth / r.weights_bytes if r.weights_bytes else None
        print(
            f"{r.label:<42} {format_bytes(r.weights_bytes):>8} "
            f"{_num(r.tokens_per_second, '.1f'):>7} {_num(r.speedup_vs_fp32, '.1f', '×'):>6} "
            f"{_num(r.first_token_s and r.first_token_s * 1000, '.0f', ' ms'):>8} "
            f"{format_bytes(r.peak_rss_bytes):>9} {_num(r.load_s, '.1f', ' s'):>6} "
            f"{_num(floor if r.percent_of_floor is not None else None, '.0f'):>6} "
            f"{_num(r.percent_of_floor, '.0f', '%'):>7} {_num(r.steady_tokens_per_second, '.1f'):>7} "
            f"{_num(r.steady_percent_of_floor, '.0f', '%'):>7}",
            file=out,
        )
    print(
        _t(
            "tok/s: decoding speed without the first token, median of the runs (with rounds: the median "
            "of the rounds' medians); ×fp32: against the transformers fp32 row; floor: tokens/s if every "
            "weight byte were read at the measured "
            "bandwidth; steady: 1 / the median time between two tokens (a run's tok/s also counts the "
            "stalls other programs cause); peak RSS: the whole process (the app-process row also holds "
            "torch and the embedded model). Sber demo and variant rows: all generated tokens over the "
            "whole generation (the returned beam's tokens for beam search).",
            "ток/с: скорость без первого токена, медиана запусков (с кругами — медиана медиан кругов); "
            "×fp32: относительно строки transformers fp32; предел: токенов/с, если бы каждый байт "
            "весов читался с измеренной "
            "скоростью; ровно: 1 / медиана времени между двумя токенами (ток/с запуска учитывает и "
            "простои из-за других программ); пик RSS: весь процесс (в строке с процессом приложения "
            "в нём ещё torch и встроенная модель). Строки с пресетом Сбера и вариантами: все "
            "сгенерированные токены за всё время генерации (для лучей — токены возвращённого луча).",
        ),
        file=out,
    )
    for line in ratios(rows):
        print("  " + line.get(), file=out)


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_summary(report: dict[str, Any], out: TextIO) -> None:
    """One line per type: quality on the embedded model beside speed on each ruGPT-3 shape."""
    from gptdesk.models.cost import format_bytes

    quality = {r["type"]: r for r in report.get("quality", {}).get("rows", [])}
    shapes = report.get("shapes", {})
    if not quality and not shapes:
        return
    speed: dict[str, dict[str, dict[str, Any]]] = {
        name: {row["key"]: row for row in shape["rows"]} for name, shape in shapes.items()
    }
    print(file=out)
    print(
        _t(
            "What each type costs: quality (embedded model, held-out prose) beside speed (ruGPT-3 shapes)",
            "Цена каждого типа: качество (встроенная модель, отложенная проза) рядом со скоростью (формы ruGPT-3)",
        ),
        file=out,
    )
    head = _t("type|bits/char|vs f32|file", "тип|бит/симв|к f32|файл").split("|")
    line = f"{head[0]:<8} {head[1]:>9} {head[2]:>7} {head[3]:>7}"
    for name in speed:
        line += " " + f"{name} " + _t("tok/s ×fp32 RSS", "ток/с ×fp32 RSS")
    print(line, file=out)
    print("-" * len(line), file=out)
    for qtype in QUALITY_TYPES:
        q = quality.get(qtype, {})
        rows = [s.get(SPEED_KEY[qtype]) for s in speed.values()]
        if not q and not any(rows):
            continue
        bpc = f"{q['bits_per_char']:.4f}" if "bits_per_char" in q else "-"
        delta = f"{q['vs_f32_percent']:+.1f}%" if "vs_f32_percent" in q else "-"
        size = format_bytes(q["file_bytes"]) if q.get("file_bytes") else "-"
        text = f"{qtype:<8} {bpc:>9} {delta:>7} {size:>7}"
        for name, row in zip(speed, rows, strict=True):
            if row and row.get("tokens_per_second"):
                x = f"{row['speedup_vs_fp32']:.1f}×" if row.get("speedup_vs_fp32") else "-"
                rss = format_bytes(row["peak_rss_bytes"])
                text += f" {name:>{len(name)}} {row['tokens_per_second']:>5.1f} {x:>5} {rss:>8}"
            else:
                text += f" {name:>{len(name)}} {'-':>5} {'-':>5} {'-':>8}"
        print(text, file=out)
    print(
        _t(
            "bits/char: lower is better; vs f32: the loss against full precision. f32's speed is the transformers "
            "fp32 row. The embedded model is 384 wide, so most of its matrices fall back from K-quant blocks "
            "(256) to 32-blocks; ruGPT-3's widths (768, 1536) split into 256-blocks.",
            "бит/симв: чем меньше, тем лучше; к f32: потеря против полной точности. Скорость f32 — строка "
            "transformers fp32. Ширина встроенной модели 384, поэтому большинство её матриц вместо блоков "
            "K-квантов (256) хранятся блоками по 32; ширины ruGPT-3 (768, 1536) делятся на блоки по 256.",
        ),
        file=out,
    )
    _print_targets(quality, out)
    large = speed.get("large", {}).get("q4_K_M")
    if large and large.get("speedup_vs_fp32"):
        ok = large["speedup_vs_fp32"] >= 8.0
        print(
            _t(
                f"target q4_K_M at least 8× fp32 on the large shape: {'met' if ok else 'MISSED'} "
                f"({large['speedup_vs_fp32']:.1f}×)",
                f"цель q4_K_M не меньше 8× fp32 на форме large: {'да' if ok else 'НЕТ'} "
                f"({large['speedup_vs_fp32']:.1f}×)",
            ),
            file=out,
        )


def _print_targets(quality: dict[str, dict[str, Any]], out: TextIO) -> None:
    def bpc(t: str) -> float | None:
        value = quality.get(t, {}).get("bits_per_char")
        return float(value) if value is not None else None

    f32, q8, q4k, q40 = bpc("f32"), bpc("q8_0"), bpc("q4_K_M"), bpc("q4_0")
    if f32 is None:
        return
    if q8 is not None:
        ok = q8 <= f32 * 1.01
        print(
            _t(
                f"target q8_0 within 1% of f32: {'met' if ok else 'MISSED'} ({100 * (q8 / f32 - 1):+.2f}%)",
                f"цель q8_0 в пределах 1% от f32: {'да' if ok else 'НЕТ'} ({100 * (q8 / f32 - 1):+.2f}%)",
            ),
            file=out,
        )
    if q4k is not None:
        ok = q4k <= f32 * 1.05 and (q40 is None or q4k < q40)
        vs = "" if q40 is None else _t(f", q4_0 {100 * (q40 / f32 - 1):+.2f}%", f", q4_0 {100 * (q40 / f32 - 1):+.2f}%")
        print(
            _t(
                f"target q4_K_M within 5% of f32 and better than q4_0: {'met' if ok else 'MISSED'} "
                f"({100 * (q4k / f32 - 1):+.2f}%{vs})",
                f"цель q4_K_M в пределах 5% от f32 и лучше q4_0: {'да' if ok else 'НЕТ'} "
                f"({100 * (q4k / f32 - 1):+.2f}%{vs})",
            ),
            file=out,
        )
