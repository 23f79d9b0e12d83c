"""A process killed with SIGKILL while it grows a story loses only the tokens it had not yet written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gptdesk.history import HistoryStore
from gptdesk.story import StoryStore
from gptdesk.story.grow import WRITE_EVERY_S

CHILD = Path(__file__).with_name("growing_child.py")


def test_sigkill_mid_growth_keeps_the_story_and_the_tokens_written() -> None:
    prompt = "Жили-были старик со старухой"
    env = {**os.environ, "PYTHONPATH": str(CHILD.parents[2] / "src")}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), prompt], stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env
    )
    assert child.stdout is not None
    lines: list[dict[str, float]] = []
    try:
        node_id = int(json.loads(child.stdout.readline())["node"])
        while len(lines) < 60:
            line = child.stdout.readline()
            assert line, "the child ended before it was killed"
            lines.append(json.loads(line))
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with HistoryStore() as history:
        (story_id, _, nodes, _), *_ = StoryStore(history).list()
        story = StoryStore(history).load(story_id)
    node = story.nodes[node_id]
    assert nodes == 2 and story.root.text == prompt
    assert node.status == "interrupted" and node.seed == 11  # the writer's process is gone
    assert node.settings is not None and node.settings["max_new_tokens"] == 400
    assert node.text == "".join(t.text for t in node.tokens)
    # Every token older than a second before the kill is there (a node is written every WRITE_EVERY_S).
    second_before = [line for line in lines if line["t"] <= killed_at - 1.0]
    assert second_before, "the child did not run for a second before the kill"
    assert int(second_before[-1]["tokens"]) <= len(node.tokens) <= int(lines[-1]["tokens"]) + 1
    assert WRITE_EVERY_S < 1.0
