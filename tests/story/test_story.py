"""Stories in the history database: the tree, its operations on a real engine, export and import."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gptdesk.engine.base import run_to_end
from gptdesk.errors import InvalidInputError
from gptdesk.history.migrations import migrate
from gptdesk.history.store import HistoryStore
from gptdesk.settings.generation import GenerationSettings
from gptdesk.story import (
    TOP_ALTERNATIVES,
    StoryStore,
    StoryToken,
    branch,
    edit,
    export,
    grow,
    import_story,
    new_story,
)

GREEDY = GenerationSettings.build(do_sample=False, max_new_tokens=6)
SAMPLED = GenerationSettings.build(do_sample=True, top_k=20, max_new_tokens=5, seed=5)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        yield store


@pytest.fixture
def stories(history: HistoryStore) -> StoryStore:
    return StoryStore(history)


def test_an_older_history_opens_with_its_generations_and_no_stories(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, upto="m003_groups")
    db.execute(
        "INSERT INTO generations (created_at, updated_at, status, prompt, output, settings, versions) "
        "VALUES ('2026-01-01', '2026-01-01', 'finished', 'Старая затравка', 'текст', '{}', '{}')"
    )
    db.close()
    with HistoryStore(path) as history:
        assert history.migrations()[-2:] == ["m004_stories", "m005_adapters"]
        assert [r.prompt for r in history.find()] == ["Старая затравка"]
        assert history.find()[0].adapter is None
        assert StoryStore(history).list() == []


def test_a_new_story_and_its_children_keep_tokens_probabilities_and_alternatives(
    stories: StoryStore, tiny_engine: Any
) -> None:
    made = new_story(stories, tiny_engine, "Жили-были старик со старухой", GREEDY)
    story = stories.load(made.story_id)
    root, first = story.root, story.nodes[made.node_ids[0]]
    assert root.kind == "root" and root.text == "Жили-были старик со старухой" and root.parent_id is None
    assert first.parent_id == root.id and first.status == "finished" and story.current.id == first.id
    # The first continuation is what the engine generates from the prompt, token for token.
    expected = run_to_end(tiny_engine.stream(root.text, GREEDY, top_alternatives=TOP_ALTERNATIVES))
    assert first.text == expected.text
    assert [t.id for t in first.tokens] == [e.token_id for e in expected.tokens[0] if e.token_id >= 0]
    assert all(t.logprob is not None and len(t.alternatives) == TOP_ALTERNATIVES for t in first.tokens)
    assert first.tokens[0].alternatives[0].logprob >= first.tokens[0].alternatives[-1].logprob
    assert first.settings is not None and first.settings["max_new_tokens"] == 6

    grown = grow(stories, tiny_engine, story.id, n=3, overrides=SAMPLED.model_dump())
    story = stories.load(story.id)
    children = story.children(first.id)
    assert [c.id for c in children] == grown.node_ids
    assert [c.sequence for c in children] == [0, 1, 2]
    assert len({c.seed for c in children}) == 1 and children[0].seed == 5
    assert all(c.text == "".join(t.text for t in c.tokens) and c.mean_logprob is not None for c in children)
    assert story.text(children[1].id) == root.text + first.text + children[1].text
    assert story.current.id == children[0].id


def test_a_node_is_stored_before_its_tokens_arrive_and_grows_in_the_database(
    stories: StoryStore, history: HistoryStore, tiny_engine: Any
) -> None:
    seen: list[tuple[str, int, int]] = []

    def on_tokens(node_id: int, tokens: Sequence[StoryToken]) -> None:
        # Read through another connection, as another process would after a crash.
        with HistoryStore(history.path) as other:
            node = StoryStore(other).load(1).nodes[node_id]
        seen.append((node.status, len(node.tokens), len(tokens)))

    new_story(stories, tiny_engine, "Москва", GREEDY.updated(max_new_tokens=8), on_tokens=on_tokens)
    assert seen and all(status == "running" for status, _, _ in seen)
    assert seen[0][1] <= 1  # the row existed from the start
    assert max(stored for _, stored, _ in seen) >= 1  # and filled while the tokens came


def test_branch_takes_an_offered_token_and_continues_from_it(stories: StoryStore, tiny_engine: Any) -> None:
    made = new_story(stories, tiny_engine, "Однажды весной", GREEDY)
    story = stories.load(made.story_id)
    node = story.nodes[made.node_ids[0]]
    other = next(a for a in node.tokens[2].alternatives if a.id != node.tokens[2].id)

    result = branch(stories, tiny_engine, story.id, node.id, 2, other.id)
    story = stories.load(story.id)
    new = story.nodes[result.node_ids[0]]
    assert new.kind == "branch" and new.parent_id == node.parent_id  # a sibling; the original stays
    assert story.nodes[node.id].text == node.text
    assert [t.id for t in new.tokens[:3]] == [node.tokens[0].id, node.tokens[1].id, other.id]
    assert new.tokens[2].logprob == other.logprob
    prefix = node.tokens[0].text + node.tokens[1].text + other.text
    assert new.text.startswith(prefix)
    # What follows the taken token is the engine's own continuation of that text.
    context = story.root.text + prefix
    assert new.text[len(prefix) :] == run_to_end(tiny_engine.stream(context, GREEDY)).text

    by_text = branch(stories, tiny_engine, story.id, node.id, 2, other.text)
    assert stories.load(story.id).nodes[by_text.node_ids[0]].tokens[2].id == other.id


def test_bad_input_is_named_with_its_fix_and_changes_nothing(stories: StoryStore, tiny_engine: Any) -> None:
    made = new_story(stories, tiny_engine, "Однажды весной", GREEDY)
    story = stories.load(made.story_id)
    node = story.nodes[made.node_ids[0]]
    before = json.dumps(stories.load(story.id).to_dict())
    with pytest.raises(InvalidInputError, match=r"has 6 tokens \(indexes 0 to 5\); --at 9"):
        branch(stories, tiny_engine, story.id, node.id, 9, "x")
    with pytest.raises(InvalidInputError, match=r"did not offer 'нетакого'.*Pass one of them"):
        branch(stories, tiny_engine, story.id, node.id, 0, "нетакого")
    with pytest.raises(InvalidInputError, match="is the root of story"):
        branch(stories, tiny_engine, story.id, story.root.id, 0, "x")
    with pytest.raises(InvalidInputError, match="There is no story 99"):
        grow(stories, tiny_engine, 99)
    assert json.dumps(stories.load(story.id).to_dict()) == before

    stories.delete_node(story.id, node.id)
    with pytest.raises(InvalidInputError, match=rf"has no node {node.id} \(it was deleted"):
        grow(stories, tiny_engine, story.id, node.id)
    assert stories.load(story.id).current.id == story.root.id  # the current node went with it


def test_edit_makes_a_sibling_with_the_changed_text(stories: StoryStore, tiny_engine: Any) -> None:
    made = new_story(stories, tiny_engine, "Однажды весной", GREEDY)
    story = stories.load(made.story_id)
    node = story.nodes[made.node_ids[0]]
    cut = len(node.tokens[0].text) + 1
    new_id = edit(stories, story.id, node.id, cut, "вдруг")
    story = stories.load(story.id)
    new = story.nodes[new_id]
    assert new.parent_id == node.parent_id and new.kind == "edit" and story.current.id == new_id
    assert new.text == node.text[:cut] + "вдруг"
    assert new.tokens[0] == node.tokens[0] and new.tokens[-1].id == -1  # the typed text has no model token
    assert story.nodes[node.id].text == node.text
    grown = grow(stories, tiny_engine, story.id, new_id)
    assert stories.load(story.id).nodes[grown.node_ids[0]].parent_id == new_id


def test_cancel_keeps_the_tokens_made_so_far(stories: StoryStore, tiny_engine: Any) -> None:
    cancel = threading.Event()

    def on_tokens(node_id: int, tokens: Sequence[StoryToken]) -> None:
        if len(tokens) >= 3:
            cancel.set()

    made = new_story(
        stories, tiny_engine, "Однажды", GREEDY.updated(max_new_tokens=30), cancel=cancel, on_tokens=on_tokens
    )
    node = stories.load(made.story_id).nodes[made.node_ids[0]]
    assert made.cancelled and node.status == "cancelled" and node.finish_reason == "cancelled"
    assert 3 <= len(node.tokens) < 30


def test_export_and_import_round_trip(stories: StoryStore, tiny_engine: Any) -> None:
    made = new_story(stories, tiny_engine, "Однажды весной", GREEDY)
    grow(stories, tiny_engine, made.story_id, n=2, overrides=SAMPLED.model_dump())
    story = stories.load(made.story_id)
    stories.set_marks(story.current.id, bookmark=True)
    story = stories.load(made.story_id)

    assert export(story, "txt") == story.text() + "\n"
    md = export(story, "md", made.node_ids[0])
    assert md.startswith("# Однажды весной\n\n**Однажды весной**" + story.nodes[made.node_ids[0]].text)
    copy_id = import_story(stories, export(story, "json"))
    copy = stories.load(copy_id)
    assert copy_id != story.id
    old, new = list(story.nodes.values()), list(copy.nodes.values())
    assert [n.text for n in new] == [n.text for n in old]
    assert [n.tokens for n in new] == [n.tokens for n in old]
    assert [n.bookmark for n in new] == [n.bookmark for n in old]
    index = {o.id: n.id for o, n in zip(old, new, strict=True)}
    assert [n.parent_id for n in new] == [index.get(o.parent_id) if o.parent_id else None for o in old]
    assert copy.current.id == index[story.current.id]
    assert copy.text() == story.text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda text: text[: len(text) // 2], "it is not valid JSON"),
        (lambda text: text.replace('"version": 1', '"version": 7'), "written by a newer GPT Desk .story format 7"),
        (lambda text: text.replace('"format": "gptdesk-story"', '"format": "x"'), "not a GPT Desk story"),
        (lambda text: text.replace('"parent": 1', '"parent": 42', 1), "parent 42 is not listed before it"),
        (lambda text: text.replace('"logprob": null', '"logprob": "high"', 1), "a token of node 1 is damaged"),
    ],
)
def test_a_damaged_or_newer_story_file_is_refused_and_nothing_is_stored(
    stories: StoryStore, tiny_engine: Any, change: Any, message: str
) -> None:
    made = new_story(stories, tiny_engine, "Однажды весной", GREEDY)
    text = export(stories.load(made.story_id), "json")
    before = stories.list()
    with pytest.raises(InvalidInputError, match=message):
        import_story(stories, change(text))
    assert stories.list() == before


def test_removing_a_story_removes_its_nodes(stories: StoryStore, history: HistoryStore, tiny_engine: Any) -> None:
    made = new_story(stories, tiny_engine, "Однажды весной", GREEDY)
    stories.delete(made.story_id)
    assert stories.list() == []
    assert history.connection().execute("SELECT count(*) FROM story_nodes").fetchone()[0] == 0
    with pytest.raises(InvalidInputError, match="gptdesk story ls"):
        stories.delete(made.story_id)
