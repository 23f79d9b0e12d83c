"""Converted GGUF files: listed with their model and size, removed with the model, the cache's total reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.cli.main import main
from gptdesk.models.gguf.cache import cache_dir
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.converted import cache_total, gguf_root, list_converted
from gptdesk.models.locate import resolve
from gptdesk.models.manage import delete_model, find_row, list_models
from tests.models.test_manage import _cache_model

GB = 1_000_000_000


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    from gptdesk.i18n import set_language

    set_language("en")
    yield
    set_language(None)


@pytest.fixture
def converted(tmp_path: Path, tiny_model_dir: Path) -> dict[str, Path]:
    """rugpt3small (the tiny model, under its old org name) in the hub cache, converted twice; a folder model once."""
    hub = tmp_path / "hf" / "hub"  # HF_HOME is tmp_path/hf (tests/conftest.py)
    _cache_model(hub, "sberbank-ai/rugpt3small_based_on_gpt2", tiny_model_dir)
    small = resolve("rugpt3small")
    folder = resolve(str(tiny_model_dir))
    return {
        "hub": hub,
        "q8_0": ensure_gguf(small, "q8_0").path,
        "f16": ensure_gguf(small, "f16").path,
        "folder": ensure_gguf(folder, "q8_0").path,
    }


def test_list_shows_converted_files_with_their_model_and_size(converted: dict[str, Path]) -> None:
    files = {f.path: f for f in list_converted()}
    assert set(files) == {converted["q8_0"], converted["f16"], converted["folder"]}
    assert all(f.bytes > f.path.stat().st_size for f in files.values())  # the manifest counts too
    row = find_row("rugpt3small", list_models(converted["hub"], available=GB))
    assert row is not None and row.status == "ready"
    assert sorted(f.quant for f in row.converted) == ["f16", "q8_0"]
    assert row.converted_bytes == files[converted["q8_0"]].bytes + files[converted["f16"]].bytes
    assert cache_total() == sum(f.bytes for f in files.values())


def test_models_ls_prints_the_files_and_the_total(
    converted: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "GGUF q8_0" in out and "GGUF f16" in out and str(converted["q8_0"]) in out
    assert "Converted GGUF files (llama.cpp engine): " in out and str(gguf_root()) in out
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    small = next(m for m in data["models"] if m["name"] == "rugpt3small")
    assert {c["quant"] for c in small["converted"]} == {"q8_0", "f16"}
    assert data["gguf_cache"] == {"dir": str(gguf_root()), "bytes": cache_total()}


def test_models_rm_leaves_no_gguf_behind(converted: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = cache_total()
    folder_file = converted["folder"]
    assert main(["models", "rm", "rugpt3small"]) == 0
    assert "Deleted rugpt3small" in capsys.readouterr().out
    assert not list(converted["hub"].glob("models--*"))
    assert not converted["q8_0"].exists() and not converted["f16"].exists()
    assert not converted["q8_0"].parent.exists()  # the model's folder in the cache is gone too
    # Only the other model's copy is left, and the total says so.
    remaining = sorted(p for p in (cache_dir() / "gguf").rglob("*") if p.is_file())
    assert remaining == sorted([folder_file, folder_file.with_suffix(".json")])
    assert cache_total() == sum(p.stat().st_size for p in remaining) < before


def test_rm_converted_keeps_the_download(converted: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "rm", "sberbank-ai/rugpt3small_based_on_gpt2", "--converted"]) == 0
    assert "Deleted the converted GGUF files" in capsys.readouterr().out
    assert not converted["q8_0"].exists() and not converted["f16"].exists()
    row = find_row("rugpt3small", list_models(converted["hub"], available=GB))
    assert row is not None and row.status == "ready" and row.converted == ()
    assert main(["models", "rm", "rugpt3small", "--converted"]) == 0
    assert "nothing to delete" in capsys.readouterr().out


def test_a_model_gone_from_the_hub_cache_can_still_lose_its_gguf(converted: dict[str, Path]) -> None:
    import shutil

    shutil.rmtree(converted["hub"])  # deleted by another tool: only our copies are left
    freed = delete_model("rugpt3small", converted["hub"])
    assert freed > 0 and not converted["q8_0"].exists() and not converted["f16"].exists()
