"""Story operations: new, grow (N children in one batch), branch from a token, edit; nodes saved as they grow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gptdesk.engine.base import Engine, Finished, Notice, TokenEvent
from gptdesk.engine.core import choose_seed
from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings
from gptdesk.story.model import Node, Story, StoryAlternative, StoryToken, tokens_text
from gptdesk.story.store import StoryStore

#: Alternatives kept per generated token (mikupad shows 10 on hover).
TOP_ALTERNATIVES = 10
#: A growing node is written at most this often (seconds), and when it ends: a kill -9 loses at most
#: the tokens of this last stretch.
WRITE_EVERY_S = 0.05

#: Called with (node id, the node's tokens so far) as tokens arrive.
TokenCallback = Callable[[int, Sequence[StoryToken]], None]


@dataclass
class Grown:
    """What one operation made: the new nodes (in sequence order), notices and the engine's result."""

    story_id: int
    node_ids: list[int]
    notices: list[Notice] = field(default_factory=list)
    finished: Finished | None = None

    @property
    def cancelled(self) -> bool:
        return self.finished is not None and self.finished.finish_reason == "cancelled"


def story_token(event: TokenEvent) -> StoryToken:
    alts = tuple(StoryAlternative(a.token_id, a.text, a.logprob) for a in event.alternatives)
    return StoryToken(event.token_id, event.text, event.logprob, alts)


def append_event(tokens: list[StoryToken], event: TokenEvent) -> None:
    """Add an event's token; a held-back tail released at the end (id -1) joins the token before it."""
    if event.token_id < 0 and tokens:
        last = tokens[-1]
        tokens[-1] = StoryToken(last.id, last.text + event.text, last.logprob, last.alternatives)
    elif event.token_id >= 0 or event.text:
        tokens.append(story_token(event))


def continue_text(
    engine: Engine,
    context: str,
    settings: GenerationSettings,
    cancel: threading.Event | None,
    on_event: Callable[[TokenEvent], None],
    *,
    context_ids: Sequence[int] | None = None,
) -> tuple[Finished, list[Notice]]:
    """The one place a story asks an engine for text: settings.num_return_sequences continuations of
    `context` in one batch.

    `context_ids` are the context's token ids where the story knows them; today's engines take the
    text, and a sequence store can start from the cache it kept for these ids without the callers
    changing.
    """
    del context_ids  # the Engine protocol takes text today (see the docstring)
    notices: list[Notice] = []
    finished: Finished | None = None
    for event in engine.stream(context, settings, cancel, top_alternatives=TOP_ALTERNATIVES):
        if isinstance(event, TokenEvent):
            on_event(event)
        elif isinstance(event, Notice):
            notices.append(event)
        elif isinstance(event, Finished):
            finished = event
    if finished is None:  # pragma: no cover - every engine ends with Finished
        raise RuntimeError("the engine's stream ended without a Finished event")
    return finished, notices


def new_story(
    store: StoryStore,
    engine: Engine,
    prompt: str,
    settings: GenerationSettings,
    *,
    n: int = 1,
    title: str = "",
    cancel: threading.Event | None = None,
    on_tokens: TokenCallback | None = None,
) -> Grown:
    """A story with its root node (the prompt) and `n` first continuations."""
    if not prompt.strip():
        raise InvalidInputError(
            Text(
                "The story's prompt is empty. Give the beginning of a text, e.g. «Однажды весной».",
                "Затравка рассказа пуста. Укажите начало текста, например «Однажды весной».",
            )
        )
    info = engine.info
    stored = settings.model_dump()
    stored["seed"] = None  # later grows draw fresh seeds; this one's is kept on its nodes
    stored["num_return_sequences"] = 1
    prompt_tokens = [StoryToken(p.id, p.text) for p in engine.tokenize(prompt)]
    story_id, root = store.create(
        prompt, prompt_tokens, stored, title=title, model_id=info.model_id, engine=info.engine
    )
    story = store.load(story_id)
    return _generate(store, engine, story, story.nodes[root], "grow", [], settings, n, cancel, on_tokens)


def grow(
    store: StoryStore,
    engine: Engine,
    story_id: int,
    node_id: int | None = None,
    *,
    n: int = 1,
    overrides: Mapping[str, Any] | None = None,
    cancel: threading.Event | None = None,
    on_tokens: TokenCallback | None = None,
) -> Grown:
    """`n` children of a node (default: the current one), generated in one batch."""
    story = store.load(story_id)
    node = story.current if node_id is None else story.node(node_id)
    settings = _settings(story, node, overrides)
    return _generate(store, engine, story, node, "grow", [], settings, n, cancel, on_tokens)


def branch(
    store: StoryStore,
    engine: Engine,
    story_id: int,
    node_id: int,
    at: int,
    token: str | int,
    *,
    overrides: Mapping[str, Any] | None = None,
    cancel: threading.Event | None = None,
    on_tokens: TokenCallback | None = None,
) -> Grown:
    """A sibling of a node that keeps its first `at` tokens, takes `token` (an alternative the model
    offered at token `at`, by text or id) and continues from it."""
    story = store.load(story_id)
    node, alternative = check_branch(story, node_id, at, token)
    chosen = node.tokens[at]
    taken = StoryToken(alternative.id, alternative.text, alternative.logprob, chosen.alternatives)
    prefix = [*node.tokens[:at], taken]
    settings = _settings(story, node, overrides)
    assert node.parent_id is not None  # check_branch refuses the root
    parent = story.nodes[node.parent_id]
    return _generate(store, engine, story, parent, "branch", prefix, settings, 1, cancel, on_tokens)


def check_branch(story: Story, node_id: int, at: int, token: str | int) -> tuple[Node, StoryAlternative]:
    """The node and the alternative a branch takes; InvalidInputError naming the fix when there is none."""
    node = story.node(node_id)
    if node.parent_id is None:
        raise InvalidInputError(
            Text(
                f"Node {node_id} is the root of story {story.id}: its prompt, which offers no alternatives. "
                "Branch from a generated node (see `gptdesk story show`).",
                f"Узел {node_id} — корень рассказа {story.id}, его затравка: у неё нет альтернатив. "
                "Ветвитесь от сгенерированного узла (см. `gptdesk story show`).",
            )
        )
    if not 0 <= at < len(node.tokens):
        raise InvalidInputError(
            Text(
                f"Node {node_id} has {len(node.tokens)} tokens (indexes 0 to {len(node.tokens) - 1}); --at {at} "
                f"is not one of them. Pick an index from `gptdesk story show {story.id} --json`.",
                f"В узле {node_id} {len(node.tokens)} токенов (номера от 0 до {len(node.tokens) - 1}); --at {at} "
                f"среди них нет. Выберите номер из `gptdesk story show {story.id} --json`.",
            )
        )
    chosen = node.tokens[at]
    alternative = _find_alternative(chosen, token)
    if alternative is None:
        offered = ", ".join(f"{a.text!r} (id {a.id})" for a in chosen.alternatives) or "none"
        raise InvalidInputError(
            Text(
                f"Token {at} of node {node_id} ({chosen.text!r}) did not offer {token!r}. Its alternatives: "
                f"{offered}. Pass one of them, by text or id, as --token.",
                f"Токен {at} узла {node_id} ({chosen.text!r}) не предлагал {token!r}. Его альтернативы: "
                f"{offered if chosen.alternatives else 'нет'}. Передайте одну из них (текст или id) в --token.",
            )
        )
    return node, alternative


def edit(store: StoryStore, story_id: int, node_id: int, at: int, text: str) -> int:
    """A sibling of a node whose text is the node's first `at` characters followed by `text` (the
    original stays). Tokens wholly before the edit point keep their probabilities; the rest is typed."""
    story = store.load(story_id)
    node = story.node(node_id)
    if node.parent_id is None:
        raise InvalidInputError(
            Text(
                f"Node {node_id} is story {story_id}'s prompt; a story keeps its prompt. Start a new story "
                "with the changed prompt (`gptdesk story new`).",
                f"Узел {node_id} — затравка рассказа {story_id}; затравка рассказа не меняется. Начните новый "
                "рассказ с изменённой затравкой (`gptdesk story new`).",
            )
        )
    if not 0 <= at <= len(node.text):
        raise InvalidInputError(
            Text(
                f"Node {node_id}'s text has {len(node.text)} characters; the edit point {at} is outside it. "
                f"Use 0 to {len(node.text)}.",
                f"В тексте узла {node_id} {len(node.text)} символов; точка правки {at} вне его. "
                f"Укажите от 0 до {len(node.text)}.",
            )
        )
    kept: list[StoryToken] = []
    used = 0
    for tok in node.tokens:
        if used + len(tok.text) > at:
            break
        kept.append(tok)
        used += len(tok.text)
    typed = node.text[used:at] + text
    tokens = [*kept, StoryToken(-1, typed)] if typed else kept
    new_id = store.begin_node(
        story_id, node.parent_id, "edit", tokens=tokens, model_id=node.model_id, engine=node.engine, status="finished"
    )
    store.set_current(story_id, new_id)
    return new_id


def _find_alternative(chosen: StoryToken, token: str | int) -> StoryAlternative | None:
    alts = chosen.alternatives
    if isinstance(token, int) or (isinstance(token, str) and token.strip().lstrip("-").isdigit()):
        wanted = int(token)
        by_id = next((a for a in alts if a.id == wanted), None)
        if by_id is not None or isinstance(token, int):
            return by_id
    text = str(token)
    return next((a for a in alts if a.text == text), None) or next(
        (a for a in alts if a.text.strip() == text.strip() and text.strip()), None
    )


def _settings(story: Story, node: Node, overrides: Mapping[str, Any] | None) -> GenerationSettings:
    base = dict(node.settings or story.settings)
    base["seed"] = None
    base["num_return_sequences"] = 1
    return GenerationSettings.build(**{**base, **(overrides or {})})


def _generate(
    store: StoryStore,
    engine: Engine,
    story: Story,
    parent: Node,
    kind: str,
    prefix: list[StoryToken],
    settings: GenerationSettings,
    n: int,
    cancel: threading.Event | None,
    on_tokens: TokenCallback | None,
) -> Grown:
    """Store `n` children of `parent` (each starting with `prefix`), then generate them in one batch."""
    seed = choose_seed(settings)
    run = settings.updated(num_return_sequences=n, seed=seed)
    recorded = settings.model_dump()  # as the user set them: seed None means "random"
    recorded["num_return_sequences"] = 1
    info = engine.info
    context = story.text(parent.id) + tokens_text(prefix)
    ids = [
        store.begin_node(
            story.id,
            parent.id,
            kind,
            tokens=prefix,
            settings=recorded,
            seed=seed,
            sequence=i,
            model_id=info.model_id,
            engine=info.engine,
        )
        for i in range(n)
    ]
    grown: list[list[StoryToken]] = [list(prefix) for _ in range(n)]
    last_write = [0.0] * n

    def on_event(event: TokenEvent) -> None:
        i = event.sequence
        append_event(grown[i], event)
        now = time.monotonic()
        if now - last_write[i] >= WRITE_EVERY_S:
            store.update_tokens(ids[i], grown[i])
            last_write[i] = now
        if on_tokens is not None:
            on_tokens(ids[i], grown[i])

    try:
        finished, notices = continue_text(engine, context, run, cancel, on_event, context_ids=_ids(story, parent))
    except BaseException:
        # What was generated stays, marked failed; the error goes on to the face that shows it.
        for i, node_id in enumerate(ids):
            store.finish_node(node_id, grown[i], status="failed", finish_reason=None, seed=seed)
        raise
    for i, node_id in enumerate(ids):
        tokens = list(prefix)
        events = finished.tokens[i] if i < len(finished.tokens) else []
        for event in events:
            append_event(tokens, event)
        reason = finished.finish_reasons[i] if i < len(finished.finish_reasons) else finished.finish_reason
        status = "cancelled" if reason == "cancelled" else "finished"
        store.finish_node(node_id, tokens, status=status, finish_reason=reason, seed=finished.seed)
    store.set_current(story.id, ids[0])
    return Grown(story.id, ids, notices, finished)


def _ids(story: Story, node: Node) -> list[int] | None:
    """The path's token ids where every token's id is known (typed text has none)."""
    ids = [t.id for n in story.path(node.id) for t in n.tokens]
    return ids if all(i >= 0 for i in ids) else None
