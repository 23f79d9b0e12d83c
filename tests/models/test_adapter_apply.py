"""An adapter from `gptdesk tune` applied on the reference engine: it changes the logits as peft's own model does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from gptdesk.cli.main import main
from gptdesk.engine.hf import TransformersEngine
from gptdesk.errors import AdapterMismatchError
from gptdesk.models.adapters import AdapterManifest, install


def _random_adapter(model_dir: Path, tmp_path: Path, name: str, base_model: str) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)
    peft_model = get_peft_model(GPT2LMHeadModel.from_pretrained(model_dir), config)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:  # peft starts B at zero: make the adapter do something
            p.data.normal_(0, 0.5)
    staging = tmp_path / f"stage-{name}"
    peft_model.save_pretrained(str(staging))
    install(
        staging,
        AdapterManifest(
            name,
            base_model,
            "",
            4,
            8.0,
            ["c_attn", "c_proj", "c_fc"],
            "0" * 64,
            1,
            1,
            ["a.txt"],
            1,
            1,
            1.0,
            2.0,
            1.9,
            "2026-12-05T00:00:00+00:00",
        ),
    )
    torch.save(peft_model(torch.tensor([[5, 6, 7, 8]])).logits.detach(), tmp_path / f"{name}.logits.pt")


def test_the_reference_engine_applies_the_adapter_as_peft_does(tiny_model_dir: Path, tmp_path: Path) -> None:
    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    plain = TransformersEngine.load(tiny_model_dir, device="cpu", dtype="float32")
    tuned = TransformersEngine.load(tiny_model_dir, device="cpu", dtype="float32", adapter="rand")
    assert plain.info.adapter is None
    assert tuned.info.adapter == "rand" and tuned.info.adapter_digest and len(tuned.info.adapter_digest) == 64
    expected = torch.log_softmax(torch.load(tmp_path / "rand.logits.pt")[0].double(), dim=-1)
    got = tuned.score_tokens([5, 6, 7, 8], 1)
    reference = [float(expected[i - 1, t]) for i, t in zip(range(1, 4), [6, 7, 8], strict=True)]
    assert got.tolist() == pytest.approx(reference, abs=1e-4)
    assert plain.score_tokens([5, 6, 7, 8], 1).tolist() != pytest.approx(reference, abs=1e-3)


def test_an_adapter_for_another_model_is_refused_naming_both(tiny_model_dir: Path, tmp_path: Path) -> None:
    _random_adapter(tiny_model_dir, tmp_path, "other", "gpt2")
    with pytest.raises(AdapterMismatchError, match="made for model 'gpt2'"):
        TransformersEngine.load(tiny_model_dir, device="cpu", dtype="float32", adapter="other")


def test_generate_with_an_adapter_on_the_reference_engine(tiny_model_dir: Path, tmp_path: Path) -> None:
    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    args = ["generate", "Привет", "--model", str(tiny_model_dir), "--max-new-tokens", "5", "--json"]
    out, err = io.StringIO(), io.StringIO()
    assert main([*args, "--engine", "transformers", "--adapter", "rand"], out, err) == 0, err.getvalue()
    with_adapter = json.loads(out.getvalue())
    out = io.StringIO()
    assert main([*args, "--engine", "transformers"], out, io.StringIO()) == 0
    assert json.loads(out.getvalue()) != with_adapter
    err = io.StringIO()
    assert main([*args, "--adapter", "rand", "--remote", "http://127.0.0.1:9"], io.StringIO(), err) == 2
    assert "--remote" in err.getvalue()


@pytest.mark.parametrize(("quant", "tolerance"), [("f32", 2e-3), ("q8_0", 0.01)])
def test_llamacpp_applies_the_adapter_as_peft_does(
    tiny_model_dir: Path, tmp_path: Path, quant: str, tolerance: float
) -> None:
    """The GGUF adapter GPT Desk writes gives peft's log-probabilities on llama.cpp (f32 within rounding; q8_0
    within its quantization error), and without it the model scores as the plain model."""
    from gptdesk.engine.llamacpp.engine import LlamaCppEngine

    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    expected = torch.log_softmax(torch.load(tmp_path / "rand.logits.pt")[0].double(), dim=-1)
    reference = [float(expected[i - 1, t]) for i, t in zip(range(1, 4), [6, 7, 8], strict=True)]
    with LlamaCppEngine.load(tiny_model_dir, quant=quant, threads=2, adapter="rand") as tuned:
        assert tuned.info.adapter == "rand" and tuned.info.adapter_digest
        got = tuned.score_tokens([5, 6, 7, 8], 1).tolist()
    with LlamaCppEngine.load(tiny_model_dir, quant=quant, threads=2) as plain:
        assert plain.info.adapter is None
        without = plain.score_tokens([5, 6, 7, 8], 1).tolist()
    error = max(abs(a - b) for a, b in zip(got, reference, strict=True))
    error_without = max(abs(a - b) for a, b in zip(without, reference, strict=True))
    print(f"{quant}: adapter vs peft {error:.5f}, no adapter vs peft {error_without:.5f}")
    assert error <= tolerance
    assert error_without > 3 * error


def test_generate_with_an_adapter_on_the_default_engine(tiny_model_dir: Path, tmp_path: Path) -> None:
    """--adapter on the default engine (llama.cpp) changes the text as it does on transformers: greedy on f32
    gives the same tokens on both engines."""
    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    args = [
        "generate",
        "Привет",
        "--model",
        str(tiny_model_dir),
        "--max-new-tokens",
        "8",
        "--json",
        "--preset",
        "greedy",
    ]
    results = {}
    for engine in ("transformers", "llamacpp"):
        out, err = io.StringIO(), io.StringIO()
        extra = ["--engine", engine, "--adapter", "rand"] + (["--quant", "f32"] if engine == "llamacpp" else [])
        assert main([*args, *extra], out, err) == 0, err.getvalue()
        results[engine] = json.loads(out.getvalue())
    out, err = io.StringIO(), io.StringIO()
    assert main([*args, "--adapter", "rand"], out, err) == 0, err.getvalue()  # no --engine: the default
    default = json.loads(out.getvalue())
    assert results["llamacpp"]["text"] == results["transformers"]["text"]
    out = io.StringIO()
    assert main([*args, "--engine", "llamacpp"], out, io.StringIO()) == 0
    assert json.loads(out.getvalue())["text"] != default["text"]


def test_a_damaged_llamacpp_adapter_file_is_written_again(tiny_model_dir: Path, tmp_path: Path) -> None:
    from gptdesk.engine.llamacpp.engine import LlamaCppEngine
    from gptdesk.models.adapters import load_adapter

    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    with LlamaCppEngine.load(tiny_model_dir, quant="f32", threads=2, adapter="rand") as first:
        before = first.score_tokens([5, 6, 7, 8], 1).tolist()
    gguf_file = load_adapter("rand").path / "adapter.gguf"
    gguf_file.write_bytes(gguf_file.read_bytes()[:200])  # truncated, its stamp still says current
    with LlamaCppEngine.load(tiny_model_dir, quant="f32", threads=2, adapter="rand") as second:
        assert second.score_tokens([5, 6, 7, 8], 1).tolist() == pytest.approx(before, abs=1e-6)


def test_adapters_merge_writes_a_model_that_scores_as_the_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`gptdesk adapters merge` gives a model folder (and its GGUF) that scores as the adapter applied at run
    time, and a second merge reuses it."""
    from gptdesk.engine.llamacpp.engine import LlamaCppEngine

    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    out, err = io.StringIO(), io.StringIO()
    assert main(["adapters", "merge", "rand", "--quant", "f32", "--json"], out, err) == 0, err.getvalue()
    made = json.loads(out.getvalue())
    assert Path(made["gguf"]).is_file() and (Path(made["folder"]) / "config.json").is_file()
    expected = torch.log_softmax(torch.load(tmp_path / "rand.logits.pt")[0].double(), dim=-1)
    reference = [float(expected[i - 1, t]) for i, t in zip(range(1, 4), [6, 7, 8], strict=True)]
    with LlamaCppEngine.load(made["folder"], quant="f32", threads=2) as merged:
        assert merged.score_tokens([5, 6, 7, 8], 1).tolist() == pytest.approx(reference, abs=2e-3)
    weights = Path(made["folder"]) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    out, err = io.StringIO(), io.StringIO()
    assert main(["adapters", "merge", "rand", "--quant", "f32"], out, err) == 0, err.getvalue()
    assert weights.stat().st_mtime_ns == stamp and "gptdesk generate" in out.getvalue()
    err = io.StringIO()
    assert main(["adapters", "merge", "nope"], io.StringIO(), err) != 0 and "nope" in err.getvalue()


def test_every_command_that_loads_a_local_model_takes_the_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    """next, explore, advise, story, serve and perplexity take --adapter as generate does, and it changes their
    figures: the next-token scores and the text's bits per character differ with the adapter."""
    from gptdesk.cli.engine_options import adapter_option
    from gptdesk.cli.main import build_parser

    for argv in (
        ["next", "x"],
        ["explore", "x"],
        ["advise", "x"],
        ["story", "new", "x"],
        ["serve"],
        ["perplexity", "-"],
    ):
        assert adapter_option(build_parser().parse_args([*argv, "--adapter", "rand"])) == {"adapter": "rand"}
    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    text = tmp_path / "text.txt"
    text.write_text("Жили-были дед да баба, и была у них курочка Ряба.", encoding="utf-8")

    def run(*argv: str) -> dict[str, object]:
        out, err = io.StringIO(), io.StringIO()
        assert main([*argv, "--model", str(tiny_model_dir), "--json"], out, err) == 0, err.getvalue()
        return dict(json.loads(out.getvalue()))

    plain, adapted = run("perplexity", str(text)), run("perplexity", str(text), "--adapter", "rand")
    assert adapted["bits_per_char"] != plain["bits_per_char"] and "+ rand" in str(adapted["engine"])
    plain, adapted = run("next", "Привет"), run("next", "Привет", "--adapter", "rand")
    assert adapted != plain
    out, err = io.StringIO(), io.StringIO()
    assert main(["generate", "x", "--remote", "http://127.0.0.1:9", "--adapter", "rand"], out, err) == 2
    assert "--adapter rand applies to a local model" in err.getvalue()
