"""Shared fixtures: tiny random GPT-2 models built in the test, data paths pointed at tmp."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUGPT_TOKENIZER = REPO.parent / "shared" / "data" / "rugpt3_tokenizer"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's real data, cache and hub."""
    monkeypatch.setenv("GPTDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GPTDESK_LANG", "en")
    from gptdesk.i18n import set_language

    set_language(None)  # a test (or `--lang`) may have fixed the language for the process


def build_tiny_gpt2(folder: Path, *, n_positions: int = 64, seed: int = 0) -> Path:
    """A random 2-layer GPT-2 with ruGPT-3's real tokenizer (vocab.json + merges.txt, as on the hub)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=50257,
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(RUGPT_TOKENIZER / name, folder / name)
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    )
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path) -> Iterator[object]:
    from gptdesk.engine.hf import TransformersEngine

    engine = TransformersEngine.load(tiny_model_dir, device="cpu", dtype="float32")
    yield engine
    engine.close()
