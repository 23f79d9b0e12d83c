"""llama.cpp's decoding speed on one GGUF file, without GPT Desk around it (the figures in docs/fast-engine.md).

    python tools/decode_loop.py FILE.gguf [--threads N] [--read]

Decodes a 20-token prompt, then 100 tokens greedily, one llama_decode call each, and prints the
median tokens/s, the fastest step and the peak RSS. `--read` reads the file into memory instead
of mapping it. Run it beside a busy process (`python -c "while True: pass" &`) to see what other
programs cost; set OMP_WAIT_POLICY and friends in the environment to try OpenMP's settings.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import llama_cpp as lib
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--read", action="store_true", help="read the file instead of mapping it")
    parser.add_argument("--steps", type=int, default=100, help="tokens decoded after the prompt")
    args = parser.parse_args()
    quiet = lib.llama_log_callback(lambda level, text, data: None)  # kept: llama.cpp holds a pointer to it
    lib.llama_log_set(quiet, None)
    lib.llama_backend_init()
    params = lib.llama_model_default_params()
    if args.read:
        params.load_mode = lib.LLAMA_LOAD_MODE_NONE
    model = lib.llama_model_load_from_file(args.path.encode(), params)
    cparams = lib.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = 256
    cparams.n_threads = cparams.n_threads_batch = args.threads
    ctx = lib.llama_init_from_model(model, cparams)
    n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model))
    batch = lib.llama_batch_init(256, 0, 1)

    def decode(tokens: list[int], start: int) -> np.ndarray:
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        if lib.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")
        return np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, len(tokens) - 1), shape=(n_vocab,))

    token = int(decode(list(range(100, 120)), 0).argmax())
    steps = []
    for step in range(args.steps):
        began = time.perf_counter()
        token = int(decode([token], 20 + step).argmax())
        steps.append(time.perf_counter() - began)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"{args.path}: {args.threads} threads, {'read' if args.read else 'mapped'}: "
        f"{1 / statistics.median(steps):.1f} tok/s (fastest step {1 / min(steps):.1f}), peak RSS {rss_mb} MB"
    )


if __name__ == "__main__":
    main()
