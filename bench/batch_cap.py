"""What one llama.cpp step costs for 1 token and for 4 sequences at once, at several context lengths: the most
that sampling 4 continuations in one batch can gain over 4 one after another on this CPU (issue 19's target
is 2x), with llama.cpp's attention kernel as it chooses and forced off (GPTDESK_FLASH_ATTENTION).
Prints figures; nothing here is an assertion.

    .venv/bin/python bench/batch_cap.py                          # ruGPT-3 Large's shape, q8_0, random weights
    .venv/bin/python bench/batch_cap.py --shape small --contexts 32,1000
    .venv/bin/python bench/batch_cap.py --model FOLDER --contexts 4,8 --steps 4 --rounds 1   # any model folder
    LLAMA_CPP_LIB_PATH=/path/to/an/avx2-only/build/bin .venv/bin/python bench/batch_cap.py   # another build

The steps go through the engine's sequence store (store.open, fork, step), as sampling does; each figure is
the median of --steps steps, the best of --rounds rounds that alternate the attention settings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gptdesk.engine.llamacpp.engine import LlamaCppEngine  # noqa: E402
from gptdesk.evaluate.bench import random_model  # noqa: E402

SETTINGS = {"auto": "llama.cpp's choice (flash attention on a CPU)", "off": "flash attention off"}


def cpu_features() -> str:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    flags = [part.split("=")[0].strip() for part in info.split("|") if part.strip().endswith("= 1")]
    return " ".join(f for f in flags if f.startswith(("AVX", "F16C", "FMA", "AMX")))


def step_times(engine: LlamaCppEngine, contexts: list[int], steps: int) -> dict[int, tuple[float, float]]:
    """{context: (seconds for a step of 1 token, for a step of 4 sequences)}."""
    store = engine.store
    result: dict[int, tuple[float, float]] = {}
    for length in contexts:
        prompt = [100 + i % 5000 for i in range(length)]
        first = store.open(prompt, cells=8 * steps + 8, seqs=4)
        seqs = [first]
        try:
            store.extend(first, prompt[-1:])
            seqs += [store.fork(first) for _ in range(3)]
            timed: list[float] = []
            for n in (1, 4):
                times = []
                for i in range(steps):
                    started = time.perf_counter()
                    store.step({seq: 200 + i for seq in seqs[:n]})
                    times.append(time.perf_counter() - started)
                timed.append(statistics.median(times[2:]))
            result[length] = (timed[0], timed[1])
        finally:
            for seq in seqs:
                store.release(seq, keep=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="large", help="a bench shape: small, medium, large (default)")
    parser.add_argument("--model", default=None, help="a model folder instead of a shape with random weights")
    parser.add_argument("--quant", default="q8_0")
    parser.add_argument("--contexts", default="32,256,1000,1600", help="context lengths, comma-separated")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    folder = Path(args.model) if args.model else random_model(args.shape, say=lambda text: print(text.en, flush=True))
    title = folder.name if args.model else f"{args.shape} shape"
    # {setting: {context: [(1 token, 4 sequences) per round]}}
    rounds: dict[str, dict[int, list[tuple[float, float]]]] = {setting: {} for setting in SETTINGS}
    threads = 0
    for _ in range(args.rounds):
        for setting in SETTINGS:
            os.environ["GPTDESK_FLASH_ATTENTION"] = setting
            with LlamaCppEngine.load(folder, quant=args.quant) as engine:
                threads = engine.threads
                for length, pair in step_times(engine, contexts, args.steps).items():
                    rounds[setting].setdefault(length, []).append(pair)
    print(f"{title}, {args.quant}, {threads} threads; this build of llama.cpp uses {cpu_features()}")
    for setting, label in SETTINGS.items():
        print(f"attention: {label}")
        for length in contexts:
            one = min(pair[0] for pair in rounds[setting][length])
            four = min(pair[1] for pair in rounds[setting][length])
            print(
                f"  context {length:5d}: step of 1 token {one * 1000:6.1f} ms, of 4 sequences {four * 1000:6.1f} ms: "
                f"4 in one batch at most {4 * one / four:.2f}x faster than 4 one after another"
            )


if __name__ == "__main__":
    main()
