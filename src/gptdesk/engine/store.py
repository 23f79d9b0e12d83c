"""The sequence store: the only code that talks to a model's cache (style point 22).

A backend holds cells (one token at one position of one or more sequences) and supplies primitive
operations only: decode a batch of (token, position, sequence, want-logits), copy a sequence's
cells to another id, remove a sequence's cells from a position on, and grow its context. The store
records which tokens every sequence holds, so a new request starts from the kept sequence with the
longest common token prefix and decodes only the rest (llama.cpp's server slots; vLLM's prefix
caching). GPT-2's positions are learned and absolute: a prefix is reused at the same positions only.

Kept (idle) sequences are evicted least recently used first, so the cells they hold stay within
`limit` tokens; the context is re-created (and the cache lost) only when a request needs more cells
or sequence ids than it has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gptdesk.errors import EngineError
from gptdesk.i18n import Text

Logits = np.ndarray[Any, np.dtype[np.float32]]

#: The context grows in steps of this many cells (llama.cpp clears the whole buffer when it makes it).
CTX_STEP = 256
#: Sequence ids grow in steps of this many.
SEQ_STEP = 16


class Backend(Protocol):
    """What a model's cache must supply (llama.cpp: engine.llamacpp.backend; tests: a counting fake)."""

    @property
    def n_ctx(self) -> int:
        """Cells the context holds now, all sequences together (0 before the first `resize`)."""

    @property
    def n_seq(self) -> int:
        """Sequence ids the context takes now (ids 0 .. n_seq - 1)."""

    def resize(self, n_ctx: int, n_seq: int) -> None:
        """Make the context anew for `n_ctx` cells and `n_seq` sequence ids; every cell is lost."""

    def decode(self, batch: Sequence[tuple[int, int, int, bool]]) -> Logits:
        """Decode (token, position, sequence, want-logits) entries; one row of logits per wanted entry."""

    def copy(self, src: int, dst: int) -> None:
        """Sequence `dst` (empty) gains `src`'s cells (shared, not copied)."""

    def remove(self, seq: int, start: int) -> None:
        """Forget sequence `seq`'s cells at positions >= start."""


@dataclass
class _Seq:
    tokens: list[int] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)  # one cell id per position, shared with forks
    busy: bool = True  # in use by a request; idle ones are kept for reuse and may be evicted
    used: int = 0  # the store's clock when last used (LRU)


@dataclass
class StoreStats:
    """What the store has done since it was made (for tests and the bench)."""

    decode_calls: int = 0
    decoded_tokens: int = 0
    reused_tokens: int = 0
    evicted: int = 0
    resized: int = 0


class SequenceStore:
    """Sequences with ids, tokens and positions over one backend; see the module docstring.

    `n_positions`: the most positions one sequence may hold (the model's context).
    `limit`: the most cells idle sequences keep between requests (None: one full context).
    `reuse`: False turns prefix reuse off (every request decodes its whole text; for comparisons).
    """

    def __init__(
        self,
        backend: Backend,
        n_positions: int,
        *,
        limit: int | None = None,
        reuse: bool = True,
        batch: int = 256,
    ) -> None:
        self.backend = backend
        self.n_positions = n_positions
        self.limit = n_positions if limit is None else max(0, limit)
        self.reuse = reuse
        self.batch = batch
        self.stats = StoreStats()
        self._seqs: dict[int, _Seq] = {}
        self._refs: dict[int, int] = {}  # cell id -> sequences holding it
        self._cell_ids = itertools.count()
        self._clock = itertools.count(1)

    # -- what the store holds -------------------------------------------------------------------

    @property
    def used_cells(self) -> int:
        """Cells held by all sequences, shared cells counted once."""
        return len(self._refs)

    @property
    def idle_cells(self) -> int:
        """Cells that only idle (kept) sequences hold."""
        busy = {c for s in self._seqs.values() if s.busy for c in s.cells}
        return sum(1 for c in self._refs if c not in busy)

    def tokens(self, seq: int) -> list[int]:
        return list(self._seqs[seq].tokens)

    def sequences(self) -> dict[int, list[int]]:
        """Every sequence's tokens, by id."""
        return {i: list(s.tokens) for i, s in self._seqs.items()}

    # -- requests -------------------------------------------------------------------------------

    def reserve(self, cells: int, seqs: int = 1, *, protect: int | None = None) -> None:
        """Make room for a request that will add up to `cells` cells over `seqs` new sequences.

        Idle sequences are evicted least recently used first (`protect` last of all); the context
        grows (losing every kept sequence) only when the cells or ids still do not fit.
        """
        cells = max(0, cells)

        def enough() -> bool:
            return self.used_cells + cells <= self.backend.n_ctx and self._free_ids() >= seqs

        self._evict(enough)
        if enough():
            return
        if any(s.busy for i, s in self._seqs.items() if i != protect):
            raise EngineError(
                Text(
                    "The model's cache cannot grow while a generation uses it. Wait for it to end.",
                    "Кэш модели нельзя увеличить, пока его использует генерация. Дождитесь её конца.",
                )
            )
        held = self._seqs[protect].cells if protect is not None and protect in self._seqs else []
        need = len(held) + cells
        # Grow with room to spare (half as much again as needed, or double, up to a full context of kept
        # cells beside a full request), so that a session makes its context anew, losing the cache, a few
        # times at most rather than at the next Continue or branch.
        cap = self.n_positions + max(self.limit, self.n_positions)
        roomy = min(max(2 * self.backend.n_ctx, need + need // 2), cap)
        n_ctx = max(self.backend.n_ctx, roomy, need, 1)
        n_ctx = -(-n_ctx // CTX_STEP) * CTX_STEP
        n_seq = max(self.backend.n_seq, -(-(1 + seqs) // SEQ_STEP) * SEQ_STEP)
        self._forget_all()
        self.backend.resize(n_ctx, n_seq)
        self.stats.resized += 1

    def _fits_after_eviction(self, cells: int, seqs: int) -> bool:
        """Whether `cells` more cells and `seqs` new ids fit in the context once every idle sequence is gone."""
        busy = {c for s in self._seqs.values() if s.busy for c in s.cells}
        busy_ids = sum(1 for s in self._seqs.values() if s.busy)
        return len(busy) + cells <= self.backend.n_ctx and self.backend.n_seq - busy_ids >= seqs

    def open(self, tokens: Sequence[int], *, cells: int = 0, seqs: int = 1, want_from: int | None = None) -> int:
        """A busy sequence holding `tokens`, started from the kept sequence with the longest common prefix.

        `cells` / `seqs`: what the request adds afterwards (reserved now). The tokens after the
        reused prefix are decoded, except the last one (decode it with `extend` to get its logits);
        `want_from`: reuse no more than this many tokens (the caller needs logits from there on).
        """
        tokens = [int(t) for t in tokens]
        if not 1 <= len(tokens) <= self.n_positions:
            raise EngineError(
                Text(
                    f"{len(tokens)} tokens cannot be held: a sequence holds 1 to {self.n_positions}.",
                    f"{len(tokens)} токенов не помещаются: последовательность вмещает от 1 до {self.n_positions}.",
                )
            )
        upto = len(tokens) - 1 if want_from is None else min(len(tokens) - 1, want_from)
        base, common = self._best_prefix(tokens, upto)
        need = len(tokens) - common + cells
        if base is not None:
            self._seqs[base].busy = True  # not evicted while room is made
            if self._seqs[base].tokens[common:] and not self._fits_after_eviction(need, seqs + 1):
                # A fork would keep the kept text's tail beside the new one and grow the context, which
                # loses every kept cell (llama.cpp makes a context anew): the new text takes the kept
                # sequence over instead, and only the tail it leaves is forgotten (a branch, an edit).
                self.trim(base, common)
        # Room for the rest of the tokens, what follows, and a fork's new id.
        self.reserve(need, seqs + 1, protect=base)
        if base is not None and base not in self._seqs:  # the context grew: nothing is kept
            base, common = None, 0
        if base is not None and self._seqs[base].tokens == tokens[: len(self._seqs[base].tokens)]:
            seq = base  # the kept text is all prefix of this one (a Continue, a repeat): take it over
            self.trim(seq, common)
        else:
            seq = self._new_id()
            self._seqs[seq] = _Seq()
            if base is not None:
                self._seqs[base].busy = False
                self._copy(base, seq)
                self.trim(seq, common)
                self._seqs[base].used = next(self._clock)
        self.stats.reused_tokens += common
        self._seqs[seq].used = next(self._clock)
        rest = tokens[common : len(tokens) - 1]
        if rest:
            try:
                self.extend(seq, rest, want=())
            except BaseException:
                self.release(seq)
                raise
        return seq

    def extend(self, seq: int, tokens: Sequence[int], *, want: Sequence[int] | None = None) -> Logits:
        """Append `tokens` to a sequence; the logits after each position in `want` (absolute
        positions; None: after the last token only), in order."""
        s = self._seqs[seq]
        start = len(s.tokens)
        tokens = [int(t) for t in tokens]
        if start + len(tokens) > self.n_positions:
            raise EngineError(
                Text(
                    f"A sequence of {start + len(tokens)} tokens outgrows the model's {self.n_positions} positions.",
                    f"Последовательность из {start + len(tokens)} токенов не помещается в {self.n_positions} "
                    "позиций модели.",
                )
            )
        wanted = {start + len(tokens) - 1} if want is None else set(want)
        if len(tokens) and self.used_cells + len(tokens) > self.backend.n_ctx:
            self._evict(lambda: self.used_cells + len(tokens) <= self.backend.n_ctx)
        rows: list[Logits] = []
        for a in range(0, len(tokens), self.batch):
            chunk = tokens[a : a + self.batch]
            entries = [(t, start + a + j, seq, start + a + j in wanted) for j, t in enumerate(chunk)]
            try:
                out = self._decode(entries)
            except BaseException:
                self.backend.remove(seq, len(s.tokens))  # whatever the failed call left
                raise
            if len(out):
                rows.append(out)
            for t in chunk:
                self._append(s, t)
        s.used = next(self._clock)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(rows) if len(rows) > 1 else rows[0]

    def step(self, tokens: Mapping[int, int]) -> dict[int, Logits]:
        """One decode: each sequence gains its token; the logits after it, by sequence."""
        if not tokens:
            return {}
        if self.used_cells + len(tokens) > self.backend.n_ctx:
            self._evict(lambda: self.used_cells + len(tokens) <= self.backend.n_ctx)
        entries = []
        for seq, token in tokens.items():
            s = self._seqs[seq]
            if len(s.tokens) >= self.n_positions:
                raise EngineError(
                    Text(
                        f"Sequence {seq} is full: the model has {self.n_positions} positions.",
                        f"Последовательность {seq} заполнена: у модели {self.n_positions} позиций.",
                    )
                )
            entries.append((int(token), len(s.tokens), seq, True))
        try:
            rows = self._decode(entries)
        except BaseException:
            for seq in tokens:
                self.backend.remove(seq, len(self._seqs[seq].tokens))
            raise
        clock = next(self._clock)
        for seq, token in tokens.items():
            self._append(self._seqs[seq], int(token))
            self._seqs[seq].used = clock
        return {seq: rows[i] for i, seq in enumerate(tokens)}

    def fork(self, seq: int) -> int:
        """A new busy sequence sharing `seq`'s cells."""
        if self._free_ids() < 1:
            self._evict(lambda: self._free_ids() >= 1)
        new = self._new_id()
        self._seqs[new] = _Seq(used=next(self._clock))
        self._copy(seq, new)
        return new

    def trim(self, seq: int, n: int) -> None:
        """Forget positions >= n of a sequence."""
        s = self._seqs[seq]
        if n >= len(s.tokens):
            return
        self.backend.remove(seq, n)
        for cell in s.cells[n:]:
            self._unref(cell)
        del s.tokens[n:]
        del s.cells[n:]

    def drop(self, seq: int) -> None:
        """Forget a sequence; cells no other sequence holds become free."""
        s = self._seqs.pop(seq)
        self.backend.remove(seq, 0)
        for cell in s.cells:
            self._unref(cell)

    def release(self, seq: int, *, keep: bool = True) -> None:
        """The request is done with `seq`: keep it for reuse (within the limit) or drop it."""
        if seq not in self._seqs:
            return
        if not keep or not self.reuse or not self._seqs[seq].tokens:
            self.drop(seq)
        else:
            s = self._seqs[seq]
            s.busy = False
            s.used = next(self._clock)
        self._evict(lambda: self.idle_cells <= self.limit)

    def release_all(self) -> None:
        """Every busy sequence becomes idle or is dropped (after a failed or cancelled request)."""
        for seq in [i for i, s in self._seqs.items() if s.busy]:
            self.release(seq)

    def clear(self) -> None:
        """Forget every sequence."""
        for seq in list(self._seqs):
            self.drop(seq)

    # -- inside -----------------------------------------------------------------------------------

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> Logits:
        self.stats.decode_calls += 1
        self.stats.decoded_tokens += len(entries)
        return self.backend.decode(entries)

    def _append(self, s: _Seq, token: int) -> None:
        cell = next(self._cell_ids)
        s.tokens.append(token)
        s.cells.append(cell)
        self._refs[cell] = 1

    def _copy(self, src: int, dst: int) -> None:
        a, b = self._seqs[src], self._seqs[dst]
        self.backend.copy(src, dst)
        b.tokens = list(a.tokens)
        b.cells = list(a.cells)
        for cell in b.cells:
            self._refs[cell] += 1

    def _unref(self, cell: int) -> None:
        left = self._refs[cell] - 1
        if left:
            self._refs[cell] = left
        else:
            del self._refs[cell]

    def _best_prefix(self, tokens: list[int], upto: int) -> tuple[int | None, int]:
        if not self.reuse:
            return None, 0
        best, best_n, best_used = None, 0, -1
        for i, s in self._seqs.items():
            if s.busy:
                continue
            n = 0
            for a, b in zip(s.tokens, tokens[:upto], strict=False):
                if a != b:
                    break
                n += 1
            if n > best_n or (n == best_n and n > 0 and s.used > best_used):
                best, best_n, best_used = i, n, s.used
        return best, best_n

    def _free_ids(self) -> int:
        return self.backend.n_seq - len(self._seqs)

    def _new_id(self) -> int:
        for i in range(self.backend.n_seq):
            if i not in self._seqs:
                return i
        raise EngineError(
            Text(
                "The model's cache has no free sequence: use fewer beams or variants.",
                "В кэше модели нет свободной последовательности: уменьшите число лучей или вариантов.",
            )
        )

    def _evict(self, enough: Callable[[], bool]) -> None:
        """Drop idle sequences, least recently used first, until `enough()`."""
        while not enough():
            idle = [(s.used, i) for i, s in self._seqs.items() if not s.busy]
            if not idle:
                return
            self.drop(min(idle)[1])
            self.stats.evicted += 1

    def _forget_all(self) -> None:
        self._seqs.clear()
        self._refs.clear()
