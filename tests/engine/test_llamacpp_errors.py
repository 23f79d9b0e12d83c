"""llama.cpp's failures as the user reads them: its warning and error lines only, and each decode code mapped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.engine.llamacpp.backend import LlamaBackend
from gptdesk.models.gguf.library import GGML_LOG_CONT, GGML_LOG_ERROR, GGML_LOG_WARN, Library


@pytest.fixture
def log() -> Iterator[None]:
    Library.recent_log.clear()
    yield
    Library.recent_log.clear()


def test_only_warnings_and_errors_are_kept_for_messages(log: None) -> None:
    # Found: the message quoted llama.cpp's INFO lines ("llama_kv_cache: attn_rot_v = 0 …", "resolve_fused_ops: …")
    # and missed its error: ggml.h's levels are DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5.
    Library.keep_log_line(2, "llama_kv_cache: attn_rot_v = 0\n")
    Library.keep_log_line(1, "debug chatter\n")
    Library.keep_log_line(GGML_LOG_WARN, "llama_context: n_ctx_seq (256) < n_ctx_train\n")
    Library.keep_log_line(GGML_LOG_ERROR, "decode: invalid token[0] = 99999")
    Library.keep_log_line(GGML_LOG_CONT, " (n_vocab = 50257)\n")
    Library.keep_log_line(2, "resolve_fused_ops: fused DeepSeek V4 HC post enabled\n")
    Library.keep_log_line(GGML_LOG_CONT, " more info\n")  # continues an INFO line: dropped with it
    assert Library.last_errors() == (
        "llama_context: n_ctx_seq (256) < n_ctx_train | decode: invalid token[0] = 99999 (n_vocab = 50257)"
    )


def _backend() -> LlamaBackend:
    return LlamaBackend(None, None, 50257, 1, lambda: "decode: invalid token[0] = 99999")


def test_no_room_in_the_cache_asks_for_less() -> None:
    text = _backend()._decode_failed(1, [(5, 0, 0, True)]).text
    assert "no room in its cache" in text.en and "fewer new tokens, beams or variants" in text.en
    assert "Internal error" not in text.en and "кэше" in text.ru


def test_an_invalid_batch_is_an_internal_error_with_the_batch_in_a_log_file() -> None:
    text = _backend()._decode_failed(-1, [(99999, 0, 0, True), (7, 1, 0, False)]).text
    assert text.en.startswith("Internal error: llama.cpp refused a batch of 2 tokens (code -1;")
    assert "fewer new tokens" not in text.en
    path = Path(text.en.split(" The batch is in ")[1].split(". Please report")[0])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("llama_decode returned -1") and "invalid token[0] = 99999" in lines[1]
    assert lines[3:] == ["99999\t0\t0\t1", "7\t1\t0\t0"]
    assert str(path) in text.ru
