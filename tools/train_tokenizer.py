"""Train the embedded model's byte-level BPE tokenizer on the cleaned corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer

# The same special tokens, at the same ids, as ruGPT-3's tokenizer.
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus/train.txt"))
    parser.add_argument("--vocab-size", type=int, default=16384)
    parser.add_argument("--out", type=Path, default=Path("build/tokenizer16k"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train(
        files=[str(args.corpus)],
        vocab_size=args.vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tokenizer.save_model(str(args.out))
    print(f"wrote {args.out} with {tokenizer.get_vocab_size()} tokens")


if __name__ == "__main__":
    main()
