"""A story on the default engine (llama.cpp) grows from the kept cache: switching between branches and
growing each decodes only what is new, never the shared text again (decode calls counted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.history.store import HistoryStore
from gptdesk.settings.generation import GenerationSettings
from gptdesk.story import StoryStore, branch, grow, new_story

PROMPT = "Жили-были дед да баба, и была у них курочка Ряба. Снесла курочка яичко, да не простое"
NEW = 4


@pytest.fixture
def fast(tiny_model_dir: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine.load(tiny_model_dir, quant="f16")
    yield engine
    engine.close()


@pytest.fixture
def stories(tmp_path: Path) -> Iterator[StoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3") as history:
        yield StoryStore(history)


def test_switching_branches_and_growing_each_decodes_only_what_is_new(
    stories: StoryStore, fast: LlamaCppEngine
) -> None:
    stats = fast.store.stats
    shared = len(fast.tokenize(PROMPT))
    assert shared > 3 * NEW + 2  # decoding the shared text again would break the bounds below
    greedy = GenerationSettings.build(do_sample=False, max_new_tokens=NEW, min_new_tokens=NEW)
    made = new_story(stories, fast, PROMPT, greedy)
    root = stories.load(made.story_id).root.id
    sampled = {"do_sample": True, "top_k": 20, "seed": 3, "max_new_tokens": NEW, "min_new_tokens": NEW}
    left = grow(stories, fast, made.story_id, root, overrides=sampled).node_ids[0]
    right = grow(stories, fast, made.story_id, root, overrides={**sampled, "seed": 4}).node_ids[0]
    decoded: list[int] = []
    for node in (left, right, left, right):  # back and forth between the two branches
        before = stats.decoded_tokens
        grown = grow(stories, fast, made.story_id, node, overrides=sampled)
        decoded.append(stats.decoded_tokens - before)
        story = stories.load(made.story_id)
        assert story.nodes[grown.node_ids[0]].parent_id == node
    # Each grow decodes its branch's own tokens (at most the node grown and its parent) and its new ones.
    assert max(decoded) <= 3 * NEW + 2, decoded
    # A branch from a token of the first continuation starts from the kept prompt too.
    first = stories.load(made.story_id).nodes[made.node_ids[0]]
    alternative = next(a for a in first.tokens[1].alternatives if a.id != first.tokens[1].id)
    before = stats.decoded_tokens
    branch(stories, fast, made.story_id, first.id, 1, alternative.id)
    assert stats.decoded_tokens - before <= 2 * NEW + 2
