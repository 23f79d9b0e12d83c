"""What the engines share around their loops: prompt preparation, seeds, per-sequence output and timings."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gptdesk.engine.base import Alternative, Finished, FinishReason, Notice, Timings, TokenEvent
from gptdesk.engine.tokens import IncrementalDecoder
from gptdesk.errors import EmptyPromptError, SettingIssue, SettingsError
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

#: The version of the generation core, recorded with every generation in the history. Version 2
#: batches several sequences per step: seeded results with num_return_sequences > 1 differ from
#: version 1's (which sampled them one after another from one random stream); a single sequence
#: is unchanged. See docs/fast-engine.md, "Reproducibility".
CORE_VERSION = 2


@dataclass
class PreparedPrompt:
    """A prompt ready to generate from: its ids and the resolved lengths."""

    ids: list[int]
    min_new: int
    max_new: int
    notices: list[Notice]
    truncated: int  # tokens cut from the left to fit the context
    bad_words_ids: list[list[int]] = field(default_factory=list)  # settings.bad_words as token sequences


def bad_words_ids(tokenizer: Any, words: Sequence[str], eos_id: int | None) -> list[list[int]]:
    """Banned words as transformers' bad_words_ids: each word's tokens as written and after a space (how it
    appears inside a sentence), without repeats; end-of-text alone is never banned (generate() drops it)."""
    found: list[list[int]] = []
    for word in words:
        for form in (word, " " + word) if not word.startswith(" ") else (word,):
            ids = [int(i) for i in tokenizer(form, add_special_tokens=False)["input_ids"]]
            if ids and ids not in found and ids != [eos_id]:
                found.append(ids)
    return found


def cut_step(max_new: int, n_positions: int) -> int:
    """How many tokens at a time a text that outgrows the context loses from its left: half the room the
    context leaves beside the answer."""
    return max(1, (n_positions - max_new) // 2)


def context_cut(n_ids: int, max_new: int, n_positions: int) -> int:
    """Tokens to drop from the left of an `n_ids`-token prompt so that it and `max_new` new tokens fit.

    GPT-2's positions are learned and absolute, so a kept cache helps only a text whose tokens stay at
    the same positions. Cutting the least that fits would shift every position at each Continue of a
    long text, and each would read the whole context again; cutting in steps of half the room (counted
    from the text's start) keeps the cut where it was until the text has grown by a half, and a long
    session decodes its whole context only once a step.
    """
    over = n_ids + max_new - n_positions
    if over <= 0:
        return 0
    step = cut_step(max_new, n_positions)
    return -(-over // step) * step


def fitted_prompt(n_ids: int, max_new: int, n_positions: int) -> int:
    """How many of a prompt's `n_ids` tokens the model reads once it is cut to fit (0 when nothing fits)."""
    return max(0, n_ids - context_cut(n_ids, max_new, n_positions))


def prepare_prompt(tokenizer: Any, n_positions: int, prompt: str, settings: GenerationSettings) -> PreparedPrompt:
    """Prompt ids (cut from the left to fit the context), min and max new tokens, and notices to show."""
    if not prompt.strip():
        raise EmptyPromptError(
            Text(
                "The prompt is empty. Type the beginning of a text for the model to continue, e.g. «Москва — столица».",
                "Затравка пуста. Введите начало текста, которое модель продолжит, например «Москва — столица».",
            )
        )
    ids = [int(i) for i in tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    min_new, max_new = settings.resolve_lengths(len(ids))
    ctx = n_positions
    notices = [Notice("settings_warning", issue.text) for issue in settings.warnings()]
    if max_new >= ctx:
        raise SettingsError(
            [
                SettingIssue(
                    "max_new_tokens",
                    Text(
                        f"max_new_tokens = {max_new} leaves no room for the prompt: this model's "
                        f"context holds {ctx} tokens in all. Use at most {ctx - 1}, or fewer to keep "
                        "more of the prompt.",
                        f"max_new_tokens = {max_new} не оставляет места для затравки: контекст "
                        f"этой модели — {ctx} токенов всего. Укажите не больше {ctx - 1} или меньше, "
                        "чтобы сохранить больше затравки.",
                    ),
                )
            ]
        )
    cut = context_cut(len(ids), max_new, ctx)
    if cut:
        room = ctx - max_new
        step = cut_step(max_new, ctx)
        total = len(ids)
        ids = ids[cut:]
        notices.append(
            Notice(
                "prompt_truncated",
                Text(
                    f"The prompt has {total} tokens, but the model's context is {ctx} tokens and "
                    f"{max_new} are kept for the answer: the first {cut} tokens were dropped. The text is cut "
                    f"in steps of {step} tokens (half the {room} left for it), so that continuing it reads "
                    "only what is new.",
                    f"В затравке {total} токенов, а контекст модели — {ctx} токенов, из них "
                    f"{max_new} отведены под ответ: первые {cut} токенов отброшены. Текст обрезается "
                    f"шагами по {step} токенов (половина из {room} оставшихся для него), чтобы при продолжении "
                    "читалось только новое.",
                ),
            )
        )
    banned = bad_words_ids(tokenizer, settings.bad_words, getattr(tokenizer, "eos_token_id", None))
    return PreparedPrompt(ids, min_new, max_new, notices, cut, banned)


def choose_seed(settings: GenerationSettings) -> int:
    """The settings' seed, or a fresh one (recorded in Finished so the run can be repeated)."""
    return settings.seed if settings.seed is not None else random.randrange(2**31)


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of sequence `index`: sequence 0 is the single-sequence stream of this seed."""
    return np.random.default_rng(seed if index == 0 else [seed, index])


def alternatives(
    logprobs: np.ndarray[Any, np.dtype[np.float32]], top_n: int, piece: Callable[[int], str]
) -> tuple[Alternative, ...]:
    """The top_n most likely tokens, highest first; equal log-probabilities by token id, as torch.topk on a CPU."""
    if top_n <= 0:
        return ()
    top_n = min(top_n, logprobs.shape[0])
    best = np.argpartition(logprobs, -top_n)[-top_n:]
    best = best[np.lexsort((best, -logprobs[best]))]
    return tuple(Alternative(int(i), piece(int(i)), float(logprobs[i])) for i in best)


class StopMatcher:
    """Releases generated text, holding back a tail that may be the start of a stop string."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.matched: str | None = None

    def release(self, new_text: str, *, final: bool = False) -> str:
        if self.matched is not None:
            return ""
        self.pending += new_text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        hits = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if hits:
            at, stop = min(hits)
            self.matched = stop
            out, self.pending = self.pending[:at], ""
            return out
        if final:
            out, self.pending = self.pending, ""
            return out
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold :]
        return out


@dataclass
class SequenceOutput:
    """One returned sequence as it grows: decoding, stop strings, the held-back tail and its events.

    Every engine turns tokens into TokenEvents here, so the text a token adds, where a stop string
    cuts, and what is released at the end are the same on all of them.
    """

    tokenizer: Any
    stop: list[str]
    eos_id: int | None
    piece: Callable[[int], str]
    index: int = 0  # TokenEvent.sequence
    events: list[TokenEvent] = field(default_factory=list)
    reason: FinishReason | None = None  # set once the sequence has ended (eos or a stop string)
    generated: int = 0  # tokens generated, the end-of-text token included
    _decoder: IncrementalDecoder = field(init=False)
    _stops: StopMatcher = field(init=False)

    def __post_init__(self) -> None:
        self._decoder = IncrementalDecoder(self.tokenizer)
        self._stops = StopMatcher(self.stop)

    @property
    def done(self) -> bool:
        return self.reason is not None

    @property
    def matched_stop(self) -> str | None:
        """The stop string that ended this sequence, if one did."""
        return self._stops.matched

    def push(self, token: int, logprob: float | None, alts: tuple[Alternative, ...] = ()) -> TokenEvent:
        """Add a generated token; the event says what text it adds (a stop string may end the sequence)."""
        self.generated += 1
        if token == self.eos_id:
            self.reason = "eos"
            released = self._stops.release(self._decoder.flush(), final=True)
        else:
            released = self._stops.release(self._decoder.push(token))
        if self._stops.matched:
            self.reason = "stop"
        event = TokenEvent(released, token, self.piece(token), logprob, alts, self.index)
        self.events.append(event)
        return event

    def finish(self, reason: FinishReason) -> TokenEvent | None:
        """End a sequence still running (length or cancelled): the held-back tail, if any, as a last event."""
        if self.reason is not None:
            return None
        self.reason = reason
        tail = self._stops.release(self._decoder.flush(), final=True)
        if not tail:
            return None
        event = TokenEvent(tail, -1, "", None, (), self.index)
        self.events.append(event)
        return event

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events)


def decode_text(tokenizer: Any, ids: list[int] | tuple[int, ...], stop: list[str], eos_id: int | None) -> str:
    """The text of generated ids as SequenceOutput would release it (stop strings applied), for a leading beam."""
    out = SequenceOutput(tokenizer, stop, eos_id, lambda _: "")
    for token in ids:
        out.push(token, None)
        if out.done:
            break
    out.finish("length")
    return out.text


class Clock:
    """Timings of one generation, defined once for every engine (see Timings and docs/fast-engine.md)."""

    def __init__(self, started: float) -> None:
        self.gen_start = time.perf_counter()
        self.timings = Timings(load_prompt=self.gen_start - started)

    def step_done(self) -> None:
        """Call after each generation step; the first one's time is the prompt's prefill."""
        if self.timings.first_token is None:
            self.timings.first_token = time.perf_counter() - self.gen_start

    def finish(self, outputs: list[SequenceOutput]) -> Timings:
        self.timings.total = time.perf_counter() - self.gen_start
        self.timings.generated_tokens = sum(o.generated for o in outputs)
        self.timings.sequences = max(1, sum(1 for o in outputs if o.generated > 0))
        return self.timings


def finished(
    outputs: list[SequenceOutput], prompt_tokens: int, seed: int, timings: Timings, truncated: int = 0
) -> Finished:
    """The Finished event for these sequences."""
    return Finished(
        texts=[o.text for o in outputs],
        finish_reasons=[o.reason or "length" for o in outputs],
        prompt_tokens=prompt_tokens,
        generated_tokens=[o.generated for o in outputs],
        seed=seed,
        timings=timings,
        prompt_truncated_tokens=truncated,
        tokens=[o.events for o in outputs],
        stop_strings=[o.matched_stop for o in outputs],
    )
