"""A generating process killed with SIGKILL loses at most the last second of its output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gptdesk.history import HistoryStore
from gptdesk.history.recorder import DEFAULT_INTERVAL

CHILD = Path(__file__).with_name("generating_child.py")


def test_sigkill_mid_generation_keeps_the_prompt_and_the_partial_output() -> None:
    prompt = "Жили-были старик со старухой"
    env = {**os.environ, "PYTHONPATH": str(CHILD.parents[2])}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), prompt], stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env
    )
    assert child.stdout is not None
    lines: list[dict[str, object]] = []
    try:
        gen_id = int(json.loads(child.stdout.readline())["gen_id"])
        while True:
            line = child.stdout.readline()
            assert line, "the child ended before it was killed"
            lines.append(json.loads(line))
            if len(lines) >= 60:
                break
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with HistoryStore() as store:
        record = store.get(gen_id)
    assert record.prompt == prompt
    assert record.status == "interrupted"  # the writer's process is gone
    assert record.seed == 11 and record.settings["max_new_tokens"] == 480
    last_text = str(lines[-1]["text"])
    # What was stored is the start of what had been generated...
    assert last_text.startswith(record.output)
    # ...and nothing older than a second before the kill is missing (the recorder writes every
    # DEFAULT_INTERVAL seconds, so the gap is at most that plus one write).
    second_before = [line for line in lines if float(str(line["t"])) <= killed_at - 1.0]
    assert second_before, "the child did not run for a second before the kill"
    assert len(record.output) >= len(str(second_before[-1]["text"]))
    assert DEFAULT_INTERVAL < 1.0
