"""Beam search and beam sampling with transformers' semantics (generate()'s _beam_search), in numpy.

The search owns the hypotheses and the per-beam logits pipelines; the engine owns the model. Each
step the engine hands over one row of logits per running beam (in `running` order) and then applies
the moves the step returns to its cache: a beam that splits shares its parent's cells under a new
sequence id, a beam that ends frees its own. Port of transformers 5.23's `_get_top_k_continuations`,
`_get_running_beams_for_next_iteration`, `_update_finished_beams`, `_check_early_stop_heuristic` and
`_beam_search_has_unfinished_sequences`, for one prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gptdesk.engine.base import Alternative
from gptdesk.engine.core import PreparedPrompt, alternatives
from gptdesk.engine.pipeline import LogitsPipeline, log_softmax, warp_beam_scores
from gptdesk.settings.generation import GenerationSettings

#: generate()'s "this candidate may not be chosen" offset.
_BLOCKED = np.float32(-1.0e9)


@dataclass(frozen=True)
class _Node:
    """One generated token of a hypothesis, linked to the token before it (hypotheses share their past)."""

    token: int
    logprob: float
    alts: tuple[Alternative, ...]
    parent: _Node | None


@dataclass
class Hypothesis:
    """A beam: its tokens, its score and, while it runs, its cache sequence and logits pipeline."""

    token_ids: tuple[int, ...]
    score: float  # running: the sum of (processed) log-probabilities; finished: divided by length ** penalty
    node: _Node | None = None
    seq: int = -1
    pipeline: LogitsPipeline | None = None
    report: Any = None  # this step's log-probabilities as a token reports them

    def tokens(self) -> list[tuple[int, float, tuple[Alternative, ...]]]:
        out: list[tuple[int, float, tuple[Alternative, ...]]] = []
        node = self.node
        while node is not None:
            out.append((node.token, node.logprob, node.alts))
            node = node.parent
        out.reverse()
        return out


@dataclass
class Moves:
    """What the engine's cache must do after a step: share (source, new sequence), then drop sequences."""

    shares: list[tuple[int, int]] = field(default_factory=list)
    drops: list[int] = field(default_factory=list)


class BeamSearch:
    """One beam search over one prompt; see the module docstring."""

    def __init__(
        self,
        settings: GenerationSettings,
        prep: PreparedPrompt,
        eos_id: int | None,
        seed: int,
        piece: Callable[[int], str] = lambda _: "",
    ) -> None:
        self.settings = settings
        self.num_beams = settings.num_beams
        # generate() keeps (1 + number of end-of-text tokens) * num_beams candidates, at least 2 * num_beams,
        # so that num_beams can go on even when the best ones all end.
        self.keep = max(2, 1 + (1 if eos_id is not None else 0)) * self.num_beams
        self.length_penalty = settings.length_penalty
        self.early_stopping = settings.early_stopping
        self.max_new = prep.max_new
        self.eos_id = eos_id
        self.piece = piece
        self.rng = np.random.default_rng(seed)
        pipeline = LogitsPipeline(settings, eos_id, prep.min_new, seed, bad_words_ids=prep.bad_words_ids)
        pipeline.start(prep.ids)
        # One running beam to start with: generate()'s other beams start at -1e9 and never win a step.
        self.running: list[Hypothesis] = [Hypothesis((), 0.0, seq=0, pipeline=pipeline)]
        self.finished: list[Hypothesis] = []  # best first, at most num_beams
        self.steps = 0
        self.done = False
        self.cancelled = False
        self._improvable = True  # generate()'s is_early_stop_heuristic_unsatisfied
        # Sequence ids: at most num_beams in use plus as many new ones during a step.
        self.seq_ids = 2 * self.num_beams + 1
        self._free = list(range(self.seq_ids - 1, 0, -1))

    # -- one step ---------------------------------------------------------------------------------

    def step(self, rows: np.ndarray[Any, np.dtype[np.float32]], top_n: int = 0) -> Moves:
        """Advance every running beam by one token, given their logits in `running` order."""
        s = self.settings
        blocks = []
        for beam, row in zip(self.running, rows, strict=True):
            assert beam.pipeline is not None
            # generate() applies the processors to log-probabilities in beam search, not to logits.
            processed = beam.pipeline.process(log_softmax(row.astype(np.float32, copy=False)))
            beam.report = log_softmax(processed)
            warped = warp_beam_scores(s, processed) if s.do_sample else processed
            blocks.append(warped + np.float32(beam.score))
        flat = np.concatenate(blocks).astype(np.float32, copy=False)
        vocab = rows.shape[1]
        chosen = self._top_candidates(flat)
        gen = self.steps + 1  # tokens generated once this step's token is added
        at_max = gen >= self.max_new
        cand_beam = [int(c) // vocab for c in chosen]
        cand_token = [int(c) % vocab for c in chosen]
        cand_score = flat[chosen]
        hits = np.array([at_max or t == self.eos_id for t in cand_token], dtype=bool)

        # Finished hypotheses: only the first num_beams candidates may finish (_update_finished_beams).
        beams_full = len(self.finished) >= self.num_beams and self.early_stopping is True
        if self._improvable and not beams_full:
            penalty = float(gen) ** self.length_penalty
            for pos in range(min(self.num_beams, len(chosen))):
                if hits[pos] and np.isfinite(cand_score[pos]) and cand_score[pos] > _BLOCKED / 2:
                    parent = self.running[cand_beam[pos]]
                    node = self._node(parent, cand_token[pos], top_n)
                    score = float(np.float32(cand_score[pos]) / np.float32(penalty))
                    self.finished.append(Hypothesis((*parent.token_ids, cand_token[pos]), score, node))
            self.finished.sort(key=lambda h: -h.score)
            del self.finished[self.num_beams :]

        # Running beams for the next step: the best num_beams candidates that did not just finish.
        run_scores = cand_score + hits.astype(np.float32) * _BLOCKED
        order = np.argsort(-run_scores, kind="stable")[: self.num_beams]
        moves = Moves()
        children: dict[int, int] = {}
        new_running: list[Hypothesis] = []
        for j in order:
            score = float(run_scores[j])
            if not np.isfinite(score) or score <= _BLOCKED / 2:
                continue  # a placeholder generate() carries at -1e9 and never chooses
            b = cand_beam[j]
            parent = self.running[b]
            assert parent.pipeline is not None
            if b not in children:
                seq = parent.seq  # the first child keeps its parent's cache sequence
            else:
                seq = self._free.pop()  # the others share the parent's cells under a new id
                moves.shares.append((parent.seq, seq))
            children[b] = children.get(b, 0) + 1
            pipeline = parent.pipeline.fork()  # every child: later children still need the parent's state
            token = cand_token[j]
            pipeline.accept(token)
            new_running.append(
                Hypothesis((*parent.token_ids, token), score, self._node(parent, token, top_n), seq, pipeline)
            )
        for b, beam in enumerate(self.running):
            if b not in children:
                moves.drops.append(beam.seq)
        self._free.extend(moves.drops)
        self.running = new_running
        self.steps = gen

        # Can the search still improve its finished hypotheses (_check_early_stop_heuristic)?
        if self.running:
            best_length = self.max_new if self.early_stopping == "never" and self.length_penalty > 0.0 else gen
            best_possible = self.running[0].score / (float(best_length) ** self.length_penalty)
            if len(self.finished) >= self.num_beams:
                self._improvable = self._improvable and best_possible > self.finished[-1].score
        exists_open = not (len(self.finished) >= self.num_beams and self.early_stopping is True)
        self.done = not (self._improvable and exists_open and not bool(hits.all()) and self.running)
        return moves

    def _top_candidates(self, flat: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """generate()'s top-k continuations: the best `keep` (greedy), or `keep` drawn without replacement."""
        k = min(self.keep, flat.shape[0])
        if not self.settings.do_sample:
            part = np.argpartition(-flat, k - 1)[:k]
            return part[np.lexsort((part, -flat[part]))]
        finite = np.isfinite(flat)
        probs = np.zeros(flat.shape[0], dtype=np.float64)
        values = flat[finite].astype(np.float64)
        probs[finite] = np.exp(values - values.max())
        positive = np.flatnonzero(probs > 0)
        # Drawing without replacement in order = sorting p / Exp(1) keys (the exponential-races trick).
        keys = probs[positive] / self.rng.exponential(size=positive.shape[0])
        drawn = positive[np.argsort(-keys, kind="stable")[:k]]
        if drawn.shape[0] < k:  # fewer tokens have a chance than candidates are kept: the rest never win
            rest = np.setdiff1d(np.arange(flat.shape[0]), drawn)
            rest = rest[np.argsort(-flat[rest], kind="stable")[: k - drawn.shape[0]]]
            drawn = np.concatenate([drawn, rest])
        return drawn.astype(np.int64)

    def _node(self, parent: Hypothesis, token: int, top_n: int) -> _Node:
        report = parent.report
        lp = float(report[token]) if report is not None else 0.0
        alts = alternatives(report, top_n, self.piece) if report is not None and top_n > 0 else ()
        return _Node(token, lp, alts, parent.node)

    # -- the outcome ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop now: the running beams join the finished ones at their current scores."""
        self.cancelled = True
        self.done = True
        if self.steps > 0:
            penalty = float(self.steps) ** self.length_penalty
            for beam in self.running:
                self.finished.append(Hypothesis(beam.token_ids, beam.score / penalty, beam.node))
            self.finished.sort(key=lambda h: -h.score)
            del self.finished[self.num_beams :]

    def leading(self) -> Hypothesis | None:
        """The best hypothesis so far: the best finished one, or the best running one scored as if it ended now."""
        best = self.finished[0] if self.finished else None
        if self.running and self.steps > 0:
            top = self.running[0]
            score = top.score / (float(self.steps) ** self.length_penalty)
            if best is None or score > best.score:
                return Hypothesis(top.token_ids, score, top.node)
        return best

    def results(self) -> list[Hypothesis]:
        """The num_return_sequences best hypotheses, best first."""
        n = self.settings.num_return_sequences
        out = list(self.finished[:n])
        while len(out) < n:  # only when stopped before the first step ended
            out.append(Hypothesis((), 0.0))
        return out
