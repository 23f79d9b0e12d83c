"""Run by test_kill.py as a separate process: grow a story with the embedded model, printing each token.

Prints {"node": id} once the node is stored, then one JSON line per token ({"t": monotonic seconds,
"tokens": count so far}) so the parent knows what had been generated, and when, before it kills this process.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

from gptdesk.engine.hf import TransformersEngine
from gptdesk.history import HistoryStore
from gptdesk.settings.presets import get_preset
from gptdesk.story import StoryStore, StoryToken, new_story


def main() -> None:
    engine = TransformersEngine.load(None, device="cpu", dtype="float32")
    settings = get_preset("balanced").settings(seed=11, max_new_tokens=400, min_new_tokens=400)
    announced = False

    def on_tokens(node_id: int, tokens: Sequence[StoryToken]) -> None:
        nonlocal announced
        if not announced:
            print(json.dumps({"node": node_id}), flush=True)
            announced = True
        print(json.dumps({"t": time.monotonic(), "tokens": len(tokens)}), flush=True)
        time.sleep(0.02)  # a steady pace, so the parent can kill us mid-way

    new_story(StoryStore(HistoryStore()), engine, sys.argv[1], settings, on_tokens=on_tokens)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
