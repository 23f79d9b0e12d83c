"""The perplexity tool: strided windows, both local engines, a direct transformers computation, stop."""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gptdesk.cli.main import main
from gptdesk.engine.hf import TransformersEngine
from gptdesk.engine.llamacpp.engine import LlamaCppEngine
from gptdesk.errors import InvalidInputError
from gptdesk.evaluate.bench_quality import heldout_text
from gptdesk.evaluate.perplexity import PerplexityProgress, load_scorer, measure, plan_windows, read_text_file
from gptdesk.models.gguf.sizes import QUANT_TYPES

SHORT = "Однажды играли в карты у конногвардейца Нарумова. Долгая зимняя ночь прошла незаметно."


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ppl-cache")


@pytest.fixture
def shared_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def reference() -> Iterator[TransformersEngine]:
    engine = TransformersEngine.load(None, device="cpu", dtype="float32")
    yield engine
    engine.close()


@pytest.mark.parametrize(("n_ids", "context"), [(2, 8), (8, 8), (9, 8), (100, 8), (101, 16), (1000, 512), (37, 5)])
def test_windows_score_every_position_once_with_half_a_window_of_context(n_ids: int, context: int) -> None:
    windows = plan_windows(n_ids, context)
    scored = [p for w in windows for p in range(w.score_from, w.end)]
    assert scored == list(range(1, n_ids))
    for i, w in enumerate(windows):
        assert 0 <= w.begin <= w.score_from < w.end <= n_ids
        assert w.end - w.begin <= context
        if i > 0:  # after the first window, every scored token sees at least half a window before it
            assert w.score_from - w.begin >= context // 2
    assert windows[-1].end == n_ids


def test_matches_a_direct_transformers_computation(reference: TransformersEngine) -> None:
    import torch

    model = reference._model  # the same weights, computed here without the tool
    tokenizer = reference.tokenizer
    ids = [tokenizer.eos_token_id, *tokenizer(SHORT, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].double()
    nll = -torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:])[:, None]).sum().item()

    result = measure(SHORT, tokenizer, reference.score_tokens, context=512)
    assert result.windows == 1 and result.complete
    assert result.tokens == len(ids) - 1
    assert result.characters == len(SHORT)
    assert result.nll_nats == pytest.approx(nll, rel=1e-5)
    assert result.bits_per_char == pytest.approx(nll / math.log(2) / len(SHORT), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(nll / (len(ids) - 1)), rel=1e-5)


def test_strided_windows_match_a_direct_computation(reference: TransformersEngine) -> None:
    """Every token's log-probability equals the model's over the window the method gives it."""
    import torch

    tokenizer = reference.tokenizer
    text = heldout_text()[:1200]
    ids = [tokenizer.eos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    context = 64
    expected = 0.0
    with torch.no_grad():
        for w in plan_windows(len(ids), context):
            window = torch.tensor([ids[w.begin : w.end]])
            logp = torch.log_softmax(reference._model(window).logits[0, :-1].double(), dim=-1)
            rows = range(w.score_from - w.begin - 1, w.end - w.begin - 1)
            expected -= sum(float(logp[r, ids[w.begin + r + 1]]) for r in rows)
    result = measure(text, tokenizer, reference.score_tokens, context=context)
    assert result.windows > 5
    assert result.nll_nats == pytest.approx(expected, rel=1e-5)
    # A longer context sees more text before each token, so the model is less surprised.
    assert measure(text, tokenizer, reference.score_tokens, context=256).nll_nats < result.nll_nats


# f16 holds exactly the embedded model's weights (stored in float16); llama.cpp computes in its
# own order and rounds activations to f16 in the matrix products, so a token's log-probability
# may differ by a few thousandths of a nat. Tolerance: 0.3% of bits per character, 0.05 nats a token.
@pytest.mark.parametrize("quant", [q for q in ("f32", "f16") if q in QUANT_TYPES])
def test_llama_cpp_agrees_with_transformers(reference: TransformersEngine, shared_cache: Path, quant: str) -> None:
    text = heldout_text()[:2500]
    with LlamaCppEngine.load(None, quant=quant, threads=2) as fast:
        ids = [2, *reference.tokenizer(text[:600], add_special_tokens=False)["input_ids"]]
        a = reference.score_tokens(ids, 1)
        b = fast.score_tokens(ids, 1)
        assert a.shape == b.shape == (len(ids) - 1,)
        assert np.max(np.abs(a - b)) < 0.05
        # Scoring from a later position gives the tail of the same figures, up to llama.cpp's rounding: the
        # kept cache holds the first tokens, so the rest is decoded in other batches than the first time.
        np.testing.assert_allclose(fast.score_tokens(ids, 40), b[39:], atol=0.02)
        slow_result = measure(text, reference.tokenizer, reference.score_tokens, context=128)
        fast_result = measure(text, fast.tokenizer, fast.score_tokens, context=128)
    assert fast_result.tokens == slow_result.tokens
    assert fast_result.bits_per_char == pytest.approx(slow_result.bits_per_char, rel=3e-3)
    # The embedded model knows this kind of prose (its card: 1.56 bits/char on all held-out works).
    assert 1.2 < slow_result.bits_per_char < 2.2


def test_quantized_types_cost_quality_in_order(reference: TransformersEngine, shared_cache: Path) -> None:
    text = heldout_text()[:3000]
    f32 = measure(text, reference.tokenizer, reference.score_tokens, context=256).bits_per_char
    figures = {}
    for quant in ("q8_0", "q4_K_M", "q4_0"):
        with LlamaCppEngine.load(None, quant=quant, threads=2) as fast:
            figures[quant] = measure(text, fast.tokenizer, fast.score_tokens, context=256).bits_per_char
    assert figures["q8_0"] <= f32 * 1.01
    assert figures["q4_K_M"] <= f32 * 1.05
    assert figures["q4_K_M"] < figures["q4_0"]


def test_long_run_reports_progress_and_stops_on_cancel(shared_cache: Path) -> None:
    text = heldout_text() * 3
    cancel = threading.Event()
    seen: list[PerplexityProgress] = []

    def progress(p: PerplexityProgress) -> None:
        seen.append(p)
        if len(seen) == 4:
            cancel.set()

    with load_scorer(None, engine="llamacpp", quant="q8_0") as scorer:
        result = measure(text, scorer.tokenizer, scorer.score, context=64, progress=progress, cancel=cancel)
    assert len(seen) == 4  # stopped before the fifth window
    assert not result.complete
    assert result.windows > 100
    assert [p.tokens_done for p in seen] == sorted({p.tokens_done for p in seen})
    assert seen[-1].tokens_total == result.total_tokens
    assert 0 < seen[-1].fraction < 0.05
    assert seen[0].eta_s is not None and seen[-1].eta_s is not None and seen[-1].eta_s > 0
    assert result.tokens == seen[-1].tokens_done
    assert 0 < result.characters < result.total_characters == len(text)
    assert result.bits_per_char == pytest.approx(seen[-1].bits_per_char)
    assert math.isfinite(result.perplexity)


def test_cli_prints_json_and_text(shared_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text(heldout_text()[:800], encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert (
        main(
            ["perplexity", str(path), "--engine", "llamacpp", "--quant", "Q8_0", "--context", "64", "--json"], out, err
        )
        == 0
    )
    data = json.loads(out.getvalue())
    assert data["engine"] == "llamacpp q8_0" and data["model"] == "embedded"
    assert data["complete"] and data["context"] == 64 and data["stride"] == 32
    assert data["characters"] == 800 and 1.0 < data["bits_per_char"] < 2.5
    assert data["perplexity"] == pytest.approx(math.exp(data["nll_nats"] / data["tokens"]))
    assert "100.0%" in err.getvalue()  # the progress bar ran to the end
    from gptdesk.models import measured

    kept = measured.load().quality_for("embedded")["q8_0"][0]  # kept for the model manager
    assert (kept.text, kept.characters, kept.engine) == ("text.txt", 800, "llamacpp q8_0")
    assert kept.bits_per_char == pytest.approx(data["bits_per_char"])
    assert kept.text_sha256 == measured.text_digest(heldout_text()[:800])
    out = io.StringIO()
    assert main(["perplexity", str(path), "--engine", "transformers", "--context", "64"], out, io.StringIO()) == 0
    assert "bits per character: " in out.getvalue() and "perplexity: " in out.getvalue()
    transformers_bpc = float(out.getvalue().split("bits per character:")[1].split()[0])
    assert transformers_bpc == pytest.approx(data["bits_per_char"], rel=0.01)


def test_bad_input_names_the_value_and_the_fix(tmp_path: Path) -> None:
    cp1251 = tmp_path / "cp1251.txt"
    cp1251.write_bytes("Привет, мир".encode("cp1251"))
    with pytest.raises(InvalidInputError) as err:
        read_text_file(cp1251)
    assert "UTF-8" in err.value.text.en and "iconv" in err.value.text.ru
    with pytest.raises(InvalidInputError) as err:
        read_text_file(tmp_path / "missing.txt")
    assert "missing.txt" in err.value.text.en
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    out, err_stream = io.StringIO(), io.StringIO()
    assert main(["perplexity", str(empty), "--engine", "transformers"], out, err_stream) == 2
    assert "empty" in err_stream.getvalue()
    text = tmp_path / "t.txt"
    text.write_text(SHORT)
    err_stream = io.StringIO()
    assert main(["perplexity", str(text), "--engine", "transformers", "--context", "4096"], out, err_stream) == 2
    assert "--context = 4096" in err_stream.getvalue() and "512" in err_stream.getvalue()
    err_stream = io.StringIO()
    assert main(["perplexity", str(text), "--engine", "transformers", "--quant", "q8_0"], out, err_stream) == 2
    assert "--engine llamacpp" in err_stream.getvalue()
    err_stream = io.StringIO()
    assert main(["perplexity", str(text), "--quant", "q3_k"], out, err_stream) == 2
    assert "q4_K_M" in err_stream.getvalue()
