"""Benchmark: N simultaneous streaming requests against `gptdesk serve`, compared with the same run one by one.

    .venv/bin/python -m tests.server.bench_concurrency --streams 16 --max-tokens 32   # embedded model

Prints figures; asserts nothing about time. Every concurrent text is checked against its solo run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from gptdesk.engine import load_engine
from gptdesk.server.app import create_app
from gptdesk.server.config import ServerConfig
from gptdesk.server.runner import BackgroundServer
from tests.server import test_concurrency as scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model to serve (default: the embedded one)")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    scenario.STREAMS = args.streams
    original = scenario._request

    def request(i: int) -> dict[str, object]:
        return {**original(i), "max_tokens": args.max_tokens}

    scenario._request = request  # type: ignore[assignment]
    engine = load_engine(args.model, engine="transformers", device="cpu")
    config = ServerConfig(port=0, max_queue=max(32, args.streams))
    indices = list(range(args.streams))
    with BackgroundServer(create_app(engine, config), config) as server:
        started = time.perf_counter()
        alone = asyncio.run(scenario._run_all(server.url, engine.info.model_id, indices, together=False))
        solo_wall = time.perf_counter() - started
        started = time.perf_counter()
        together = asyncio.run(scenario._run_all(server.url, engine.info.model_id, indices, together=True))
        wall = time.perf_counter() - started
    mismatched = sum(a["text"] != b["text"] for a, b in zip(alone, together, strict=True))
    tokens = sum(r["tokens"] for r in together)
    firsts = [r["first"] for r in together if r["first"] is not None]
    totals = [r["total"] for r in together]
    print(f"model {engine.info.model_id} on {engine.info.device}, {args.streams} streams x {args.max_tokens} tokens")
    print(f"one by one:   {solo_wall:7.2f} s  ({sum(r['tokens'] for r in alone) / solo_wall:6.1f} tok/s)")
    print(f"all at once:  {wall:7.2f} s  ({tokens / wall:6.1f} tok/s), errors 0, differing from solo: {mismatched}")
    print(
        f"first token:  mean {statistics.mean(firsts):.2f} s, median {statistics.median(firsts):.2f} s, "
        f"max {max(firsts):.2f} s"
    )
    print(f"per request:  mean {statistics.mean(totals):.2f} s, max {max(totals):.2f} s")
    engine.close()


if __name__ == "__main__":
    main()
