"""`gptdesk bench` as a user runs it: bad flags refused before anything is measured, workers that end with
the bench, the progress messages; a tiny model stands in for ruGPT-3's shapes (placed in the bench's cache)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptdesk.cli.bench import speed_worker
from gptdesk.cli.bench_report import print_summary, printing_events
from gptdesk.evaluate import bench
from gptdesk.evaluate.bench import runs_text
from gptdesk.i18n import set_language


def _seed_small_shape(tiny_model_dir: Path) -> Path:
    """The tiny model as the bench's built "small" shape (random_model reuses a folder marked complete)."""
    folder = Path(os.environ["GPTDESK_CACHE_DIR"]) / "bench" / "models" / "small"
    shutil.copytree(tiny_model_dir, folder)
    (folder / ".complete").write_text("{}")
    return folder


def _bench(*flags: str) -> list[str]:
    return [sys.executable, "-m", "gptdesk", "--lang", "en", "bench", "--shapes", "small", "--quality", "none", *flags]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--threads", "-1"], "--threads -1: use between 1 and"),
        (["--threads", "0"], "--threads 0: use between 1 and"),
        (["--threads", "10000"], "--threads 10000: use between 1 and"),
        (["--new-tokens", "100000"], "--new-tokens 100000: with a 20-token prompt that is 100020 tokens"),
        (["--prompt-tokens", "5000"], "--prompt-tokens 5000: the small shape's context is 2048 tokens"),
        (["--json", "/proc/nope/r.json"], "--json /proc/nope/r.json: cannot write the results there"),
    ],
)
def test_bad_flags_exit_2_before_anything_is_measured(
    flags: list[str], named: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    _seed_small_shape(tiny_model_dir)
    # Before the checks, each of these ran the bench (or sat measuring 10,000 threads' bandwidth).
    done = subprocess.run(
        _bench("--configs", "fp32", "--runs", "1", "--new-tokens", "4", *flags),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr
    assert "Measuring" not in done.stdout and done.stdout == ""


def test_a_results_file_that_cannot_be_written_names_the_fix(tmp_path: Path) -> None:
    from gptdesk.cli.main import main

    folder = tmp_path / "a folder"
    folder.mkdir()
    out, err = io.StringIO(), io.StringIO()
    code = main(["--lang", "en", "bench", "--shapes", "small", "--json", str(folder)], out, err)
    assert code == 2 and out.getvalue() == ""
    assert f"--json {folder}: cannot write the results there" in err.getvalue()
    assert "Pass --json with a file in a folder you can write" in err.getvalue()
    assert folder.is_dir() and not any(folder.iterdir())  # nothing created, nothing lost


def _workers_of(pid: int) -> list[int]:
    """The bench workers `pid` started, from /proc (Linux, where PR_SET_PDEATHSIG is the mechanism tested)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid == pid and b"--worker" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its new parent to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_the_worker_ends_with_the_bench(how: signal.Signals, tiny_model_dir: Path, tmp_path: Path) -> None:
    _seed_small_shape(tiny_model_dir)
    command = _bench("--configs", "fp32", "--runs", "100000", "--new-tokens", "8", "--prompt-tokens", "4")
    with subprocess.Popen(
        [*command, "--threads", "1", "--json", str(tmp_path / "r.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as parent:
        try:
            deadline = time.monotonic() + 300
            workers: list[int] = []
            while not workers and parent.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
                workers = _workers_of(parent.pid)
            assert workers, f"no worker started: {parent.poll()=}"
            (worker,) = workers
            os.kill(parent.pid, how)
            _, stderr = parent.communicate(timeout=60)
            # The kernel (or the worker's own watch) ends the worker once its parent is gone.
            deadline = time.monotonic() + 30
            while _running(worker) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _running(worker), f"worker {worker} outlived the bench ({how.name})"
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait()
    if how == signal.SIGINT:
        assert parent.returncode == 130 and "Interrupted." in stderr


def test_k_quants_prepare_the_f16_copy_once_and_say_1_run(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    monkeypatch.setattr(bench, "random_model", lambda shape_name, say=None: folder)
    out = io.StringIO()
    report = bench.run_bench(
        ["small"],
        configs=["q6_K", "q4_K_M"],
        runs=1,
        beam_runs=1,
        new_tokens=4,
        prompt_tokens=4,
        threads=1,
        measure=speed_worker,
        events=printing_events(out),
    )
    printed = out.getvalue()
    assert printed.count("Preparing a f16 copy") == 1, printed
    assert "llama.cpp q6_K: 1 run ..." in printed and "llama.cpp q4_K_M: 1 run ..." in printed
    assert "1 runs" not in printed and "medians of 1 run (beam: 1)" in printed
    assert all(r["error"] is None for r in report["shapes"]["small"]["rows"])
    # The f16 file was made only as the K-quants' input: it does not stay in the cache.
    assert not list((Path(os.environ["GPTDESK_CACHE_DIR"])).rglob("*f16*.gguf"))


def test_runs_are_counted_in_both_languages() -> None:
    assert [runs_text(n).en for n in (1, 2, 5)] == ["1 run", "2 runs", "5 runs"]
    ru = {n: runs_text(n).ru for n in (1, 2, 4, 5, 11, 12, 21, 22, 25, 101, 111)}
    assert ru == {
        1: "1 прогон",
        2: "2 прогона",
        4: "4 прогона",
        5: "5 прогонов",
        11: "11 прогонов",
        12: "12 прогонов",
        21: "21 прогон",
        22: "22 прогона",
        25: "25 прогонов",
        101: "101 прогон",
        111: "111 прогонов",
    }
    set_language("ru")
    try:
        out = io.StringIO()
        printing_events(out).say(runs_text(3))
    finally:
        set_language(None)
    assert out.getvalue() == "3 прогона\n"


def test_summary_puts_quality_beside_speed_and_checks_the_targets() -> None:
    def row(key: str, tps: float, x: float) -> dict[str, object]:
        return {"key": key, "tokens_per_second": tps, "speedup_vs_fp32": x, "peak_rss_bytes": 10**9}

    report = {
        "shapes": {"large": {"rows": [row("fp32", 5.0, 1.0), row("q8_0", 27.0, 5.4), row("q4_K_M", 42.0, 8.4)]}},
        "quality": {
            "rows": [
                {"type": "f32", "bits_per_char": 1.6, "vs_f32_percent": 0.0, "file_bytes": 0},
                {"type": "q8_0", "bits_per_char": 1.6002, "vs_f32_percent": 0.0125, "file_bytes": 22_000_000},
                {"type": "q4_K_M", "bits_per_char": 1.62, "vs_f32_percent": 1.25, "file_bytes": 18_000_000},
                {"type": "q4_0", "bits_per_char": 1.61, "vs_f32_percent": 0.625, "file_bytes": 16_000_000},
            ]
        },
    }
    out = io.StringIO()
    print_summary(report, out)
    lines = out.getvalue().splitlines()
    q4k = next(line for line in lines if line.startswith("q4_K_M"))
    assert "1.6200" in q4k and "+1.2%" in q4k and "42.0" in q4k and "8.4×" in q4k
    assert any(line.startswith("q8_0") and "27.0" in line for line in lines)
    assert "target q8_0 within 1% of f32: met" in out.getvalue()
    # Within 5% but worse than q4_0: the target is missed, and the line says so.
    assert "better than q4_0: MISSED" in out.getvalue()
    assert "at least 8× fp32 on the large shape: met (8.4×)" in out.getvalue()
