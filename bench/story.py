"""The writing desk's figures: opening a story of 1,000 nodes, growing 4 siblings in one batch against 4 one
after another, and the time to a branch's first token. Prints figures; nothing here is an assertion.

    PYTHONPATH=src QT_QPA_PLATFORM=offscreen .venv/bin/python bench/story.py            # embedded model, auto engine
    PYTHONPATH=src QT_QPA_PLATFORM=offscreen .venv/bin/python bench/story.py --engine transformers
    PYTHONPATH=src QT_QPA_PLATFORM=offscreen .venv/bin/python bench/story.py --smoke    # a quick run
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/story.py --model ~/.cache/gptdesk/bench/models/large \
        --engine llamacpp --story-tokens 1000    # ruGPT-3 Large's shape, the siblings after a 1,000-token story

Targets (issue 19): a 1,000-node story opens in <= 1 s; 4 siblings in one batch >= 2x faster than 4 in a row;
the tree scrolls with no stall over 50 ms; a branch's first token <= 0.5 s
on a 1,000-token story (today every branch reads its whole context again).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gptdesk.engine import load_engine  # noqa: E402
from gptdesk.history.store import HistoryStore  # noqa: E402
from gptdesk.settings.generation import GenerationSettings  # noqa: E402
from gptdesk.story import StoryStore, StoryToken, branch, grow, new_story  # noqa: E402
from gptdesk.story.model import StoryAlternative  # noqa: E402

PROMPT = "Жили-были старик со старухой у самого синего моря. Старик ловил неводом рыбу, а старуха пряла свою пряжу."


def big_story(stories: StoryStore, nodes: int) -> int:
    """A story of `nodes` nodes (a bushy tree, 20 tokens each with 10 alternatives), written directly."""
    alts = tuple(StoryAlternative(i, f" слово{i}", -1.0 - i / 10) for i in range(10))
    tokens = [StoryToken(100 + i, f" слово{i}", -1.5, alts) for i in range(20)]
    story_id, root = stories.create(PROMPT, [StoryToken(1, PROMPT)], GenerationSettings().model_dump())
    ids = [root]
    for i in range(nodes - 1):
        parent = ids[i // 3]  # three children a node
        ids.append(stories.begin_node(story_id, parent, "grow", tokens=tokens, status="finished"))
    return story_id


def time_open(stories: StoryStore, story_id: int) -> tuple[float, float | None]:
    started = time.perf_counter()
    stories.load(story_id)
    load_s = time.perf_counter() - started
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return load_s, None
    from PySide6.QtWidgets import QApplication

    from gptdesk.ui.story import StoryPanel
    from gptdesk.ui.workers import WorkerThreads

    app = QApplication.instance() or QApplication([])
    panel = StoryPanel(WorkerThreads(), stories, lambda: None)
    panel.resize(1200, 800)
    panel.show()
    started = time.perf_counter()
    panel.open_story(story_id)
    app.processEvents()
    open_s = time.perf_counter() - started
    # Scrolling the tree a page at a time, top to bottom: the longest the event loop is busy with one step
    # (what the window cannot repaint or react during).
    bar = panel.tree.verticalScrollBar()
    worst = 0.0
    while bar.value() < bar.maximum():
        step = time.perf_counter()
        bar.setValue(bar.value() + bar.pageStep())
        panel.tree.viewport().repaint()
        app.processEvents()
        worst = max(worst, time.perf_counter() - step)
    print(f"scroll the tree of the story, page by page: longest step {worst * 1000:.1f} ms")
    return load_s, open_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per continuation")
    parser.add_argument(
        "--story-tokens",
        type=int,
        default=0,
        help="grow the siblings after a story of about this many tokens (default: the short prompt alone)",
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes, for a quick check that it runs")
    args = parser.parse_args()
    nodes = 50 if args.smoke else 1000
    new_tokens = 4 if args.smoke else args.tokens
    with tempfile.TemporaryDirectory() as folder, HistoryStore(Path(folder) / "history.sqlite3") as history:
        stories = StoryStore(history)
        load_s, panel_s = time_open(stories, big_story(stories, nodes))
        shown = f"{panel_s:.3f} s" if panel_s is not None else "(set QT_QPA_PLATFORM=offscreen to time the panel)"
        print(f"open a story of {nodes} nodes: load {load_s:.3f} s, panel {shown}")

        engine = load_engine(args.model, engine=args.engine)
        try:
            settings = GenerationSettings.build(do_sample=True, top_k=40, max_new_tokens=new_tokens, seed=1)
            opening = PROMPT
            while len(engine.tokenize(opening)) < args.story_tokens:
                opening += " " + PROMPT
            made = new_story(stories, engine, opening, settings)
            node = made.node_ids[0]
            context = len(engine.tokenize(stories.load(made.story_id).text(node)))
            grow(stories, engine, made.story_id, node, n=4)  # warm-up: the engine sizes its batch once
            grow(stories, engine, made.story_id, node, n=1)
            started = time.perf_counter()
            grow(stories, engine, made.story_id, node, n=4)
            batch_s = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(4):
                grow(stories, engine, made.story_id, node, n=1)
            serial_s = time.perf_counter() - started
            print(
                f"4 siblings of {new_tokens} tokens after {context} tokens on {engine.info.engine}: "
                f"one batch {batch_s:.2f} s, "
                f"one after another {serial_s:.2f} s, ratio {serial_s / batch_s:.2f}x"
            )

            first: list[float] = []
            started = 0.0

            def on_tokens(_node: int, tokens: Sequence[StoryToken]) -> None:
                if not first and len(tokens) > 2:  # the kept token, the taken one, then the first new one
                    first.append(time.perf_counter() - started)

            # A long story for the branch (the embedded model's context is 512 tokens; Large's is 2,048).
            long_prompt = PROMPT if args.smoke else " ".join([PROMPT] * 12)
            made = new_story(stories, engine, long_prompt, settings)
            node = made.node_ids[0]
            story = stories.load(made.story_id)
            target = story.nodes[node]
            alt = next(a for a in target.tokens[1].alternatives if a.id != target.tokens[1].id)
            started = time.perf_counter()
            branch(stories, engine, made.story_id, node, 1, alt.id, cancel=threading.Event(), on_tokens=on_tokens)
            context = len(engine.tokenize(story.text(node)))
            print(f"branch from token 1 of a {context}-token story: first new token after {first[0]:.3f} s")
        finally:
            engine.close()


if __name__ == "__main__":
    main()
