"""The loops every store-backed engine shares, written once over the sequence store (style point 18):
sampling N sequences, beam search (engine.beams.BeamSearch), scoring and next-token scores.

Each driver opens its sequences from the store's longest common prefix, so a Continue, an explorer
cell or a score of a text just generated decodes only what the cache does not hold yet, and
releases them when done (kept for the next request, within the store's limit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from gptdesk.engine.base import FinishReason, LeadingBeam, StreamEvent
from gptdesk.engine.beams import BeamSearch
from gptdesk.engine.core import (
    Clock,
    PreparedPrompt,
    SequenceOutput,
    alternatives,
    decode_text,
    finished,
    sequence_rng,
)
from gptdesk.engine.pipeline import LogitsPipeline, log_softmax
from gptdesk.engine.store import SequenceStore
from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

Piece = Callable[[int], str]


def is_cancelled(cancel: threading.Event | None) -> bool:
    """The one rule for "cancelled": the caller's event is set."""
    return cancel is not None and cancel.is_set()


def finish_outputs(outputs: list[SequenceOutput], reason: FinishReason) -> Iterator[StreamEvent]:
    """End the sequences still running with `reason`; their held-back tails (a partial stop string or
    UTF-8 character), if any, as last events."""
    for out in outputs:
        tail = out.finish(reason)
        if tail is not None:
            yield tail


def sample(
    store: SequenceStore,
    prep: PreparedPrompt,
    settings: GenerationSettings,
    seed: int,
    cancel: threading.Event | None,
    *,
    tokenizer: Any,
    piece: Piece,
    eos_id: int | None,
    top_n: int,
    clock: Clock,
) -> Iterator[StreamEvent]:
    """Greedy decoding or sampling of num_return_sequences variants, all stepped in one decode."""
    ids, max_new = prep.ids, prep.max_new
    n = settings.num_return_sequences
    first = store.open(ids, cells=n * max_new + 1, seqs=n)
    seqs = [first]
    try:
        logits = store.extend(first, ids[-1:])[0]
        seqs += [store.fork(first) for _ in range(n - 1)]
        rows: dict[int, np.ndarray[Any, np.dtype[np.float32]]] = dict.fromkeys(range(n), logits)
        pipelines: list[LogitsPipeline] = []
        outputs: list[SequenceOutput] = []
        for i in range(n):
            pipeline = LogitsPipeline(settings, eos_id, prep.min_new, seed, bad_words_ids=prep.bad_words_ids)
            pipeline.rng = sequence_rng(seed, i)
            pipeline.start(ids)
            pipelines.append(pipeline)
            outputs.append(SequenceOutput(tokenizer, settings.stop, eos_id, piece, i))
        live = list(range(n))
        step = 0
        while live and step < max_new:
            if is_cancelled(cancel):
                break
            if step > 0:
                stepped = store.step({seqs[i]: outputs[i].events[-1].token_id for i in live})
                for i in live:
                    rows[i] = stepped[seqs[i]]
            step += 1
            for i in live:
                pipeline = pipelines[i]
                scores = pipeline.process(rows[i])
                token = pipeline.choose(scores)
                logprobs = log_softmax(scores)
                pipeline.accept(token)
                event = outputs[i].push(token, float(logprobs[token]), alternatives(logprobs, top_n, piece))
                clock.step_done()
                yield event
            live = [i for i in live if not outputs[i].done]
        ending: FinishReason = "cancelled" if is_cancelled(cancel) and live else "length"
        yield from finish_outputs(outputs, ending)
        yield finished(outputs, len(ids), seed, clock.finish(outputs), prep.truncated)
    finally:
        for seq in seqs:
            store.release(seq)


def beam_search(
    store: SequenceStore,
    prep: PreparedPrompt,
    settings: GenerationSettings,
    seed: int,
    cancel: threading.Event | None,
    *,
    tokenizer: Any,
    piece: Piece,
    eos_id: int | None,
    top_n: int,
    clock: Clock,
) -> Iterator[StreamEvent]:
    """Beam search (and beam sampling) with transformers' semantics; each step decodes every beam at once."""
    search = BeamSearch(settings, prep, eos_id, seed, piece)
    ids = prep.ids
    first = store.open(ids, cells=search.num_beams * prep.max_new + 1, seqs=search.seq_ids)
    held = {0: first}  # the search's sequence ids -> the store's
    try:
        rows = store.extend(first, ids[-1:])
        leading: tuple[int, ...] | None = None
        while True:
            if is_cancelled(cancel):
                search.cancel()
                break
            moves = search.step(rows, top_n)
            clock.step_done()
            for src, dst in moves.shares:
                held[dst] = store.fork(held[src])
            for seq in moves.drops:
                store.release(held.pop(seq), keep=False)
            best = search.leading()
            if best is not None and best.token_ids != leading:
                leading = best.token_ids
                text = decode_text(tokenizer, best.token_ids, settings.stop, eos_id)
                yield LeadingBeam(text, best.token_ids, best.score, search.steps)
            if search.done:
                break
            stepped = store.step({held[beam.seq]: beam.token_ids[-1] for beam in search.running})
            rows = np.stack([stepped[held[beam.seq]] for beam in search.running])
        ending: FinishReason = "cancelled" if search.cancelled else "length"
        outputs: list[SequenceOutput] = []
        for index, hyp in enumerate(search.results()):
            out = SequenceOutput(tokenizer, settings.stop, eos_id, piece, index)
            for token, lp, alts in hyp.tokens():
                yield out.push(token, lp, alts)
                if out.done:
                    break
            yield from finish_outputs([out], ending)
            outputs.append(out)
        yield finished(outputs, len(ids), seed, clock.finish(outputs), prep.truncated)
    finally:
        for seq in held.values():
            store.release(seq)


def score(store: SequenceStore, ids: list[int], start: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
    """log p(ids[i] | ids[:i]) for i in start .. len(ids) - 1, the positions decoded a batch at a time."""
    n_positions = store.n_positions
    if not 1 <= start < len(ids) <= n_positions:
        raise InvalidInputError(
            Text(
                f"{len(ids)} token ids scored from position {start}: give 2 to {n_positions} ids "
                "and a start between 1 and their number - 1.",
                f"{len(ids)} токенов с позиции {start}: нужно от 2 до {n_positions} токенов и "
                "начало от 1 до их числа - 1.",
            )
        )
    result = np.empty(len(ids) - start, dtype=np.float64)
    seq = store.open(ids[:start], cells=len(ids) - start)
    try:
        for a in range(start - 1, len(ids) - 1, store.batch):
            b = min(a + store.batch, len(ids) - 1)
            rows = store.extend(seq, ids[a:b], want=range(a, b)).astype(np.float64)
            top = rows.max(axis=1, keepdims=True)
            norm = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
            targets = np.array(ids[a + 1 : b + 1])
            result[a + 1 - start : b + 1 - start] = rows[np.arange(b - a), targets] - norm
    finally:
        store.release(seq)
    return result


def token_logprobs(
    store: SequenceStore, prompt_ids: list[int], ids: list[int]
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The raw log-probability of each of `ids` after `prompt_ids` (temperature 1, nothing applied)."""
    if not prompt_ids or len(prompt_ids) + len(ids) > store.n_positions:
        raise InvalidInputError(
            Text(
                f"{len(prompt_ids)} + {len(ids)} token ids: give a prompt and at most "
                f"{store.n_positions} tokens in all.",
                f"{len(prompt_ids)} + {len(ids)} токенов: нужна затравка и не больше "
                f"{store.n_positions} токенов всего.",
            )
        )
    if not ids:
        return np.zeros(0, dtype=np.float32)
    return score(store, [*prompt_ids, *ids], len(prompt_ids)).astype(np.float32)


def next_logits(store: SequenceStore, ids: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The model's raw scores for the token after `ids`."""
    if not ids or len(ids) >= store.n_positions:
        raise InvalidInputError(
            Text(
                f"{len(ids)} token ids: give between 1 and {store.n_positions - 1}.",
                f"{len(ids)} токенов: нужно от 1 до {store.n_positions - 1}.",
            )
        )
    seq = store.open(ids, cells=1)
    try:
        row: np.ndarray[Any, np.dtype[np.float32]] = store.extend(seq, ids[-1:])[0]
    finally:
        store.release(seq)
    return row
