"""The model manager's core: catalog and cache listing, memory per dtype, deleting, the hardware check."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.errors import InsufficientMemoryError, InvalidInputError, ModelNotFoundError
from gptdesk.models.catalog import find_entry
from gptdesk.models.cost import estimate, fits_in_memory
from gptdesk.models.manage import delete_model, find_row, list_models, local_model_names, memory_needs, scan_cache
from gptdesk.models.shape import ModelShape

GB = 1_000_000_000


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """English messages whatever an earlier test left set (`main(["--lang", "ru", …])` sets it for the process)."""
    from gptdesk.i18n import set_language

    set_language("en")
    yield
    set_language(None)


def _cache_model(root: Path, repo_id: str, source: Path, commit: str = "0" * 40) -> Path:
    """Lay a model out as huggingface_hub does: blobs, a snapshot of links, refs/main."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    blobs, snap = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, f in enumerate(sorted(source.iterdir())):
        blob = blobs / f"{i:040x}"
        shutil.copy(f, blob)
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snap


def _large_shape() -> ModelShape:
    entry = find_entry("rugpt3large")
    assert entry is not None
    return entry.shape


def test_the_catalog_is_listed_with_memory_per_dtype_and_whether_it_fits(tmp_path: Path) -> None:
    rows = list_models(tmp_path / "hub", available=2 * GB)
    large = find_row("sberbank-ai/rugpt3large_based_on_gpt2", rows)
    assert large is not None and large.name == "rugpt3large" and large.status == "absent"
    assert large.ram_bytes["float32"] > large.ram_bytes["bfloat16"] > large.ram_bytes["q8_0"]
    # 2 GB available: ruGPT-3 Large fits in q8_0 only, exactly as the load-time check decides.
    assert large.fits == {"float32": False, "bfloat16": False, "q8_0": True}
    for dtype, need in large.ram_bytes.items():
        # q8_0 runs only on llama.cpp: counted as that engine allocates (no torch runtime), as it checks.
        engine = "llamacpp" if dtype == "q8_0" else "transformers"
        cost = estimate(_large_shape(), dtype=dtype, prompt_tokens=64, max_new_tokens=100, engine=engine)
        assert cost.total_bytes == need
        assert fits_in_memory(cost, weights_loaded=False, available=2 * GB) == large.fits[dtype]
    assert "MIT" in large.licence and large.download_bytes is not None and large.download_bytes > 3 * GB
    embedded = find_row("embedded", rows)
    assert embedded is not None and embedded.status == "embedded" and embedded.local_path is not None
    assert embedded.disk_bytes > 1_000_000
    assert all(r.fits["float32"] for r in list_models(tmp_path / "hub", available=64 * GB))


def test_the_cache_shows_downloads_under_either_org_other_gpt2_models_and_partial_ones(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    root = tmp_path / "hub"
    snap = _cache_model(root, "sberbank-ai/rugpt3medium_based_on_gpt2", tiny_model_dir)
    other = _cache_model(root, "someone/tiny-gpt2", tiny_model_dir)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (bert / "model.safetensors").write_bytes(b"0" * 10)
    _cache_model(root, "google/bert-tiny", bert)
    partial = root / "models--someone--half" / "blobs"
    partial.mkdir(parents=True)
    (partial / ("a" * 64 + ".incomplete")).write_bytes(b"1" * 12345)

    rows = list_models(root, available=64 * GB)
    size = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    medium = find_row("rugpt3medium", rows)
    assert medium is not None and medium.status == "ready" and medium.local_path == snap
    assert medium.disk_bytes == size and medium.partial_bytes == 0
    mine = find_row("someone/tiny-gpt2", rows)
    assert mine is not None and not mine.in_catalog and mine.local_path == other
    assert mine.params == pytest.approx(1.7e6, rel=0.1) and mine.fits["float32"]
    half = find_row("someone/half", rows)
    assert half is not None and half.status == "partial" and half.partial_bytes == 12345
    assert find_row("google/bert-tiny", rows) is None  # another tool's model GPT Desk cannot run
    assert {"ruslit-tiny", "rugpt3medium", "someone/tiny-gpt2"} <= set(local_model_names(root))
    assert len(scan_cache(root)) == 4


def test_delete_removes_every_org_name_and_partial_files(tmp_path: Path, tiny_model_dir: Path) -> None:
    root = tmp_path / "hub"
    _cache_model(root, "sberbank-ai/rugpt3small_based_on_gpt2", tiny_model_dir)
    new = root / "models--ai-forever--rugpt3small_based_on_gpt2" / "blobs"
    new.mkdir(parents=True)
    (new / ("b" * 64 + ".incomplete")).write_bytes(b"2" * 1000)
    size = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    assert delete_model("rugpt3small", root) == size + 1000
    assert not list(root.glob("models--*"))
    row = find_row("rugpt3small", list_models(root, available=GB))
    assert row is not None and row.status == "absent" and row.disk_bytes == 0
    with pytest.raises(ModelNotFoundError, match="nothing to delete"):
        delete_model("rugpt3small", root)
    with pytest.raises(InvalidInputError, match="cannot be deleted") as caught:
        delete_model("embedded", root)
    assert "удалить её нельзя" in caught.value.message("ru")


def test_memory_needs_match_the_refusal_check() -> None:
    entry = find_entry("rugpt3medium")
    assert entry is not None
    ram, fits = memory_needs(entry.shape, available=GB)
    assert not fits["float32"] and fits["q8_0"]
    assert ram["float32"] > GB * 0.9 >= ram["q8_0"]


def test_a_model_that_does_not_fit_is_refused_before_loading_with_suggestions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ruGPT-3 Large's real config, no weights read: the check runs first and names what would fit."""
    from gptdesk.engine.hf import TransformersEngine

    entry = find_entry("rugpt3large")
    assert entry is not None
    folder = tmp_path / "large"
    folder.mkdir()
    shape = entry.shape
    config = {
        "model_type": "gpt2",
        "n_layer": shape.n_layer,
        "n_embd": shape.n_embd,
        "n_head": shape.n_head,
        "n_positions": shape.n_positions,
        "vocab_size": shape.vocab_size,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"")  # never read: the refusal comes first
    monkeypatch.setattr("gptdesk.models.cost.available_memory", lambda: int(2.5 * GB))
    with pytest.raises(InsufficientMemoryError) as caught:
        TransformersEngine.load(folder, device="cpu", dtype="float32")
    en, ru = caught.value.message("en"), caught.value.message("ru")
    assert "2.5 GB is available" in en
    assert "bfloat16" in en and "quantized engine (llamacpp, q8_0" in en and "smaller model: rugpt3medium" in en
    assert "квантованный движок" in ru and "модель поменьше: rugpt3medium" in ru
    # With even less memory, bfloat16 no longer fits and is not offered; smaller options still are.
    monkeypatch.setattr("gptdesk.models.cost.available_memory", lambda: int(1.2 * GB))
    with pytest.raises(InsufficientMemoryError) as caught:
        TransformersEngine.load(folder, device="cpu", dtype="float32")
    en = caught.value.message("en")
    assert "bfloat16" not in en.split("Try:")[1]
    assert "q4_0" in en and "smaller model: rugpt3small" in en


def test_delete_removes_a_symlinked_entry_itself_never_what_it_points_at(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`gptdesk models rm evil/x` where models--evil--x links out of the cache: rmtree refused the link."""
    outside = tmp_path / "precious"
    _cache_model(outside, "evil/x", tiny_model_dir)
    target = outside / "models--evil--x"
    root = tmp_path / "hub"
    root.mkdir()
    (root / "models--evil--x").symlink_to(target, target_is_directory=True)
    (root / ".locks").mkdir()
    (root / ".locks" / "models--evil--x").symlink_to(outside, target_is_directory=True)
    before = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))

    assert delete_model("evil/x", root) == 0  # a link frees nothing
    assert not (root / "models--evil--x").is_symlink() and not (root / "models--evil--x").exists()
    assert not (root / ".locks" / "models--evil--x").is_symlink()
    assert sorted(str(p.relative_to(outside)) for p in outside.rglob("*")) == before  # nothing followed
    # A link whose target is gone is removed as well, not reported as missing.
    (root / "models--evil--y").symlink_to(tmp_path / "gone", target_is_directory=True)
    delete_model("evil/y", root)
    assert not (root / "models--evil--y").is_symlink()
