"""The sequence store and the drivers over a fake backend that checks positions and counts decodes."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from gptdesk.engine import drivers
from gptdesk.engine.base import Finished
from gptdesk.engine.core import Clock, PreparedPrompt
from gptdesk.engine.store import SequenceStore
from gptdesk.errors import EngineError
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

VOCAB = 32


class CountingBackend:
    """A 'model' whose logits depend on every token a sequence holds before the position; it
    refuses positions that are not the next one of their sequence, as llama.cpp does."""

    def __init__(self) -> None:
        self._n_ctx = 0
        self._n_seq = 0
        self.cells: dict[int, list[int]] = {}
        self.decode_calls = 0
        self.decoded: list[tuple[int, int, int, bool]] = []
        self.resizes = 0

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_seq(self) -> int:
        return self._n_seq

    def resize(self, n_ctx: int, n_seq: int) -> None:
        self._n_ctx, self._n_seq = n_ctx, n_seq
        self.cells = {}
        self.resizes += 1

    def used(self) -> int:
        # Cells shared between sequences count once: a cell is a (position, history) pair.
        return len({tuple(h[: i + 1]) for h in self.cells.values() for i in range(len(h))})

    def decode(self, batch: Sequence[tuple[int, int, int, bool]]) -> np.ndarray[Any, np.dtype[np.float32]]:
        self.decode_calls += 1
        rows = []
        for token, pos, seq, want in batch:
            assert 0 <= seq < self._n_seq
            history = self.cells.setdefault(seq, [])
            assert pos == len(history), f"sequence {seq}: position {pos} after {len(history)} cells"
            history.append(token)
            self.decoded.append((token, pos, seq, want))
            if want:
                rows.append(logits_after(history))
        assert self.used() <= self._n_ctx, "more cells than the context holds"
        return np.array(rows, dtype=np.float32).reshape(len(rows), VOCAB)

    def copy(self, src: int, dst: int) -> None:
        assert not self.cells.get(dst)
        self.cells[dst] = list(self.cells.get(src, []))

    def remove(self, seq: int, start: int) -> None:
        del self.cells.setdefault(seq, [])[start:]


def logits_after(history: Sequence[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
    seed = zlib.crc32(np.asarray(history, dtype=np.int64).tobytes())
    return np.random.default_rng(seed).normal(size=VOCAB).astype(np.float32) * 3


def make(reuse: bool = True, limit: int | None = None, n_positions: int = 64) -> tuple[SequenceStore, CountingBackend]:
    backend = CountingBackend()
    return SequenceStore(backend, n_positions, reuse=reuse, limit=limit, batch=8), backend


def generate(store: SequenceStore, ids: list[int], settings: GenerationSettings, seed: int = 7) -> list[list[int]]:
    prep = PreparedPrompt(list(ids), 0, settings.max_new_tokens or 8, [], 0)
    run = drivers.beam_search if settings.num_beams > 1 else drivers.sample
    events = list(
        run(store, prep, settings, seed, None, tokenizer=_Tok(), piece=str, eos_id=None, top_n=0, clock=Clock(0.0))
    )
    final = events[-1]
    assert isinstance(final, Finished)
    return [[e.token_id for e in seq if e.token_id >= 0] for seq in final.tokens]


class _Tok:
    """The fewest tokenizer methods SequenceOutput uses: every token is one letter."""

    all_special_ids: tuple[int, ...] = ()

    def decode(self, ids: Sequence[int], **_: Any) -> str:
        return "".join(chr(97 + (int(i) % 26)) for i in ids)

    def convert_ids_to_tokens(self, token_id: int) -> str:
        return chr(97 + (int(token_id) % 26))


PROMPT = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]


def test_next_logits_and_scores_match_the_model_from_any_cache_state() -> None:
    store, backend = make()
    assert np.array_equal(drivers.next_logits(store, PROMPT), logits_after(PROMPT))
    scores = drivers.score(store, PROMPT, 5)
    for i, value in enumerate(scores, start=5):
        row = logits_after(PROMPT[:i]).astype(np.float64)
        expected = row[PROMPT[i]] - (row.max() + np.log(np.exp(row - row.max()).sum()))
        assert value == pytest.approx(expected, abs=1e-9)
    # The same call again decodes one token: the rest is in the cache.
    before = backend.decode_calls, len(backend.decoded)
    assert np.array_equal(drivers.next_logits(store, PROMPT), logits_after(PROMPT))
    assert (backend.decode_calls - before[0], len(backend.decoded) - before[1]) == (1, 1)


def test_token_logprobs_continue_the_prompt_at_the_next_positions() -> None:
    """The bug behind `gptdesk explore` on llama.cpp: generated tokens must follow the prompt's positions."""
    store, backend = make()
    got = drivers.token_logprobs(store, PROMPT[:10], PROMPT[10:15])
    assert got.shape == (5,)
    assert all(pos == i for i, (_, pos, seq, _) in enumerate(backend.decoded) if seq == backend.decoded[0][2])
    assert np.allclose(got, drivers.score(make()[0], PROMPT[:15], 10), atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(max_new_tokens=8),
        GenerationSettings(max_new_tokens=8, do_sample=True, num_return_sequences=3, temperature=0.9, top_k=0),
        GenerationSettings(max_new_tokens=6, num_beams=3, num_return_sequences=2),
    ],
    ids=["greedy", "sampled", "beams"],
)
def test_outputs_are_the_same_with_and_without_the_prefix_cache(settings: GenerationSettings) -> None:
    cached, _ = make(reuse=True)
    plain, _ = make(reuse=False)
    for prompt in (PROMPT, PROMPT[:12], [*PROMPT, 7, 7], PROMPT):
        assert generate(cached, prompt, settings) == generate(plain, prompt, settings)


def test_a_continue_decodes_only_what_is_new() -> None:
    store, backend = make()
    first = generate(store, PROMPT, GenerationSettings(max_new_tokens=8))[0]
    decoded = len(backend.decoded)
    text = PROMPT + first
    generate(store, text, GenerationSettings(max_new_tokens=4))
    # The previous generation holds the prompt and 7 of its 8 tokens: the 8th gives the first
    # token's logits, then 3 steps.
    assert len(backend.decoded) - decoded == 1 + 3


def test_an_edit_in_the_middle_decodes_from_the_edit_point_only() -> None:
    store, backend = make()
    generate(store, PROMPT, GenerationSettings(max_new_tokens=4))
    edited = [*PROMPT[:12], 30, 31, *PROMPT[14:]]
    before = list(backend.decoded)
    generate(store, edited, GenerationSettings(max_new_tokens=4))
    new = backend.decoded[len(before) :]
    prompt_part = [entry for entry in new if entry[1] < len(edited)]
    assert [pos for _, pos, _, _ in prompt_part] == list(range(12, len(edited)))
    # The kept text is still there for a third request that goes back to it.
    decoded = len(backend.decoded)
    drivers.next_logits(store, PROMPT)
    assert len(backend.decoded) - decoded == 1


def test_a_grid_of_six_cells_decodes_the_prompt_once() -> None:
    store, backend = make()
    for cell in range(6):
        settings = GenerationSettings(max_new_tokens=5, do_sample=True, temperature=0.5 + cell / 10, top_k=0)
        generate(store, PROMPT, settings, seed=cell)
    prompt_entries = [entry for entry in backend.decoded if entry[1] < len(PROMPT) - 1]
    assert len(prompt_entries) == len(PROMPT) - 1
    assert store.stats.reused_tokens == 5 * (len(PROMPT) - 1)


def test_idle_sequences_are_evicted_least_recently_used_first_under_the_limit() -> None:
    store, backend = make(limit=40)
    a, b, c = [1] * 20, [2] * 20, [3] * 20
    for ids in (a, b):
        drivers.next_logits(store, ids)
    assert store.idle_cells == 40
    drivers.next_logits(store, a)  # a is now the most recent
    drivers.next_logits(store, c)  # b, the least recently used, goes
    assert sorted(t[0] for t in store.sequences().values()) == [1, 3]
    assert store.stats.evicted == 1
    assert store.idle_cells <= 40 and backend.used() == store.used_cells
    decoded = len(backend.decoded)
    drivers.next_logits(store, b)
    assert len(backend.decoded) - decoded == 20  # decoded anew


def test_the_context_grows_only_when_it_must() -> None:
    store, backend = make(n_positions=1024, limit=2048)
    drivers.next_logits(store, PROMPT)
    assert backend.resizes == 1
    for n in range(5):
        drivers.next_logits(store, [*PROMPT, n])
    assert backend.resizes == 1
    drivers.next_logits(store, [5] * 600)  # more than the context holds: it grows, the cache is lost
    assert backend.resizes == 2 and backend.n_ctx >= 600


def test_a_sequence_cannot_outgrow_the_positions() -> None:
    store, _ = make(n_positions=16)
    with pytest.raises(EngineError, match="16"):
        store.open(list(range(20)))
    seq = store.open(list(range(10)))
    with pytest.raises(EngineError, match="16"):
        store.extend(seq, list(range(8)))


def test_cells_are_freed_for_everyone_when_a_request_fails() -> None:
    store, backend = make()

    def broken(batch: Sequence[tuple[int, int, int, bool]]) -> Any:
        raise EngineError(Text("boom", "бум"))

    drivers.next_logits(store, PROMPT)
    backend.decode = broken  # type: ignore[method-assign]
    with pytest.raises(EngineError):
        drivers.next_logits(store, [*PROMPT, 1, 2])
    assert store.idle_cells == store.used_cells == backend.used()


def test_a_branch_that_would_outgrow_the_context_takes_the_kept_text_over_instead_of_losing_it() -> None:
    # Found by the bench's branch row: a 1,004-token story filled a 1,024-cell context; a branch at one of its
    # last tokens forked it, the fork needed more cells than were left, and the context was made anew: the
    # branch's first token took 88 s instead of a fraction of a second.
    store, backend = make(n_positions=2048)
    story = [(7 * i) % 50 for i in range(1000)]
    generate(store, story, GenerationSettings.build(do_sample=False, max_new_tokens=16, min_new_tokens=16))
    assert backend.resizes == 1 and 1016 < backend.n_ctx <= 1536  # room for the story and some to spare
    kept = store.sequences()
    (produced,) = [t[1000:] for t in kept.values()]
    branch = [*story, *produced[:8], (produced[8] + 1) % VOCAB]  # another token than the model's at 8
    decoded = len(backend.decoded)
    generate(store, branch, GenerationSettings.build(do_sample=False, max_new_tokens=16, min_new_tokens=16))
    assert backend.resizes == 1  # the context was not made anew
    assert len(backend.decoded) - decoded <= 1 + 16  # the branch's own token and its new ones
    assert backend.used() == store.used_cells


def test_the_context_grows_by_doubling_so_a_long_session_rarely_loses_it() -> None:
    store, backend = make(n_positions=2048)
    text = [(3 * i) % 50 for i in range(300)]
    for _ in range(6):  # a Continue after each answer, as a writer works
        text = text + generate(store, text, GenerationSettings.build(do_sample=False, max_new_tokens=200))[0]
    assert len(text) == 1500
    assert backend.resizes <= 3, backend.resizes  # not one per turn


def test_a_long_branch_from_early_on_replaces_the_kept_tail_rather_than_the_context() -> None:
    store, backend = make(n_positions=2048)
    story = [(7 * i) % 50 for i in range(1500)]
    drivers.next_logits(store, story)
    resizes, n_ctx = backend.resizes, backend.n_ctx
    assert 1500 < n_ctx < 3000
    # Another text after the first 100 tokens, as long as the rest: a fork beside the kept text would not fit.
    other = [*story[:100], *[(3 * i + 1) % 50 for i in range(1400)]]
    decoded = len(backend.decoded)
    drivers.next_logits(store, other)
    assert (backend.resizes, backend.n_ctx) == (resizes, n_ctx)  # the context, and its first 100 cells, stay
    assert len(backend.decoded) - decoded == 1400
    assert list(store.sequences().values()) == [other]
