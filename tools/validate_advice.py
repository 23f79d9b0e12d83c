"""Validate the lab's advice: on prompts from prose the embedded model never saw, do the advised settings
repeat less than the default preset, at no worse fluency? Prints a Markdown table for docs/lab.md.

    PYTHONPATH=src .venv/bin/python tools/validate_advice.py                 # 24 prompts, goal "story"
    PYTHONPATH=src .venv/bin/python tools/validate_advice.py --goal close --prompts 3

For each prompt: the advice searches its goal's grid with seeds 1 and 2 (as `gptdesk advise` does); then
the advised settings and the default preset each generate with three *other* seeds (101-103), so the
comparison is not the search's own draws. Repetition is the share of repeated word 3-grams, fluency the
model's mean log-probability of its text under raw settings (nats per token), both averaged over the
three seeds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gptdesk.engine import load_engine  # noqa: E402
from gptdesk.lab.advice import ADVICE_TOKENS, GOALS, advise, score_settings  # noqa: E402
from gptdesk.settings.presets import DEFAULT_PRESET, get_preset  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ru_literature"
# The works held out of the embedded model's training (tools/prepare_corpus.py, HELDOUT).
HELDOUT = (
    "prose/Chekhov/Дама с собачкой.txt",
    "prose/Chekhov/Палата №6.txt",
    "prose/Tolstoy/Хаджи-Мурат.txt",
    "prose/Turgenev/Ася.txt",
    "prose/Gogol/Нос.txt",
    "prose/Dostoevsky/Вечный муж.txt",
    "prose/Gorky/Коновалов.txt",
    "prose/Pushkin/Пиковая дама.txt",
)
EVAL_SEEDS = (101, 102, 103)
PROMPT_WORDS = 12


def prompts(per_work: int, works: int = len(HELDOUT)) -> list[tuple[str, str]]:
    """(work, prompt): the first PROMPT_WORDS words of paragraphs spread evenly through each held-out work."""
    out: list[tuple[str, str]] = []
    for rel in HELDOUT[:works]:
        text = (DATA / rel).read_text(encoding="utf-8")
        paragraphs = [" ".join(p.split()) for p in text.split("\n")]
        # Narrative paragraphs: long, starting with a capital letter, not dialogue or headings.
        good = [p for p in paragraphs if len(p.split()) >= 30 and re.match(r"^[А-ЯЁ]", p) and "[" not in p]
        for i in range(per_work):
            paragraph = good[(i + 1) * len(good) // (per_work + 1)]
            out.append((Path(rel).stem, " ".join(paragraph.split()[:PROMPT_WORDS])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--goal", default="story", choices=list(GOALS))
    parser.add_argument("--prompts", type=int, default=3, help="prompts per held-out work (8 works)")
    parser.add_argument(
        "--works", type=int, default=len(HELDOUT), help="how many of the held-out works (a quick run: 1)"
    )
    parser.add_argument("--tokens", type=int, default=ADVICE_TOKENS)
    parser.add_argument("--engine", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads (default 1: on a shared 2-core machine two threads ran 20x slower, 10 tok/s)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "advice_validation.json")
    args = parser.parse_args()
    goal = GOALS[args.goal]
    options = {"threads": args.threads} if args.engine in ("auto", "llamacpp") else {}
    engine = load_engine(None, engine=args.engine, **options)
    default = get_preset(DEFAULT_PRESET).settings(max_new_tokens=args.tokens)
    rows = []
    started = time.perf_counter()
    for work, prompt in prompts(args.prompts, args.works):
        advice = advise(engine, prompt, goal, max_new_tokens=args.tokens)
        assert advice is not None
        advised = advice.settings.updated(max_new_tokens=args.tokens)
        a = score_settings(engine, prompt, advised, EVAL_SEEDS, "advised")
        d = score_settings(engine, prompt, default, EVAL_SEEDS, DEFAULT_PRESET)
        assert a is not None and d is not None
        rows.append(
            {
                "work": work,
                "prompt": prompt,
                "advised": advice.chosen.label,
                "default_repeated_3grams": d.repeated_3grams,
                "advised_repeated_3grams": a.repeated_3grams,
                "default_distinct_2": d.distinct_2,
                "advised_distinct_2": a.distinct_2,
                "default_fluency": d.fluency,
                "advised_fluency": a.fluency,
            }
        )
        print(
            f"{len(rows):>2} {work[:14]:<14} {advice.chosen.label:<44} rep {d.repeated_3grams:.3f} -> "
            f"{a.repeated_3grams:.3f}  fluency {d.fluency:.2f} -> {a.fluency:.2f}",
            file=sys.stderr,
        )
    elapsed = time.perf_counter() - started
    less_rep = sum(r["advised_repeated_3grams"] < r["default_repeated_3grams"] for r in rows)
    equal_rep = sum(r["advised_repeated_3grams"] == r["default_repeated_3grams"] for r in rows)
    not_worse_fluency = sum(r["advised_fluency"] >= r["default_fluency"] for r in rows)
    both = sum(
        r["advised_repeated_3grams"] <= r["default_repeated_3grams"] and r["advised_fluency"] >= r["default_fluency"]
        for r in rows
    )
    mean = statistics.fmean
    summary = {
        "goal": args.goal,
        "prompts": len(rows),
        "tokens": args.tokens,
        "engine": engine.info.engine,
        "seconds": elapsed,
        "less_repetition": less_rep,
        "equal_repetition": equal_rep,
        "fluency_not_worse": not_worse_fluency,
        "repetition_not_more_and_fluency_not_worse": both,
        "mean_default_repeated_3grams": mean(r["default_repeated_3grams"] for r in rows),
        "mean_advised_repeated_3grams": mean(r["advised_repeated_3grams"] for r in rows),
        "mean_default_distinct_2": mean(r["default_distinct_2"] for r in rows),
        "mean_advised_distinct_2": mean(r["advised_distinct_2"] for r in rows),
        "mean_default_fluency": mean(r["default_fluency"] for r in rows),
        "mean_advised_fluency": mean(r["advised_fluency"] for r in rows),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False, indent=1) + "\n")
    print("| # | work | prompt | advised | repeated 3-grams: default → advised | fluency: default → advised |")
    print("|---|---|---|---|---|---|")
    for n, r in enumerate(rows, 1):
        print(
            f"| {n} | {r['work']} | {r['prompt']} | {r['advised']} | "
            f"{r['default_repeated_3grams']:.1%} → {r['advised_repeated_3grams']:.1%} | "
            f"{r['default_fluency']:.2f} → {r['advised_fluency']:.2f} |"
        )
    print()
    print(
        f"{len(rows)} prompts, goal {args.goal}, {args.tokens} tokens, {engine.info.engine}, {elapsed:.0f} s. "
        f"Less repetition on {less_rep} (equal on {equal_rep}); fluency not worse on {not_worse_fluency}; "
        f"both on {both}. Means: repeated 3-grams {summary['mean_default_repeated_3grams']:.1%} → "
        f"{summary['mean_advised_repeated_3grams']:.1%}, distinct-2 {summary['mean_default_distinct_2']:.1%} → "
        f"{summary['mean_advised_distinct_2']:.1%}, fluency {summary['mean_default_fluency']:.2f} → "
        f"{summary['mean_advised_fluency']:.2f} nats/token."
    )
    engine.close()


if __name__ == "__main__":
    main()
