"""Conversions killed with kill -9: their temporaries are removed by a later run, their quantizer child dies too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.models.gguf.cache import cached_problem, gguf_path
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.locate import ResolvedModel, resolve

ROOT = Path(__file__).resolve().parents[3]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the child")


def _python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _dead_pid() -> int:
    """The pid of a process that really ran and was killed with kill -9 (and reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid


def _wait_for(condition: object, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {limit_s:.0f} s")
        time.sleep(0.05)


def _quantizers(marker: str) -> list[int]:
    """Live quantizer processes whose command line mentions `marker` (zombies count as dead)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"--quantize" in cmdline and any(marker.encode() in part for part in cmdline) and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ResolvedModel:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(tmp_path / "cache"))
    return resolve(None)


def test_a_quantization_killed_while_writing_leaves_nothing_for_good(embedded: ResolvedModel, tmp_path: Path) -> None:
    """The issue's run: a process killed with kill -9 while its quantizer writes; the next run cleans up."""
    marker = tmp_path / "writing"
    killed = _python(
        """
        import os, sys, time
        from pathlib import Path
        from gptdesk.models.gguf.convert import ensure_gguf
        from gptdesk.models.locate import resolve

        def progress(text, fraction):
            # Reported from the poll loop once the quantizer's output file exists: it is writing.
            if text.en.startswith("Quantizing to q4_K_M") and "with llama.cpp" not in text.en:
                Path(sys.argv[1]).write_text(str(os.getpid()))
                time.sleep(600)

        ensure_gguf(resolve(None), "q4_K_M", progress=progress)
        """,
        str(marker),
        env={"GPTDESK_CACHE_DIR": os.environ["GPTDESK_CACHE_DIR"]},
    )
    try:
        _wait_for(lambda: marker.exists() or killed.poll() is not None, "the quantizer to start writing")
        assert killed.poll() is None, "the converting process ended before its quantizer wrote"
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        if killed.poll() is None:
            killed.kill()
        killed.wait()
    folder = gguf_path(embedded, "q4_K_M").parent
    left = {p.name for p in folder.iterdir() if p.name.startswith(".")}
    assert any(name.endswith(".part") and f".{killed.pid}-" in name for name in left), left
    assert any(name.endswith(".input") and f".{killed.pid}-" in name for name in left), left
    # Its quantizer child does not outlive it (it may have finished already; it must not keep running).
    _wait_for(lambda: not _quantizers(f".{killed.pid}-"), "the killed process's quantizer to end")

    made = ensure_gguf(embedded, "q4_K_M")
    assert cached_problem(made.path, revision=embedded.revision, quant="q4_K_M", full=True) is None
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_leftovers_of_dead_processes_go_even_when_the_file_is_cached(embedded: ResolvedModel) -> None:
    ensure_gguf(embedded, "q8_0")
    folder = gguf_path(embedded, "q8_0").parent
    dead, mine = _dead_pid(), os.getpid()
    dead_part = folder / f".q4_K_M.gguf.{dead}-0123abcd.part"
    dead_input = folder / f".f16.gguf.{dead}-4567cdef.input"
    live_part = folder / f".q4_K_M.gguf.{mine}-89abcdef.part"
    live_input = folder / f".f16.gguf.{mine}-fedcba98.input"
    for path in (dead_part, dead_input, live_part, live_input):
        path.write_bytes(b"x" * 1000)
    # An input link has the f16 file's age, however fresh the process that made it: only its owner counts.
    old = time.time() - 24 * 3600
    os.utime(live_input, (old, old))

    again = ensure_gguf(embedded, "q8_0")
    assert again.reused
    assert not dead_part.exists() and not dead_input.exists()
    assert live_part.exists() and live_input.exists()  # this process may still be writing them


@linux_only
def test_the_quantizer_child_dies_with_its_parent(tmp_path: Path) -> None:
    """kill -9 of the process that started the quantizer ends the quantizer (the C call cannot be told)."""
    # The quantizer opens its source first; a FIFO with no writer keeps it blocked in that C call for good.
    source = tmp_path / "blocked-source.gguf"
    os.mkfifo(source)
    parent = _python(
        """
        import sys
        from pathlib import Path
        from gptdesk.models.gguf.quantize import quantize

        quantize(Path(sys.argv[1]), Path(sys.argv[2]), "q4_K_M")
        """,
        str(source),
        str(tmp_path / "out.gguf"),
    )
    children: list[int] = []
    try:
        _wait_for(lambda: bool(_quantizers(str(source))) or parent.poll() is not None, "the quantizer to start")
        children = _quantizers(str(source))
        assert children and parent.poll() is None
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not _quantizers(str(source)), "the orphaned quantizer to end", limit_s=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in _quantizers(str(source)):  # only on failure: do not leave it blocked on the FIFO
            if pid in children:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def _no_stray_quantizers(tmp_path: Path) -> Iterator[None]:
    yield
    assert not _quantizers(str(tmp_path)), "a quantizer started by this test is still running"
