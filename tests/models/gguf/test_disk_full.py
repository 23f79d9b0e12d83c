"""A disk with no room left while converting or quantizing is named as a full disk, with the room needed."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gguf
import pytest

from gptdesk.errors import CacheFolderError, DiskSpaceError
from gptdesk.models.gguf import quantize as quantize_module
from gptdesk.models.gguf.cache import gguf_path
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.quantize import quantize
from gptdesk.models.locate import ResolvedModel, resolve

ROOT = Path(__file__).resolve().parents[3]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


def _in_child(script: str, *args: str) -> dict[str, str]:
    """Run `script` in a fresh interpreter (a file size limit must not reach pytest); it prints one JSON line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@posix_only
def test_a_short_write_of_the_converter_is_a_full_disk(tiny_model_dir: Path, tmp_path: Path) -> None:
    """numpy's tofile reports a short write without an errno; it used to read as an unwritable folder."""
    out = tmp_path / "cache"
    said = _in_child(
        """
        import json, resource, signal, sys
        from pathlib import Path
        from gptdesk.models.gguf.convert import convert

        # The file may not grow past 4 MB: its header fits, the tensors do not (a real short write).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, resource.RLIM_INFINITY))
        try:
            convert(Path(sys.argv[1]), Path(sys.argv[2]) / "f32.gguf", "f32")
        except Exception as exc:
            cause = exc.__cause__
            print(json.dumps({"type": type(exc).__name__, "en": exc.text.en, "ru": exc.text.ru,
                              "errno": str(getattr(cause, "errno", None)), "cause": str(cause)}))
        """,
        str(tiny_model_dir),
        str(out),
    )
    assert "requested and" in said["cause"] and said["errno"] == "None"  # numpy's own words, no errno
    assert said["type"] == "DiskSpaceError"
    assert "disk is full" in said["en"] and "needs about" in said["en"] and "MB" in said["en"]
    assert "Диск заполнен" in said["ru"] and "Нужно около" in said["ru"]
    assert "make it writable" not in said["en"]
    assert [p.name for p in out.iterdir()] == []  # the partial file is gone


def test_no_space_while_writing_tensors_names_the_disk_and_the_room(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: object, tensor: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", no_space)
    resolved = resolve(tiny_model_dir)
    with pytest.raises(DiskSpaceError) as caught:
        ensure_gguf(resolved, "q8_0")
    en, ru = caught.value.text.en, caught.value.text.ru
    assert "disk is full" in en and "No space left on device" in en and "needs about" in en
    assert "GPTDESK_CACHE_DIR" in en and "Диск заполнен" in ru
    assert caught.value.exit_code == 4
    target = gguf_path(resolved, "q8_0")
    assert not [p for p in target.parent.iterdir() if "q8_0" in p.name]


def test_no_space_for_the_cache_folder_is_a_full_disk_not_an_unwritable_one(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.parent.name == "gguf":  # the model's folder in the cache
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(DiskSpaceError) as caught:
        ensure_gguf(resolve(tiny_model_dir), "q8_0")
    assert "disk is full" in caught.value.text.en and not isinstance(caught.value, CacheFolderError)


def test_a_permission_error_still_names_the_folder(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: object, tensor: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", refused)
    with pytest.raises(CacheFolderError) as caught:
        ensure_gguf(resolve(tiny_model_dir), "q8_0")
    assert "cannot be written (Permission denied)" in caught.value.text.en


@pytest.fixture
def f16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(tmp_path / "cache"))
    embedded: ResolvedModel = resolve(None)
    return ensure_gguf(embedded, "f16").path


def test_a_quantization_that_cannot_fit_is_refused_before_it_starts(
    f16: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize_module, "free_disk_space", lambda folder: 1_000_000)
    out = tmp_path / "out" / "q4_K_M.gguf"
    with pytest.raises(DiskSpaceError) as caught:
        quantize(f16, out, "q4_K_M")
    en, ru = caught.value.text.en, caught.value.text.ru
    assert "disk is full" in en and "needs about 12 MB" in en and "1 MB is free" in en
    assert "Диск заполнен" in ru and "свободно 1 MB" in ru
    assert list(out.parent.iterdir()) == []


@posix_only
def test_a_quantizer_that_runs_out_of_room_is_a_full_disk(f16: Path, tmp_path: Path) -> None:
    """llama.cpp's write fails for real (a file size limit); the disk then has less room than the file needs."""
    said = _in_child(
        """
        import json, resource, signal, sys
        from pathlib import Path
        from gptdesk.models.gguf import quantize as q

        # Room for the check before the start, none once the quantizer has filled the disk.
        calls = []
        q.free_disk_space = lambda folder: calls.append(folder) or (10**12 if len(calls) == 1 else 0)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited by the quantizer child, as the limit is
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, resource.RLIM_INFINITY))
        try:
            q.quantize(Path(sys.argv[1]), Path(sys.argv[2]), "q4_K_M")
        except Exception as exc:
            print(json.dumps({"type": type(exc).__name__, "en": exc.text.en}))
        """,
        str(f16),
        str(tmp_path / "out.gguf"),
    )
    assert said["type"] == "DiskSpaceError", said
    assert "disk is full" in said["en"] and "needs about" in said["en"] and "q8_0 or q4_0" not in said["en"]
    assert not list(tmp_path.glob(".out.gguf.*"))
