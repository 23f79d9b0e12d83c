"""How responsive the window is: the worst event-loop stall while a model loads and generates,
and how fast Stop takes effect. Prints figures; nothing here is an assertion.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_responsiveness.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_responsiveness.py --cold-only --no-preload
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_responsiveness.py --smoke    # a quick run: few tokens

A 10 ms QTimer on the GUI thread stands for the user: the longest gap between its ticks, minus
the interval, is the longest the window could not repaint or react. The first run loads the
embedded model in a fresh process, so it includes the first import of torch and transformers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.ui.fake_engine
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GPTDESK_DATA_DIR", tempfile.mkdtemp(prefix="gptdesk-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PySide6.QtCore import QEventLoop, QObject, QTimer, SignalInstance  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


class Heartbeat(QObject):
    def __init__(self, interval_ms: int = 10) -> None:
        super().__init__()
        self.interval = interval_ms / 1000
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.gaps: list[float] = []

    def start(self) -> None:
        self.gaps = []
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        self._tick()
        return max(self.gaps, default=0.0)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(max(0.0, now - self.last - self.interval))
        self.last = now


def wait_for(signal: SignalInstance, timeout: float = 300.0) -> list[object]:
    loop = QEventLoop()
    got: list[object] = []

    def done(*args: object) -> None:
        got.extend(args)
        loop.quit()

    signal.connect(done)
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    loop.exec()
    signal.disconnect(done)
    if not got:
        raise TimeoutError(f"no signal within {timeout} s")
    return got


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-only", action="store_true", help="only the first load in a fresh process")
    parser.add_argument("--no-preload", action="store_true", help="skip the GIL-free preload of libtorch")
    parser.add_argument("--no-freeze", action="store_true", help="skip gc.freeze() after imports and loads")
    parser.add_argument("--stops", type=int, default=5, help="Stop trials per engine")
    parser.add_argument("--smoke", action="store_true", help="one Stop trial and few tokens, to check that it runs")
    args = parser.parse_args()
    # Tokens generated, the Stop trials' lengths and the token that Stop waits for, and the flood's length.
    scale = 0.05 if args.smoke else 1.0
    generated, flood_tokens = max(8, int(300 * scale)), max(50, int(3000 * scale))
    if args.smoke:
        args.stops = 1

    import gc

    import gptdesk.ui.workers as workers

    if args.no_preload:
        workers.preload_native_libraries = lambda: None
    if args.no_freeze:
        gc.freeze = lambda: None  # the gc module is shared: this switches it off everywhere

    app = QApplication(sys.argv[:1])
    from gptdesk.history.store import HistoryStore
    from gptdesk.ui.main_window import MainWindow

    window = MainWindow(store=HistoryStore())
    window.set_language("en")
    window.show()
    beat = Heartbeat()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"preload libtorch: {not args.no_preload}, gc.freeze: {not args.no_freeze}")
    print("target: every worst stall under 100 ms (the window repaints and reacts within a tenth of a second)")

    beat.start()
    started = time.perf_counter()
    window.load_model(None)
    wait_for(window.model_loaded)
    cold = beat.stop()
    print(
        f"first load of the embedded model (imports torch): {time.perf_counter() - started:.1f} s, "
        f"worst stall {ms(cold)}"
    )
    if args.cold_only:
        window.close()
        return 0

    beat.start()
    started = time.perf_counter()
    window.load_model(None)
    wait_for(window.model_loaded)
    warm = beat.stop()
    print(f"second load of the embedded model: {time.perf_counter() - started:.2f} s, worst stall {ms(warm)}")

    window.params.set_values({"do_sample": True, "seed": 1, "max_new_tokens": generated, "min_new_tokens": generated})
    window.prompt_edit.setPlainText("Жили-были старик со старухой у самого синего моря")
    beat.start()
    window.generate()
    (finished,) = wait_for(window.generation_finished)
    stall = beat.stop()
    tps = finished.timings.tokens_per_second  # type: ignore[attr-defined]
    print(f"generating {generated} tokens with the embedded model ({tps:.1f} tok/s): worst stall {ms(stall)}")

    from tests.ui.fake_engine import FakeEngine

    def stop_trials(label: str, max_new: int, after: int) -> None:
        latencies: list[float] = []
        extra: list[int] = []
        for _ in range(args.stops):
            window.params.set_values({"do_sample": False, "max_new_tokens": max_new, "min_new_tokens": max_new})
            window.generate()
            deadline = time.perf_counter() + 120
            # The window's running generation (the GenerationController's since the window was split).
            while (
                window.generation.current is None or window.generation.current.tokens < after
            ) and time.perf_counter() < deadline:
                app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
            gen = window.generation.current
            window.stop()
            wait_for(window.generation_finished)
            assert window.generation.stop_latency is not None and gen is not None
            latencies.append(window.generation.stop_latency)
            extra.append(gen.tokens_after_stop)
        print(
            f"Stop, {label}: Stop -> generation ended {ms(statistics.median(latencies))} median, "
            f"{ms(max(latencies))} worst over {len(latencies)} tries; tokens shown after Stop: max {max(extra)}"
        )

    stop_trials("embedded model", max(40, int(450 * scale)), max(4, int(20 * scale)))
    old = window.engine
    window.set_engine(FakeEngine(delay=0.05))
    if old is not None:
        old.close()
    stop_trials("scripted engine at 50 ms per token", max(60, int(1000 * scale)), max(4, int(10 * scale)))

    window.set_engine(FakeEngine(delay=0.0005))
    window.inspector_dock.raise_()
    window.params.set_values({"do_sample": False, "max_new_tokens": flood_tokens, "min_new_tokens": None})
    beat.start()
    window.generate()
    wait_for(window.generation_finished)
    flood = beat.stop()
    print(f"{flood_tokens} scripted tokens at ~2000 tok/s, token inspector visible: worst stall {ms(flood)}")
    window.close()
    return 0


if __name__ == "__main__":
    if "--compare" in sys.argv:
        # Cold loads with and without each measure, each in a fresh process.
        for flags in ([], ["--no-preload"], ["--no-freeze"], ["--no-preload", "--no-freeze"]):
            subprocess.run([sys.executable, __file__, "--cold-only", *flags], check=True)
        raise SystemExit(0)
    raise SystemExit(main())
