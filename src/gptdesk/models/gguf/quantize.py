"""K-quants made by llama.cpp's own quantizer, from the f16 file, in a child process that dies with its parent."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gptdesk.errors import ConversionCancelled, DiskSpaceError, ModelError
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.gguf.cache import (
    manifest_path,
    publish,
    remove_leftovers,
    temporary_path,
    write_failure,
)
from gptdesk.models.gguf.sizes import K_QUANTS, short_size

#: How often the quantizer child checks that its parent is still there (where the kernel cannot
#: kill it with its parent, and as a second guard where it can).
PARENT_POLL_S = 0.5


def private_link(path: Path) -> Path:
    """A second name for `path` that only this process uses and removes (`path` itself where the
    disk has no hard links); what dead processes left beside it is removed first."""
    remove_leftovers(path.parent)
    link = temporary_path(path, "input")
    try:
        os.link(path, link)
    except OSError:
        return path
    return link


def quantize(
    source: Path,
    out: Path,
    quant: str,
    *,
    model_id: str = "",
    revision: str = "",
    base_sha256: str = "",
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    reason: Text | None = None,
    start: float = 0.0,
    poll_seconds: float = 0.1,
) -> dict[str, Any]:
    """Quantize the f16 GGUF `source` to the K-quant `quant` at `out` (atomically); return the manifest.

    llama_model_quantize is one C call with neither progress nor cancel, so it runs in a child
    process: the parent follows the output file's growth and kills the child on cancel.
    """
    if quant not in K_QUANTS:
        raise ValueError(f"{quant!r} is not a K-quant; expected one of {', '.join(K_QUANTS)}")
    ftype, bits = K_QUANTS[quant]

    def report(text: Text, fraction: float | None) -> None:
        if progress is not None:
            progress(text, None if fraction is None else start + (1.0 - start) * fraction)

    why = Text("", "") if reason is None else Text(f" ({reason.en})", f" ({reason.ru})")
    report(Text(f"Quantizing to {quant} with llama.cpp", f"Квантование в {quant} средствами llama.cpp") + why, 0.0)
    # The f16 file holds 16 bits per weight: the nominal bits give the size to expect (the bar, the disk).
    expected = max(1, int(source.stat().st_size * bits / 16))
    what = Text(f"the {quant} copy", f"копию {quant}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(out.parent, exc, expected, what) from exc
    tmp = temporary_path(out)
    remove_leftovers(out.parent)
    if _disk_too_small(out.parent, expected, tmp):
        raise _no_room(out.parent, expected)
    try:
        with tempfile.TemporaryFile() as errors:
            child: subprocess.Popen[bytes] | _ThreadQuantizer
            if getattr(sys, "frozen", False):
                # A frozen app has no interpreter to start with -m: the C call runs on a thread
                # instead, and a cancel waits for it to end.
                child = _ThreadQuantizer(str(source), str(tmp), ftype, threads or 0)
            else:
                command = [sys.executable, "-m", "gptdesk.models.gguf.quantize", "--quantize", str(source), str(tmp)]
                child = subprocess.Popen(
                    [*command, ftype, str(threads or 0), str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
            try:
                while child.poll() is None:
                    if cancel is not None and cancel.is_set():
                        child.kill()
                        child.wait()
                        raise ConversionCancelled(Text("The conversion was cancelled.", "Преобразование отменено."))
                    with contextlib.suppress(OSError):
                        report(
                            Text(f"Quantizing to {quant}", f"Квантование в {quant}"),
                            min(0.95, tmp.stat().st_size / expected),
                        )
                    time.sleep(poll_seconds)
            finally:
                if child.poll() is None:  # an exception in the loop (KeyboardInterrupt): no orphan left
                    child.kill()
                    child.wait()
            if child.returncode != 0 or not tmp.exists():
                errors.seek(0)
                said = errors.read().decode("utf-8", "replace") + getattr(child, "error", "")
                detail = said.strip().splitlines()[-3:]
                if _disk_too_small(out.parent, expected, tmp):
                    # llama.cpp's own write error names no cause ("iostream error"): the disk is the cause.
                    raise _no_room(out.parent, expected, " | ".join(detail) or "no message")
                raise ModelError(
                    Text(
                        f"llama.cpp could not quantize {source.name} to {quant} (exit code {child.returncode}: "
                        f"{' | '.join(detail) or 'no message'}). Use q8_0 or q4_0, which GPT Desk writes itself.",
                        f"llama.cpp не смог квантовать {source.name} в {quant} (код {child.returncode}: "
                        f"{' | '.join(detail) or 'без сообщения'}). Используйте q8_0 или q4_0, их GPT Desk "
                        "пишет сам.",
                    )
                )
        manifest = publish(
            tmp,
            out,
            {
                "model_id": model_id,
                "source": str(source),
                "revision": revision,
                "quant": quant,
                "quantizer": f"llama.cpp (llama-cpp-python {_llama_cpp_version()})",
                "base_sha256": base_sha256,
            },
        )
    except OSError as exc:
        raise write_failure(out.parent, exc, expected, what) from exc
    finally:
        for leftover in (tmp, manifest_path(tmp)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    report(Text(f"The {quant} copy is ready", f"Копия {quant} готова"), 1.0)
    return manifest


def _disk_too_small(folder: Path, expected: int, tmp: Path) -> bool:
    """Whether the disk lacks the room the rest of the file needs (what the child wrote is counted as room)."""
    try:
        written = tmp.stat().st_size if tmp.exists() else 0
        return free_disk_space(folder) + written < expected
    except OSError:
        return False


def free_disk_space(folder: Path) -> int:
    return int(shutil.disk_usage(folder).free)


def _no_room(folder: Path, expected: int, said: str | None = None) -> DiskSpaceError:
    """A full disk, with the room the quantized file needs and what is free (and llama.cpp's words, if any)."""
    try:
        free = short_size(free_disk_space(folder))
    except OSError:
        free = "?"
    detail = f" ({said})" if said else ""
    return DiskSpaceError(
        Text(
            f"The disk is full: llama.cpp cannot write the quantized model to {folder}{detail}. It needs "
            f"about {short_size(expected)} and {free} is free there: free some disk space or point "
            "GPTDESK_CACHE_DIR to another disk.",
            f"Диск заполнен: llama.cpp не может записать квантованную модель в {folder}{detail}. Нужно "
            f"около {short_size(expected)}, а свободно {free}: освободите место на диске или укажите другой "
            "диск в GPTDESK_CACHE_DIR.",
        )
    )


def _llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return "?"


def _quantize_child(source: str, out: str, ftype: str, threads: int, parent: int) -> int:
    """The child process of quantize(): one llama_model_quantize call, llama.cpp's errors on stderr."""
    import ctypes

    die_with_parent(parent)

    import llama_cpp

    from gptdesk.models.gguf.library import close_devnull_at_exit

    close_devnull_at_exit()

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _log(level: int, text: bytes, user_data: Any) -> None:
        if level == 4:  # errors only; the per-tensor chatter stays out of the parent's messages
            sys.stderr.write(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
    return _quantize_call(source, out, ftype, threads)


def die_with_parent(parent: int) -> None:
    """End this process when `parent` does, even by kill -9: no quantizer left running, orphaned.

    On Linux the kernel sends SIGKILL when the parent goes (prctl PR_SET_PDEATHSIG); everywhere a
    watchdog thread also polls the parent's pid (the C call releases the GIL, so the thread runs).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # gone before the guard was set: the child was reparented already
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class _ThreadQuantizer:
    """llama_model_quantize on a thread, with the part of Popen's interface quantize() uses."""

    def __init__(self, source: str, out: str, ftype: str, threads: int) -> None:
        self.returncode: int | None = None
        self.error = ""
        self._thread = threading.Thread(target=self._run, args=(source, out, ftype, threads), daemon=True)
        self._thread.start()

    def _run(self, source: str, out: str, ftype: str, threads: int) -> None:
        try:
            self.returncode = _quantize_call(source, out, ftype, threads)
        except Exception as exc:  # reported by quantize() with the way out
            self.error = f"{type(exc).__name__}: {exc}"
            self.returncode = 1

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        pass  # one C call cannot be interrupted: wait() waits for it

    def wait(self) -> int | None:
        self._thread.join()
        return self.returncode


def _quantize_call(source: str, out: str, ftype: str, threads: int) -> int:
    import ctypes

    import llama_cpp

    from gptdesk.models.gguf.library import close_devnull_at_exit

    close_devnull_at_exit()

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(getattr(llama_cpp, ftype))
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(source.encode("utf-8"), out.encode("utf-8"), ctypes.byref(params))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    # python -m gptdesk.models.gguf.quantize --quantize SOURCE OUT FTYPE THREADS [PARENT_PID] (the child of quantize()).
    if len(sys.argv) in (6, 7) and sys.argv[1] == "--quantize":
        parent_pid = int(sys.argv[6]) if len(sys.argv) == 7 else os.getppid()
        sys.exit(_quantize_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), parent_pid))
    sys.exit(2)
