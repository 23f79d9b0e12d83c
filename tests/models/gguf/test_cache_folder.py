"""A cache folder that cannot hold the converted model: auto falls back to transformers, llamacpp names it."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.cli.main import main
from gptdesk.engine import Notice, load_engine, run_to_end
from gptdesk.errors import CacheFolderError
from gptdesk.settings.generation import GenerationSettings


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write to: a read-only tmpfs for root (who ignores permissions), else mode 555."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)


def _generate(model: Path, engine: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", "Привет", "--model", str(model), "--engine", engine, "--max-new-tokens", "3"], out, err)
    return code, out.getvalue(), err.getvalue()


def _cache_cases(tmp_path: Path, read_only: Path) -> list[tuple[str, str, str]]:
    """(variable, value, reason) for each way the cache can be unusable."""
    a_file = tmp_path / "cache-is-a-file"
    a_file.write_text("not a folder")
    return [
        ("GPTDESK_CACHE_DIR", str(read_only), "Read-only file system" if os.geteuid() == 0 else "Permission denied"),
        ("XDG_CACHE_HOME", str(read_only), "Read-only file system" if os.geteuid() == 0 else "Permission denied"),
        ("GPTDESK_CACHE_DIR", str(a_file), "Not a directory"),
    ]


def test_the_auto_engine_falls_back_to_transformers_and_says_why(
    tiny_model_dir: Path, tmp_path: Path, read_only_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value, reason in _cache_cases(tmp_path, read_only_folder):
        if variable == "XDG_CACHE_HOME":
            monkeypatch.delenv("GPTDESK_CACHE_DIR")
        monkeypatch.setenv(variable, value)
        code, out, err = _generate(tiny_model_dir, "auto")
        assert code == 0, (variable, err)
        assert out.startswith("Привет")
        assert "! Running on transformers instead of llama.cpp: The cache folder " + value in err
        assert reason in err and "on transformers cpu" in err


def test_the_llamacpp_engine_names_the_folder_and_exits_3(
    tiny_model_dir: Path, tmp_path: Path, read_only_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value, reason in _cache_cases(tmp_path, read_only_folder):
        if variable == "XDG_CACHE_HOME":
            monkeypatch.delenv("GPTDESK_CACHE_DIR", raising=False)
        monkeypatch.setenv(variable, value)
        code, out, err = _generate(tiny_model_dir, "llamacpp")
        assert code == 3, (variable, err)
        assert err.startswith("Error: The cache folder " + value), err
        assert reason in err and "GPTDESK_CACHE_DIR" in err and "Internal error" not in err
        assert out == ""


def test_every_generation_of_the_fallback_carries_the_notice(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(a_file))
    with pytest.raises(CacheFolderError):
        load_engine(tiny_model_dir, engine="llamacpp")
    engine = load_engine(tiny_model_dir, engine="auto")
    try:
        assert engine.info.engine == "transformers"
        settings = GenerationSettings.build(max_new_tokens=2, seed=1)
        for _ in range(2):
            events = list(engine.stream("Привет", settings))
            notices = [e for e in events if isinstance(e, Notice)]
            assert notices[0].code == "engine_fallback" and "cannot be written" in notices[0].text.en
            assert "Папка кэша" in notices[0].text.ru
        assert run_to_end(iter(events)).generated_tokens == [2]
    finally:
        engine.close()


def test_what_a_dead_conversion_left_is_removed_by_the_next_one(tiny_model_dir: Path) -> None:
    """Ctrl+C during start-up ends the process at once, so a conversion's temporary file may stay behind."""
    import time

    from gptdesk.models.gguf.cache import gguf_path
    from gptdesk.models.gguf.convert import ensure_gguf
    from gptdesk.models.locate import resolve

    resolved = resolve(tiny_model_dir)
    target = gguf_path(resolved, "q8_0")
    target.parent.mkdir(parents=True)
    stale = target.with_name(f".{target.name}.deadbeef.part")
    stale_manifest = target.with_name(f".{target.name}.deadbeef.json")
    live = target.with_name(f".{target.name}.0badf00d.part")
    for path in (stale, stale_manifest, live):
        path.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    for path in (stale, stale_manifest):
        os.utime(path, (old, old))
    ensure_gguf(resolved, "q8_0")
    assert target.is_file()
    assert not stale.exists() and not stale_manifest.exists()
    assert live.exists()  # another process may still be writing it
