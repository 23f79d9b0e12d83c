"""Weights that are well-formed files of NaN: refused at load (transformers) and conversion (GGUF) on every engine."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from gptdesk.cli.main import main
from gptdesk.errors import DamagedWeightsError
from gptdesk.models.gguf.cache import cache_dir


def _poisoned(source: Path, target: Path, *, only: str | None = None) -> Path:
    """A copy of `source` whose tensors (or only the one named) are NaN, in a valid safetensors file."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    tensors = load_file(target / "model.safetensors")
    for name, tensor in tensors.items():
        if only is None:
            tensors[name] = torch.full_like(tensor, float("nan"))
        elif name.endswith(only):
            damaged = tensor.clone()
            damaged.view(-1)[-1] = float("nan")  # one value at the very end is enough
            tensors[name] = damaged
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.fixture(scope="module")
def nan_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _poisoned(tiny_model_dir, tmp_path_factory.mktemp("nan") / "all-nan")


@pytest.mark.parametrize("engine", ["auto", "llamacpp", "transformers"])
def test_all_nan_weights_exit_3_on_every_engine(nan_model: Path, engine: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["generate", "Привет", "--model", str(nan_model), "--engine", engine, "--max-new-tokens", "3"], out, err
    )
    assert code == 3, err.getvalue()
    assert "The model's weights are damaged (NaN)" in err.getvalue()
    assert str(nan_model) in err.getvalue()
    assert out.getvalue() == ""
    assert not list(cache_dir().glob("gguf/*/*.gguf"))  # nothing half-made was left in the cache


def test_one_nan_in_the_last_layer_is_found_by_both_checks(tiny_model_dir: Path, tmp_path: Path) -> None:
    from gptdesk.engine.hf import TransformersEngine
    from gptdesk.engine.llamacpp.engine import LlamaCppEngine

    model = _poisoned(tiny_model_dir, tmp_path / "one-nan", only="h.1.mlp.c_proj.weight")
    with pytest.raises(DamagedWeightsError) as at_load:
        TransformersEngine.load(model, device="cpu", dtype="float32")
    assert at_load.value.tensor.endswith("h.1.mlp.c_proj.weight")
    with pytest.raises(DamagedWeightsError) as at_conversion:
        LlamaCppEngine.load(model)
    assert at_conversion.value.tensor == "h.1.mlp.c_proj.weight"
    assert "Веса модели повреждены (NaN)" in at_conversion.value.message("ru")


def test_healthy_weights_still_load(tiny_model_dir: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", "Привет", "--model", str(tiny_model_dir), "--max-new-tokens", "2"], out, err)
    assert code == 0, err.getvalue()
