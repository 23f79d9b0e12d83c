"""Benchmark: gptdesk.models.cost's memory estimate against the peak RSS of real generate() calls."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "memory_estimate.json"
PROMPT_TOKENS = 20

try:
    from gptdesk.models.cost import estimate, format_bytes
    from gptdesk.models.shape import ModelShape
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(ROOT / "src"))
    from gptdesk.models.cost import estimate, format_bytes
    from gptdesk.models.shape import ModelShape


SHAPES: dict[str, ModelShape] = {
    # The GPT-2 small / ruGPT-3 small size class (124M parameters).
    "gpt2-124M": ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257),
    # A small model like the embedded one (28M parameters).
    "small-28M": ModelShape(n_layer=6, n_embd=512, n_head=8, n_positions=512, vocab_size=16384),
    # A toy for --smoke: checks that the script runs, says nothing about the estimate.
    "toy": ModelShape(n_layer=2, n_embd=64, n_head=2, n_positions=64, vocab_size=1000),
    # Two wide layers and a long context: each layer's keys outgrow 32 MB, glibc's largest
    # mmap threshold, which changes how the growing cache is allocated (see docs/memory.md).
    "wide-2L": ModelShape(n_layer=2, n_embd=1024, n_head=16, n_positions=2048, vocab_size=8192),
}


@dataclass(frozen=True)
class Case:
    shape: str
    name: str
    max_new_tokens: int
    num_beams: int = 1
    num_return_sequences: int = 1
    do_sample: bool = False


CASES = [
    Case("gpt2-124M", "greedy", 100),
    Case("gpt2-124M", "beam10", 100, num_beams=10),
    Case("gpt2-124M", "sample-x4", 100, num_return_sequences=4, do_sample=True),
    Case("small-28M", "greedy", 100),
    Case("small-28M", "beam10", 100, num_beams=10),
    Case("small-28M", "sample-x4", 100, num_return_sequences=4, do_sample=True),
    Case("small-28M", "beam-sample4", 100, num_beams=4, do_sample=True),
    # The cache outweighs the weights here, so this row tests the cache terms, not the baseline.
    Case("small-28M", "beam10-long", 300, num_beams=10),
    Case("small-28M", "sample-x8-long", 400, num_return_sequences=8, do_sample=True),
    Case("wide-2L", "beam10-1000", 1000, num_beams=10),
]
SMOKE_CASES = [Case("toy", "greedy", 4), Case("toy", "beam2", 4, num_beams=2)]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh interpreter: import, build a random model, generate, measure."""
    import resource

    start = _rss()
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(2)
    baseline = _rss()

    shape = spec["shape"]
    config = GPT2Config(
        n_layer=shape["n_layer"],
        n_embd=shape["n_embd"],
        n_head=shape["n_head"],
        n_positions=shape["n_positions"],
        vocab_size=shape["vocab_size"],
        n_inner=shape["n_inner"],
        bos_token_id=shape["vocab_size"] - 1,
        eos_token_id=shape["vocab_size"] - 1,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    after_build = _rss()
    build_peak = _hwm()

    # Random initialisation briefly holds more than from_pretrained would; forget that peak so
    # ru_maxrss reports generation alone (clear_refs 5 resets the high-water mark, Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False

    case = spec["case"]
    prompt = torch.randint(0, shape["vocab_size"] - 1, (1, PROMPT_TOKENS))
    began = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=case["max_new_tokens"],
        min_new_tokens=case["max_new_tokens"],  # EOS is masked until then: exact lengths
        num_beams=case["num_beams"],
        num_return_sequences=case["num_return_sequences"],
        do_sample=case["do_sample"],
        pad_token_id=shape["vocab_size"] - 1,
    )
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux

    return {
        "interpreter_rss": start,
        "baseline_rss": baseline,
        "after_build_rss": after_build,
        "build_peak_rss": build_peak,
        "hwm_reset": reset,
        "generate_peak_rss": peak,
        "process_peak_rss": max(peak, build_peak),
        "seconds": seconds,
        "new_tokens": int(out.shape[1]) - PROMPT_TOKENS,
        "output_rows": int(out.shape[0]),
        "params": model.num_parameters(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def measure(case: Case) -> dict[str, Any]:
    spec = {"shape": asdict(SHAPES[case.shape]), "case": asdict(case)}
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error", OMP_NUM_THREADS="2")
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker for {case} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(case: Case, measured: dict[str, Any]) -> dict[str, Any]:
    """The estimate for a case next to what was measured (recomputed, so formulas can be tuned)."""
    cost = estimate(
        SHAPES[case.shape],
        prompt_tokens=PROMPT_TOKENS,
        max_new_tokens=case.max_new_tokens,
        num_beams=case.num_beams,
        num_return_sequences=case.num_return_sequences,
        do_sample=case.do_sample,
    )
    return {
        "estimated_total": cost.total_bytes,
        "estimated_weights": cost.weights_bytes,
        "estimated_kv_cache": cost.kv_cache_bytes,
        "estimated_activations": cost.activation_bytes,
        "estimated_overhead": cost.overhead_bytes,
        "estimated_seconds_per_token": cost.seconds_per_token,
        "rows": cost.batch,
        "ratio": cost.total_bytes / measured["generate_peak_rss"],
        "generation_ratio": cost.generation_bytes / max(1, measured["generate_peak_rss"] - measured["after_build_rss"]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    def mb(n: float) -> str:
        return f"{n / 1e6:,.0f}"

    header = (
        "| shape | settings | rows | estimated | measured peak | ratio "
        "| gen. est. | gen. meas. | baseline | s/token est. | s/token meas. |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        m = r["measured"]
        e = r["estimate"]
        lines.append(
            f"| {r['shape']} | {r['name']} | {e['rows']} | {mb(e['estimated_total'])} MB "
            f"| {mb(m['generate_peak_rss'])} MB | {e['ratio']:.2f} "
            f"| {mb(e['estimated_total'] - e['estimated_weights'] - e['estimated_overhead'])} MB "
            f"| {mb(m['generate_peak_rss'] - m['after_build_rss'])} MB "
            f"| {mb(m['baseline_rss'])} MB | {e['estimated_seconds_per_token']:.2f} "
            f"| {m['seconds'] / m['new_tokens']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-estimate the measurements saved in bench/results instead of measuring again",
    )
    parser.add_argument("--only", help="run only cases whose 'shape/name' contains this")
    parser.add_argument("--smoke", action="store_true", help="two toy cases, to check that it runs (needs --out)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    if args.smoke and args.out == RESULTS:
        parser.error("--smoke writes toy figures: pass --out somewhere other than bench/results")

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    saved: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() and not args.smoke else {}
    old = {(r["shape"], r["name"]): r["measured"] for r in saved.get("rows", [])}
    rows = []
    for case in SMOKE_CASES if args.smoke else CASES:
        key = f"{case.shape}/{case.name}"
        if args.report_only or (args.only and args.only not in key):
            if (case.shape, case.name) not in old:
                continue
            measured = old[(case.shape, case.name)]
        else:
            print(f"measuring {key} ...", file=sys.stderr, flush=True)
            measured = measure(case)
        rows.append(
            {
                "shape": case.shape,
                "name": case.name,
                "case": asdict(case),
                "measured": measured,
                "estimate": compare(case, measured),
            }
        )

    report = {
        "command": "PYTHONPATH=src .venv/bin/python bench/memory_estimate.py " + " ".join(sys.argv[1:]),
        "prompt_tokens": PROMPT_TOKENS,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "shapes": {name: asdict(shape) for name, shape in SHAPES.items()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(rows))
    worst = max((abs(r["estimate"]["ratio"] - 1) for r in rows), default=0.0)
    print(
        f"\nworst |estimated / measured - 1| = {worst:.1%}; sizes in decimal MB "
        f"(1 GB = 1000 MB, as format_bytes writes {format_bytes(1.5e9)!r}); "
        f"results in {args.out}"
    )


if __name__ == "__main__":
    main()
