"""How long the next-token view takes to redraw its figures when a setting moves (no model call), and the
chart's redraw in the window. Prints figures; nothing here is an assertion.

    PYTHONPATH=src .venv/bin/python bench/lab_update.py                  # the embedded model (16,384 tokens)
    PYTHONPATH=src .venv/bin/python bench/lab_update.py --model ruGPT-3-small   # a 50,257-token vocabulary
    PYTHONPATH=src QT_QPA_PLATFORM=offscreen .venv/bin/python bench/lab_update.py --chart
    PYTHONPATH=src QT_QPA_PLATFORM=offscreen .venv/bin/python bench/lab_update.py --chart --smoke   # a quick run

Aim: under 50 ms per update (core) and per redraw (core + chart), so the view follows a slider.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gptdesk.engine import load_engine  # noqa: E402
from gptdesk.lab.nextview import NextTokenContext  # noqa: E402
from gptdesk.lab.source import logits_source  # noqa: E402
from gptdesk.settings.generation import GenerationSettings  # noqa: E402

PROMPT = "Москва — столица. Москва — столица России, и в ней живут люди, которые"


def _sweep() -> list[GenerationSettings]:
    # The steps a user makes with the four live knobs, penalties and bans on.
    out = []
    for t in (0.3, 0.6, 0.9, 1.2, 1.5):
        for p in (0.5, 0.8, 0.95, 1.0):
            for k in (0, 10, 50):
                for r in (1.0, 1.2):
                    out.append(
                        GenerationSettings(
                            temperature=t, top_p=p, top_k=k, repetition_penalty=r, no_repeat_ngram_size=2
                        )
                    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--chart", action="store_true", help="also time the pyqtgraph chart's redraw")
    parser.add_argument("--smoke", action="store_true", help="a few settings only, to check that it runs")
    args = parser.parse_args()
    engine = load_engine(args.model, engine=args.engine)
    source = logits_source(engine)
    started = time.perf_counter()
    ctx = NextTokenContext.for_prompt(source, PROMPT)
    load_ms = (time.perf_counter() - started) * 1000
    settings = _sweep()[:4] if args.smoke else _sweep()
    times = []
    for s in settings:
        t0 = time.perf_counter()
        view = ctx.view(s)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"model {engine.info.model_id} on {engine.info.engine}, vocabulary {ctx.logits.shape[0]:,} tokens")
    print(f"context load (the one model call): {load_ms:.1f} ms")
    print(
        f"view update, {len(times)} settings: median {statistics.median(times):.2f} ms, "
        f"p95 {sorted(times)[int(len(times) * 0.95)]:.2f} ms, max {max(times):.2f} ms"
    )
    if args.chart:
        from PySide6.QtWidgets import QApplication

        from gptdesk.ui.lab.charts import NextTokenChart

        app = QApplication.instance() or QApplication([])
        chart = NextTokenChart()
        chart.resize(1000, 420)
        chart.show()
        redraw = []
        for s in settings:
            t0 = time.perf_counter()
            view = ctx.view(s)
            chart.set_view(view)
            chart.plot.repaint()
            app.processEvents()
            redraw.append((time.perf_counter() - t0) * 1000)
        print(
            f"view + chart redraw: median {statistics.median(redraw):.2f} ms, "
            f"p95 {sorted(redraw)[int(len(redraw) * 0.95)]:.2f} ms, max {max(redraw):.2f} ms"
        )
        chart.close()
    del view
    engine.close()


if __name__ == "__main__":
    main()
