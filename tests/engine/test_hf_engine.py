"""The transformers reference engine on tiny random GPT-2 models built in the test."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gptdesk.engine import Finished, Notice, TokenEvent, run_to_end
from gptdesk.engine.hf import TransformersEngine
from gptdesk.errors import (
    EmptyPromptError,
    ModelCorruptError,
    ModelNotFoundError,
    SettingsError,
    UnsupportedModelError,
)
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.presets import get_preset

GREEDY = get_preset("greedy").settings(max_new_tokens=20)


def _events(engine: TransformersEngine, prompt: str, settings: GenerationSettings, **kw: object) -> list[object]:
    return list(engine.stream(prompt, settings, **kw))  # type: ignore[arg-type]


def test_streamed_text_equals_generate_output(tiny_engine: TransformersEngine) -> None:
    import torch

    prompt = "Москва — столица"
    events = _events(tiny_engine, prompt, GREEDY)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    streamed = "".join(t.text for t in tokens)
    assert streamed == finished.text
    # The same greedy generation straight through generate(), decoded by the tokenizer.
    tok = tiny_engine.tokenizer
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = tiny_engine._model.generate(
            torch.tensor([ids]), do_sample=False, max_new_tokens=20, min_new_tokens=0, pad_token_id=0
        )
    new_ids = out[0, len(ids) :].tolist()
    if 2 in new_ids:
        new_ids = new_ids[: new_ids.index(2)]
    assert streamed == tok.decode(new_ids)
    assert [t.token_id for t in tokens][: len(new_ids)] == new_ids
    assert finished.generated_tokens == [len(tokens)]


def test_token_events_carry_logprobs_and_alternatives(tiny_engine: TransformersEngine) -> None:
    events = _events(tiny_engine, "Привет", GREEDY, top_alternatives=5)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert tokens
    for t in tokens:
        assert t.logprob is not None and t.logprob <= 0
        assert len(t.alternatives) == 5
        # Greedy picks the most likely token, so it is the first alternative.
        assert t.alternatives[0].token_id == t.token_id
        assert t.alternatives[0].logprob == pytest.approx(t.logprob)
        assert [a.logprob for a in t.alternatives] == sorted((a.logprob for a in t.alternatives), reverse=True)


def test_stop_takes_effect_within_one_token(tiny_engine: TransformersEngine) -> None:
    cancel = threading.Event()
    settings = get_preset("greedy").settings(max_new_tokens=50, min_new_tokens=50)
    seen = 0
    finished = None
    for event in tiny_engine.stream("Жили-были", settings, cancel):
        if isinstance(event, TokenEvent):
            seen += 1
            if seen == 5:
                cancel.set()
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    assert finished.finish_reason == "cancelled"
    # Stop pressed after token 5: at most one more token may already be under way.
    assert 5 <= finished.generated_tokens[0] <= 6
    assert seen <= 6


def test_abandoned_stream_stops_the_generation_thread(tiny_engine: TransformersEngine) -> None:
    settings = get_preset("greedy").settings(max_new_tokens=50, min_new_tokens=50)
    stream = tiny_engine.stream("Жили-были", settings)
    for event in stream:
        if isinstance(event, TokenEvent):
            break
    stream.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "gptdesk-generate"]


def test_same_seed_same_text(tiny_engine: TransformersEngine) -> None:
    settings = get_preset("creative").settings(max_new_tokens=15, seed=1234)
    first = run_to_end(tiny_engine.stream("Однажды", settings))
    second = run_to_end(tiny_engine.stream("Однажды", settings))
    other = run_to_end(tiny_engine.stream("Однажды", settings.updated(seed=4321)))
    assert first.text == second.text
    assert first.seed == 1234
    assert other.text != first.text


def test_random_seed_is_reported_and_reproduces(tiny_engine: TransformersEngine) -> None:
    settings = get_preset("creative").settings(max_new_tokens=12)
    first = run_to_end(tiny_engine.stream("Однажды", settings))
    again = run_to_end(tiny_engine.stream("Однажды", settings.updated(seed=first.seed)))
    assert again.text == first.text


def test_empty_prompt_is_a_typed_error(tiny_engine: TransformersEngine) -> None:
    for prompt in ("", "   \n\t"):
        with pytest.raises(EmptyPromptError, match="prompt is empty"):
            _events(tiny_engine, prompt, GREEDY)


def test_overlong_prompt_is_cut_from_the_left(tiny_engine: TransformersEngine) -> None:
    prompt = "слово " * 100  # far more than the tiny model's 64-token context
    events = _events(tiny_engine, prompt, get_preset("greedy").settings(max_new_tokens=10))
    notices = [e for e in events if isinstance(e, Notice) and e.code == "prompt_truncated"]
    assert len(notices) == 1
    assert "dropped" in notices[0].text.en and "отброшены" in notices[0].text.ru
    finished = events[-1]
    assert isinstance(finished, Finished)
    total = len(tiny_engine.tokenize(prompt))
    assert finished.prompt_tokens + finished.prompt_truncated_tokens == total
    # Cut in steps of half the room beside the answer (27 of 54), so that a growing text keeps its cut.
    assert finished.prompt_truncated_tokens % 27 == 0
    assert 54 - 27 < finished.prompt_tokens <= 54
    assert "steps of 27 tokens" in notices[0].text.en and "шагами по 27" in notices[0].text.ru
    # The window's cost line counts the tokens the model will read, not the whole text.
    settings = get_preset("greedy").settings(max_new_tokens=10)
    assert tiny_engine.cost(total, settings).prompt_tokens == finished.prompt_tokens
    # A few tokens more keep the same cut (the kept cache holds the same tokens at the same positions).
    grown = _events(tiny_engine, prompt + "слово слово", get_preset("greedy").settings(max_new_tokens=10))[-1]
    assert isinstance(grown, Finished)
    assert grown.prompt_truncated_tokens == finished.prompt_truncated_tokens
    assert finished.generated_tokens[0] <= 10


def test_max_new_tokens_beyond_context_is_refused(tiny_engine: TransformersEngine) -> None:
    with pytest.raises(SettingsError, match="context holds 64 tokens"):
        _events(tiny_engine, "Привет", get_preset("greedy").settings(max_new_tokens=64))


def test_max_length_counts_the_prompt(tiny_engine: TransformersEngine) -> None:
    prompt = "Александр Сергеевич Пушкин родился в "  # 6 tokens
    finished = run_to_end(tiny_engine.stream(prompt, get_preset("greedy").settings(max_length=16, min_length=16)))
    assert finished.prompt_tokens == 6
    assert finished.generated_tokens == [10]


def test_stop_string_ends_the_text(tiny_engine: TransformersEngine) -> None:
    free = run_to_end(tiny_engine.stream("Привет", get_preset("greedy").settings(max_new_tokens=30, min_new_tokens=30)))
    # Take a stretch of the free-running text as the stop string: the run must end right before it.
    text = free.text
    assert len(text) > 12
    stop = text[8:12]
    cut = text.index(stop)
    stopped = run_to_end(
        tiny_engine.stream("Привет", get_preset("greedy").settings(max_new_tokens=30, min_new_tokens=30, stop=[stop]))
    )
    assert stopped.text == text[:cut]
    assert stopped.finish_reason == "stop"


def test_beam_search_returns_the_requested_sequences(tiny_engine: TransformersEngine) -> None:
    settings = get_preset("greedy").settings(num_beams=4, num_return_sequences=3, max_new_tokens=8, min_new_tokens=8)
    events = _events(tiny_engine, "Жили-были", settings, top_alternatives=3)
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert len(finished.texts) == 3
    for seq in range(3):
        text = "".join(e.text for e in events if isinstance(e, TokenEvent) and e.sequence == seq)
        assert text == finished.texts[seq]
    tokens = [e for e in events if isinstance(e, TokenEvent) and e.token_id >= 0]
    assert all(t.logprob is not None and len(t.alternatives) == 3 for t in tokens)


def test_sber_demo_preset_runs(tiny_engine: TransformersEngine) -> None:
    settings = get_preset("sber_demo").settings(max_new_tokens=10, seed=1)
    finished = run_to_end(tiny_engine.stream("Москва", settings))
    assert len(finished.texts) == 1
    assert finished.generated_tokens[0] <= 10


def test_tokenize_shows_readable_cyrillic(tiny_engine: TransformersEngine) -> None:
    pieces = tiny_engine.tokenize("Александр Сергеевич Пушкин родился в ")
    assert [p.id for p in pieces] == [28810, 20857, 20068, 8542, 282, 225]
    assert [p.text for p in pieces] == ["Александр", " Сергеевич", " Пушкин", " родился", " в", " "]
    assert not any("Ð" in p.text or "Ñ" in p.text for p in pieces)


def test_split_character_pieces_show_bytes(tiny_engine: TransformersEngine) -> None:
    # A rare character that the vocabulary has no whole token for splits into byte tokens.
    pieces = tiny_engine.tokenize("𝔄")
    assert len(pieces) > 1
    assert all(p.text.startswith("<0x") for p in pieces)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        TransformersEngine.load(tmp_path / "nowhere")


def test_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelCorruptError, match=r"no config\.json"):
        TransformersEngine.load(tmp_path / "m")


def test_corrupt_config(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(ModelCorruptError, match="damaged"):
        TransformersEngine.load(broken)


def test_truncated_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelCorruptError, match="cannot be loaded"):
        TransformersEngine.load(broken, device="cpu")


def test_not_a_gpt2_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    other = tmp_path / "llama"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "llama"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="not a GPT-2-family model"):
        TransformersEngine.load(other)


def test_unknown_hub_model_offline_says_so() -> None:
    with pytest.raises(ModelNotFoundError, match="not on this computer"):
        TransformersEngine.load("someone/not-a-model", allow_download=False)


def test_engine_import_keeps_qt_out() -> None:
    code = (
        "import sys, gptdesk.engine, gptdesk.engine.hf, gptdesk.models, gptdesk.cli.main; "
        "print('PySide6' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
