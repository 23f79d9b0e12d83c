"""The adapter store: manifests, listing, removal, damaged files and adapters for another base model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gptdesk.errors import AdapterMismatchError, AdapterNotFoundError, DamagedAdapterError, InvalidInputError
from gptdesk.models.adapters import (
    CONFIG,
    MANIFEST,
    WEIGHTS,
    AdapterManifest,
    adapters_dir,
    adapters_for,
    check_base,
    install,
    list_adapters,
    load_adapter,
    remove_adapter,
)

MANIFEST_FIELDS = AdapterManifest(
    name="chekhov",
    base_model="ruslit-tiny",
    base_revision="embedded-abc",
    rank=8,
    alpha=16.0,
    target_modules=["c_attn", "c_proj", "c_fc"],
    texts_digest="0" * 64,
    texts_chars=1000,
    texts_bytes=1900,
    texts_files=["a.txt"],
    steps=10,
    tokens_seen=4096,
    seconds=12.5,
    heldout_bpc_before=2.0,
    heldout_bpc_after=1.8,
    created="2026-12-05T10:00:00+00:00",
)


def _staged(tmp_path: Path, payload: bytes = b"weights") -> Path:
    staging = tmp_path / "staging"
    staging.mkdir(parents=True)
    (staging / WEIGHTS).write_bytes(payload)
    (staging / CONFIG).write_text("{}")
    return staging


def test_an_installed_adapter_lists_shows_and_is_removed(tmp_path: Path) -> None:
    adapter = install(_staged(tmp_path), MANIFEST_FIELDS)
    assert adapter.path == adapters_dir() / "chekhov"
    assert len(adapter.digest) == 64
    loaded = load_adapter("chekhov")
    assert loaded.manifest == adapter.manifest
    assert loaded.manifest.improvement == pytest.approx(0.1)
    assert [a.name for a in list_adapters()] == ["chekhov"]
    assert [a.name for a in adapters_for("ruslit-tiny")] == ["chekhov"]
    assert adapters_for("gpt2") == []
    with pytest.raises(InvalidInputError, match="exists already"):
        install(_staged(tmp_path / "again"), MANIFEST_FIELDS)
    remove_adapter("chekhov")
    assert list_adapters() == []
    with pytest.raises(AdapterNotFoundError, match="No adapter named 'chekhov'"):
        remove_adapter("chekhov")


def test_an_adapter_for_another_base_model_is_refused_naming_both(tmp_path: Path) -> None:
    adapter = install(_staged(tmp_path), MANIFEST_FIELDS)
    check_base(adapter, "ruslit-tiny", "embedded-abc")
    with pytest.raises(AdapterMismatchError) as info:
        check_base(adapter, "ai-forever/rugpt3small_based_on_gpt2")
    assert "'ruslit-tiny'" in str(info.value) and "'ai-forever/rugpt3small_based_on_gpt2'" in str(info.value)
    with pytest.raises(AdapterMismatchError, match="revision embedded-abc"):
        check_base(adapter, "ruslit-tiny", "embedded-xyz")


def test_damaged_adapters_say_which_file_and_how_to_fix(tmp_path: Path) -> None:
    install(_staged(tmp_path), MANIFEST_FIELDS)
    install(_staged(tmp_path / "b"), replace(MANIFEST_FIELDS, name="broken"))
    folder = adapters_dir() / "broken"

    (folder / WEIGHTS).write_bytes(b"weig")  # truncated
    with pytest.raises(DamagedAdapterError, match="does not match the digest"):
        load_adapter("broken")

    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(DamagedAdapterError) as info:
        load_adapter("broken")
    assert "gptdesk adapters rm broken" in str(info.value)
    # `ls` still lists the good one; the damaged one is left for `show` to explain.
    assert [a.name for a in list_adapters()] == ["chekhov"]

    (folder / MANIFEST).write_text(json.dumps({"name": "broken"}))
    with pytest.raises(DamagedAdapterError, match="lacks fields"):
        load_adapter("broken")

    (adapters_dir() / "chekhov" / CONFIG).unlink()
    with pytest.raises(DamagedAdapterError, match=f"{CONFIG} is missing"):
        load_adapter("chekhov")


def test_bad_names_are_refused_with_an_example() -> None:
    with pytest.raises(InvalidInputError, match="chekhov-r8"):
        load_adapter("../etc")
