"""Banned words (settings.bad_words) with transformers' bad_words_ids semantics, on both local engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.engine import run_to_end
from gptdesk.engine.core import bad_words_ids
from gptdesk.engine.hf import TransformersEngine
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.errors import SettingsError
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset

PROMPT = "Жили-были дед да баба"


@pytest.fixture(scope="module")
def fast(tiny_model_dir: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine.load(tiny_model_dir, quant="f32")
    yield engine
    engine.close()


def greedy(n: int = 16, **extra: object) -> GenerationSettings:
    return get_preset("greedy").settings(max_new_tokens=n, min_new_tokens=n, **extra)


def ids(engine: object, settings: GenerationSettings, prompt: str = PROMPT) -> list[int]:
    finished = run_to_end(engine.stream(prompt, settings))  # type: ignore[attr-defined]
    return [t.token_id for t in finished.tokens[0] if t.token_id >= 0]


def test_words_become_token_sequences_as_written_and_after_a_space(tiny_engine: TransformersEngine) -> None:
    tok = tiny_engine.tokenizer
    got = bad_words_ids(tok, ["дед", " баба"], tok.eos_token_id)
    expected = [tok("дед", add_special_tokens=False)["input_ids"], tok(" дед", add_special_tokens=False)["input_ids"]]
    assert got[:2] == expected and got[2:] == [tok(" баба", add_special_tokens=False)["input_ids"]]
    # End-of-text alone is never banned (generate() drops it too); after a space it is a phrase like any other.
    assert [tok.eos_token_id] not in bad_words_ids(tok, [tok.eos_token], tok.eos_token_id)


def test_a_banned_token_is_never_chosen_and_both_engines_agree(
    tiny_engine: TransformersEngine, fast: LlamaCppEngine
) -> None:
    plain = ids(tiny_engine, greedy())
    assert ids(fast, greedy()) == plain
    # Ban the text of the token greedy decoding writes most: it disappears, and the engines still agree.
    target = max(set(plain), key=plain.count)
    word = tiny_engine.tokenizer.decode([target])
    settings = greedy(bad_words=[word.strip() or word])
    banned = bad_words_ids(tiny_engine.tokenizer, settings.bad_words, None)
    assert [target] in banned
    ref = ids(tiny_engine, settings)
    assert target not in ref and ref != plain
    assert ids(fast, settings) == ref


def test_a_banned_phrase_cuts_only_its_last_token_after_the_rest(
    tiny_engine: TransformersEngine, fast: LlamaCppEngine
) -> None:
    tok = tiny_engine.tokenizer
    plain = ids(tiny_engine, greedy())
    # A two-token phrase the greedy text writes: its second token is refused right after the first only.
    phrase = plain[2:4]
    banned_seq = list(phrase)
    settings = greedy(bad_words=["x"])  # validated settings; the sequence is given to the engines below
    prompt_ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    for engine in (tiny_engine, fast):
        out = ids(engine, settings.updated(bad_words=[tok.decode(banned_seq)]))
        text = prompt_ids + out
        forbidden = bad_words_ids(tok, [tok.decode(banned_seq)], None)
        assert banned_seq in forbidden and out != plain
        for seq in forbidden:
            n = len(seq)
            assert all(text[i : i + n] != seq for i in range(len(prompt_ids) - n + 1, len(text) - n + 1)), engine
    assert ids(fast, settings.updated(bad_words=[tok.decode(banned_seq)])) == ids(
        tiny_engine, settings.updated(bad_words=[tok.decode(banned_seq)])
    )


def test_beam_search_and_variants_respect_the_ban(tiny_engine: TransformersEngine, fast: LlamaCppEngine) -> None:
    plain = ids(tiny_engine, greedy(8))
    word = tiny_engine.tokenizer.decode([plain[0]]).strip() or tiny_engine.tokenizer.decode([plain[0]])
    banned = bad_words_ids(tiny_engine.tokenizer, [word], None)
    singles = {seq[0] for seq in banned if len(seq) == 1}
    beams = greedy(8, num_beams=3, bad_words=[word])
    for engine in (tiny_engine, fast):
        assert not singles & set(ids(engine, beams))
    assert ids(fast, beams) == ids(tiny_engine, beams)
    variants = get_preset("creative").settings(max_new_tokens=8, num_return_sequences=3, seed=5, bad_words=[word])
    finished = run_to_end(fast.stream(PROMPT, variants))
    for seq in finished.tokens:
        assert not singles & {t.token_id for t in seq}


def test_bad_lists_name_the_entry_and_the_fix() -> None:
    with pytest.raises(SettingsError) as empty:
        GenerationSettings.build(bad_words=["ok", ""])
    assert "bad_words[1] = ''" in str(empty.value.issues[0].text.en) and "Remove it" in empty.value.issues[0].text.en
    with pytest.raises(SettingsError) as many:
        GenerationSettings.build(bad_words=[f"w{i}" for i in range(65)])
    assert "at most 64" in many.value.issues[0].text.en
    assert GenerationSettings.build(bad_words="однако").bad_words == ["однако"]


def test_finished_names_the_stop_string_that_matched_on_both_engines(
    tiny_engine: TransformersEngine, fast: LlamaCppEngine
) -> None:
    free = run_to_end(tiny_engine.stream(PROMPT, greedy(16)))
    text = free.text
    # Two stop strings whose first matches come in this order: the earlier one in the text wins.
    first, second = next(
        (text[i : i + 3], text[i + 1 : i + 5])
        for i in range(1, len(text) - 5)
        if text[i : i + 3].strip() and text.find(text[i : i + 3]) == i and text.find(text[i + 1 : i + 5]) > i
    )
    settings = greedy(16, stop=[second, first])
    for engine in (tiny_engine, fast):
        done = run_to_end(engine.stream(PROMPT, settings))  # type: ignore[attr-defined]
        assert done.finish_reasons == ["stop"] and done.stop_strings == [first], engine
    plain = run_to_end(fast.stream(PROMPT, greedy(4)))
    assert plain.finish_reasons == ["length"] and plain.stop_strings == [None]
