"""Finding models: the catalog, aliases, the Hugging Face cache, folders, and the network being down."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gptdesk.errors import ModelNotFoundError, NetworkError
from gptdesk.models.catalog import CATALOG, find_entry
from gptdesk.models.locate import EMBEDDED_PATH, find_local, hub_candidates, resolve
from gptdesk.models.obtain import obtain


def _fake_hub_cache(root: Path, repo_id: str, source: Path) -> Path:
    """Lay out a model in the standard hub cache as huggingface_hub does (refs + snapshots)."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snap.mkdir(parents=True)
    for f in source.iterdir():
        shutil.copy(f, snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snap.name)
    return snap


def test_catalog_names_and_aliases() -> None:
    large = find_entry("sberbank-ai/rugpt3large_based_on_gpt2")
    assert large is not None
    assert large.id == "ai-forever/rugpt3large_based_on_gpt2"
    assert find_entry("RUGPT3LARGE") is large
    assert 755e6 < large.n_params < 765e6
    assert {e.short for e in CATALOG} >= {"rugpt3small", "rugpt3medium", "rugpt3large", "gpt2", "ruslit-tiny"}
    assert hub_candidates("rugpt3small") == [
        "ai-forever/rugpt3small_based_on_gpt2",
        "sberbank-ai/rugpt3small_based_on_gpt2",
    ]
    assert hub_candidates("someone/custom") == ["someone/custom"]


def test_embedded_model_is_in_the_package() -> None:
    resolved = resolve(None)
    assert resolved.path == EMBEDDED_PATH
    assert resolved.revision.startswith("embedded-")
    assert resolve("embedded").path == EMBEDDED_PATH
    size = sum(p.stat().st_size for p in EMBEDDED_PATH.iterdir())
    assert size <= 40_000_000


def test_a_model_cached_under_the_old_org_name_is_found(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert find_local("rugpt3small") is None
    snap = _fake_hub_cache(cache, "sberbank-ai/rugpt3small_based_on_gpt2", tiny_model_dir)
    assert find_local("ai-forever/rugpt3small_based_on_gpt2") == snap
    resolved = resolve("rugpt3small")
    assert resolved.path == snap
    assert resolved.model_id == "ai-forever/rugpt3small_based_on_gpt2"
    assert resolved.revision == snap.name


def test_cached_model_loads_without_the_network(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptdesk.engine.hf import TransformersEngine

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _fake_hub_cache(cache, "ai-forever/rugpt3medium_based_on_gpt2", tiny_model_dir)
    engine = TransformersEngine.load("sberbank-ai/rugpt3medium_based_on_gpt2", device="cpu", check_memory=False)
    assert engine.info.model_id == "ai-forever/rugpt3medium_based_on_gpt2"
    engine.close()


def test_network_down_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(NetworkError, match="Cannot reach the model hub") as info:
        obtain("rugpt3large")
    assert "model folder" in info.value.text.en and "папку" in info.value.text.ru


def test_offline_mode_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NetworkError):
        obtain("someone/model")


def test_not_downloading_names_the_pull_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError, match="gptdesk models pull rugpt3large"):
        resolve("rugpt3large")


@pytest.mark.parametrize("name", ["x" * 5000, "someone/" + "x" * 5000, "./" + "x" * 300, "/tmp/" + "y" * 300])
def test_a_name_too_long_for_a_file_is_a_clear_model_not_found(name: str) -> None:
    """`gptdesk generate x --model <5,000 characters>` said "Internal error (OSError: File name too long)"."""
    with pytest.raises(ModelNotFoundError) as caught:
        resolve(name)
    en, ru = caught.value.message("en"), caught.value.message("ru")
    assert f"{len(name):,} characters long" in en and "no model can be called that" in en
    assert name[:20] in en and name not in en  # named, but not pasted whole
    assert "gptdesk models" in en and "символов" in ru
    with pytest.raises(ModelNotFoundError):
        obtain(name)  # not taken for a hub id to download
