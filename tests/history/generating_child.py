"""Run by test_kill.py as a separate process: generate with the embedded model into the history.

Prints one JSON line per token ({"t": monotonic seconds, "text": output so far}) so the parent
knows what had been generated, and when, before it kills this process.
"""

from __future__ import annotations

import json
import sys
import time

from gptdesk.engine.base import TokenEvent
from gptdesk.engine.hf import TransformersEngine
from gptdesk.history import HistoryStore, LiveRecorder
from gptdesk.settings.presets import get_preset


def main() -> None:
    prompt = sys.argv[1]
    engine = TransformersEngine.load(None, device="cpu", dtype="float32")
    settings = get_preset("balanced").settings(seed=11, max_new_tokens=480, min_new_tokens=480)
    store = HistoryStore()
    recorder = LiveRecorder.start(store, prompt, settings, seed=11, info=engine.info, engine=engine.name)
    print(json.dumps({"gen_id": recorder.gen_id}), flush=True)
    text = ""
    for event in engine.stream(prompt, settings):
        recorder.add(event)
        if isinstance(event, TokenEvent):
            text += event.text
            print(json.dumps({"t": time.monotonic(), "text": text}, ensure_ascii=False), flush=True)
            time.sleep(0.02)  # a steady pace, so the parent can kill us mid-way
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
