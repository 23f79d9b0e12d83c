"""Suggested settings: a small grid per goal, a documented rule over its measures, and the figures behind it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from gptdesk.engine.base import Engine
from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.lab.explorer import Axis, Cell, CellResult, plan_grid, run_grid
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import DEFAULT_PRESET, SAMPLING_FIELDS, get_preset


@dataclass(frozen=True)
class Goal:
    """What the user wants from the text, the grid searched for it and the rule that picks a cell.

    Rule: among the default preset and the cells whose fluency (the model's mean log-probability of its
    own text, nats per token) is at most `margin` below the default preset's on the same prompt and
    seeds, take the one with the least `prefer` measure when `lowest`, else the most; ties go to the
    more distinct word pairs, then to the more fluent. Anchoring to the default (not to the best cell)
    is what makes the advice no worse than the default: a first rule, "within a margin of the best
    cell", bought less repetition with fluency well below the default's (docs/lab.md).
    """

    id: str
    name: Text
    axes: tuple[Axis, ...]
    margin: float
    prefer: str  # a Measures field
    lowest: bool


GOALS: dict[str, Goal] = {
    goal.id: goal
    for goal in (
        Goal(
            "close",
            Text("Stay close to the prompt", "Держаться ближе к затравке"),
            (Axis("temperature", (0.5, 0.7, 0.9)), Axis("repetition_penalty", (1.1, 1.3))),
            margin=0.0,
            prefer="repeated_3grams",
            lowest=True,
        ),
        Goal(
            "story",
            Text("A story", "Рассказ"),
            (Axis("temperature", (0.7, 0.8, 0.9)), Axis("repetition_penalty", (1.1, 1.2, 1.3))),
            margin=0.05,
            prefer="repeated_3grams",
            lowest=True,
        ),
        Goal(
            "varied",
            Text("Varied, poem-like text", "Разнообразный текст, как стихи"),
            (Axis("temperature", (1.0, 1.2, 1.4)), Axis("top_p", (0.9, 0.98))),
            margin=0.3,
            prefer="distinct_2",
            lowest=False,
        ),
    )
}

#: Tokens generated per cell: enough words for 3-grams to repeat (at 60 tokens the default preset's
#: texts almost never repeated one, so the measure could not tell settings apart), short enough to stay quick.
ADVICE_TOKENS = 100


def rule_text(goal: Goal) -> Text:
    measure_en = (
        "the fewest repeated word 3-grams" if goal.prefer == "repeated_3grams" else "the most distinct word pairs"
    )
    measure_ru = (
        "меньше всего повторов трёх слов" if goal.prefer == "repeated_3grams" else "больше всего разных пар слов"
    )
    return Text(
        f"Among the default preset and the settings whose fluency is at most {goal.margin:.2f} nats per token "
        f"below the default's, the one with {measure_en} (ties: the more distinct word pairs, then the more "
        "fluent).",
        f"Среди набора по умолчанию и настроек, чья беглость не более чем на {goal.margin:.2f} ната на токен "
        f"ниже, чем у него, — та, где {measure_ru} (при равенстве — больше разных пар слов, затем более беглая).",
    )


@dataclass(frozen=True)
class Scored:
    """One setting of the grid with its measures averaged over the seeds tried."""

    settings: GenerationSettings
    label: str
    repeated_3grams: float
    distinct_2: float
    fluency: float  # mean log-probability, nats per token

    def get(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True)
class Advice:
    goal: Goal
    settings: GenerationSettings  # the chosen setting, seed cleared
    chosen: Scored
    default: Scored  # the default preset on the same prompt and seeds
    cells: list[Scored]
    reason: Text

    def to_dict(self) -> dict[str, Any]:
        def row(s: Scored) -> dict[str, Any]:
            return {
                "label": s.label,
                "repeated_3grams": s.repeated_3grams,
                "distinct_2": s.distinct_2,
                "mean_logprob": s.fluency,
            }

        return {
            "goal": self.goal.id,
            "rule": rule_text(self.goal).get(),
            "settings": self.settings.model_dump(),
            "chosen": row(self.chosen),
            "default": row(self.default),
            "cells": [row(c) for c in self.cells],
            "reason": self.reason.get(),
        }


def get_goal(goal_id: str) -> Goal:
    goal = GOALS.get(goal_id.strip().casefold())
    if goal is None:
        raise InvalidInputError(
            Text(
                f"goal = '{goal_id}' is unknown: use one of {', '.join(GOALS)}.",
                f"цель «{goal_id}» неизвестна: используйте одну из {', '.join(GOALS)}.",
            )
        )
    return goal


def choose(goal: Goal, cells: Sequence[Scored], default: Scored) -> Scored:
    """The goal's rule over scored cells and the default preset (see Goal)."""
    eligible = [default, *(c for c in cells if c.fluency >= default.fluency - goal.margin)]
    sign = 1.0 if goal.lowest else -1.0
    # Short texts often tie at no repeated 3-gram: then the more distinct word pairs, then the more fluent.
    return min(eligible, key=lambda c: (sign * c.get(goal.prefer), -c.distinct_2, -c.fluency))


def _score(results: Sequence[CellResult], label: str, settings: GenerationSettings) -> Scored:
    return Scored(
        settings=settings,
        label=label,
        repeated_3grams=fmean(r.measures.repeated_3grams for r in results),
        distinct_2=fmean(r.measures.distinct_2 for r in results),
        fluency=fmean(r.measures.mean_logprob or 0.0 for r in results),
    )


def score_settings(
    engine: Engine,
    prompt: str,
    settings: GenerationSettings,
    seeds: Sequence[int],
    label: str,
    cancel: threading.Event | None = None,
) -> Scored | None:
    """Generate `settings` once per seed and average the measures (None if stopped)."""
    cells = [_single(settings.updated(seed=seed)) for seed in seeds]
    results = run_grid(engine, prompt, cells, cancel)
    if len(results) < len(cells):
        return None
    return _score(results, label, settings)


def _single(settings: GenerationSettings) -> Cell:
    return Cell(0, (), settings)


def advise(
    engine: Engine,
    prompt: str,
    goal: Goal,
    *,
    seeds: Sequence[int] = (1, 2),
    max_new_tokens: int = ADVICE_TOKENS,
    base: GenerationSettings | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Advice | None:
    """Search the goal's grid on this prompt (each cell with every seed) and pick by the goal's rule.

    Returns None when stopped. The default preset is scored on the same seeds for the comparison.
    """
    start = (base or get_preset(DEFAULT_PRESET).settings()).updated(max_new_tokens=max_new_tokens, max_length=None)
    default = get_preset(DEFAULT_PRESET).settings(max_new_tokens=max_new_tokens)
    grid = plan_grid(start.updated(seed=seeds[0]), goal.axes)
    total = (len(grid) + 1) * len(seeds)
    done = 0
    scored: list[Scored] = []
    for cell in [*grid, None]:
        settings = default if cell is None else cell.settings
        label = DEFAULT_PRESET if cell is None else cell.label(goal.axes)
        results: list[CellResult] = []
        for seed in seeds:
            got = run_grid(engine, prompt, [_single(settings.updated(seed=seed))], cancel)
            if not got:
                return None
            results.extend(got)
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        scored.append(_score(results, label, settings))
    default_scored = scored.pop()
    chosen = choose(goal, scored, default_scored)
    reason = Text(
        f"{goal.name.en}: {chosen.label}. Of {len(scored)} settings tried and the default preset ({len(seeds)} "
        f"seeds, {max_new_tokens} tokens each), its text repeats {chosen.repeated_3grams:.1%} of its word 3-grams "
        f"and {chosen.distinct_2:.1%} of its word pairs are distinct, at fluency {chosen.fluency:.2f} nats per "
        f"token (allowed: {default_scored.fluency - goal.margin:.2f} or more). The default preset: "
        f"{default_scored.repeated_3grams:.1%} repeated, {default_scored.distinct_2:.1%} distinct, fluency "
        f"{default_scored.fluency:.2f}.",
        f"{goal.name.ru}: {chosen.label}. Из {len(scored)} испробованных настроек и набора по умолчанию "
        f"({len(seeds)} seed, по {max_new_tokens} токенов) в её тексте повторяются {chosen.repeated_3grams:.1%} "
        f"троек слов, разных пар слов — {chosen.distinct_2:.1%}, беглость {chosen.fluency:.2f} ната на токен "
        f"(допустимо {default_scored.fluency - goal.margin:.2f} и выше). Набор по умолчанию: повторов "
        f"{default_scored.repeated_3grams:.1%}, разных пар {default_scored.distinct_2:.1%}, беглость "
        f"{default_scored.fluency:.2f}.",
    )
    # The chosen sampling knobs on the user's own settings (their length, seed and stop strings stay).
    knobs = {k: getattr(chosen.settings, k) for k in SAMPLING_FIELDS}
    return Advice(
        goal=goal,
        settings=(base or get_preset(DEFAULT_PRESET).settings()).updated(**knobs),
        chosen=chosen,
        default=default_scored,
        cells=scored,
        reason=reason,
    )
