"""Measure the embedded model: bits per character on held-out prose and the real-word rate of its samples.

Needs build/corpus (tools/prepare_corpus.py) and Debian's hunspell with hunspell-ru.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_embedded import bits_per_char

WORD = re.compile(r"[А-Яа-яЁё]+(?:-[А-Яа-яЁё]+)*")


def misspelled(words: list[str]) -> set[str]:
    """The words hunspell's Russian dictionary does not know."""
    result = subprocess.run(
        ["hunspell", "-d", "ru_RU", "-l"],
        input="\n".join(words),
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


def real_word_rate(texts: list[str]) -> tuple[float, int, list[str]]:
    words = [w for t in texts for w in WORD.findall(t)]
    bad = misspelled(sorted(set(words)))
    wrong = [w for w in words if w in bad]
    return 1 - len(wrong) / max(len(words), 1), len(words), sorted(set(wrong))[:40]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("src/gptdesk/models/embedded"))
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--out", type=Path, default=Path("tools/training_logs/evaluation.json"))
    parser.add_argument(
        "--no-spell-check", action="store_true", help="skip the real-word rate (where hunspell-ru is not installed)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = GPT2LMHeadModel.from_pretrained(args.model, dtype=torch.float32).eval()
    tokenizer = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    heldout = (args.corpus / "heldout.txt").read_text(encoding="utf-8").split("\f")
    device = torch.device("cpu")

    started = time.perf_counter()
    bpc = bits_per_char(model, tokenizer, heldout, device, model.config.n_positions)
    bpc_seconds = time.perf_counter() - started
    print(f"held-out bits per character: {bpc:.4f} ({sum(map(len, heldout)):,} characters, {bpc_seconds:.0f} s)")

    # Prompts: the first words of held-out paragraphs, so the samples start from unseen text.
    paragraphs = [p for doc in heldout for p in doc.split("\n") if len(p.split()) >= 8]
    step = max(1, len(paragraphs) // args.samples)
    prompts = [" ".join(p.split()[:5]) for p in paragraphs[::step][: args.samples]]
    samples: list[str] = []
    torch.manual_seed(0)
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt).ids])
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=args.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=args.tokens,
                pad_token_id=0,
            )
        samples.append(tokenizer.decode(out[0, ids.shape[1] :].tolist()))
    rate: float | None = None
    ref_rate: float | None = None
    count, wrong = 0, []
    if not args.no_spell_check:
        rate, count, wrong = real_word_rate(samples)
        ref_rate, ref_count, _ = real_word_rate(["\n".join(heldout)[:200_000]])
        print(f"real words in samples (T={args.temperature}, no top-k/top-p): {rate:.1%} of {count:,} words")
        print(
            f"the same check on real held-out prose: {ref_rate:.1%} of {ref_count:,} words (the dictionary's ceiling)"
        )
        print("unknown words, first 40:", " ".join(wrong))
    report = {
        "heldout_bits_per_char": bpc,
        "heldout_characters": sum(map(len, heldout)),
        "real_word_rate": rate,
        "sample_words": count,
        "reference_real_word_rate": ref_rate,
        "samples": args.samples,
        "tokens_per_sample": args.tokens,
        "temperature": args.temperature,
        "unknown_words": wrong,
        "example_samples": [p + s for p, s in zip(prompts[:3], samples[:3], strict=True)],
    }
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
