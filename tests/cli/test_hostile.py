"""The `gptdesk` command against issue 21's hostile test: bad bytes on stdin, endless or huge inputs, no display,
absurd thread counts, odd cache entries and file names, read-only and full disks. Each runs the real command."""

from __future__ import annotations

import ast
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
PROSE = SHARED / "data" / "ru_literature" / "prose" / "Chekhov"


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("PYTHONIOENCODING", None)
    env.update(extra)
    return env


def _gptdesk(*args: str | bytes) -> list[str | bytes]:
    return [sys.executable, "-m", "gptdesk", *args]


def _run(*args: str | bytes, timeout: float = 300, env: dict[str, str] | None = None, **popen: object) -> Result:
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    done = subprocess.run(_gptdesk(*args), timeout=timeout, env=env or _env(), **popen)  # type: ignore[call-overload]
    return Result(done.returncode, done.stdout or b"", done.stderr or b"")


class Result:
    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.code = code
        self.out = out.decode("utf-8", "replace")
        self.err = err.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out[-2000:]}\n--- stderr\n{self.err[-3000:]}"


def _sample_text(chars: int) -> str:
    text = ""
    for path in sorted(PROSE.glob("*.txt")):
        text += path.read_text(encoding="utf-8")
        if len(text) >= chars:
            break
    return text[:chars]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True, timeout=60)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare -r -m` (user namespaces) to mount a small or read-only tmpfs"
)


def _in_mount(mount: Path, options: str, *args: str | bytes, env: dict[str, str] | None = None) -> Result:
    """Run gptdesk with a private tmpfs (e.g. "size=1m", "ro") mounted at `mount`: a full or read-only disk."""
    script = f'mount -t tmpfs -o {options} tmpfs "$0" && exec "$@"'
    command = ["unshare", "-r", "-m", "sh", "-c", script, str(mount), *_gptdesk(*args)]
    done = subprocess.run(command, capture_output=True, timeout=600, env=env or _env())
    return Result(done.returncode, done.stdout, done.stderr)


class Reader:
    """A running gptdesk whose standard error is read line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(_gptdesk(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or _env())
        self.seen = b""

    def wait_for(self, needle: str, limit_s: float = 300) -> str:
        """stderr up to the first line that holds `needle` (a guard against a hang, not a timing)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + limit_s
        fd = self.proc.stderr.fileno()
        while needle.encode() not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not select.select([fd], [], [], 0)[0]):
                self.proc.kill()
                raise AssertionError(f"no {needle!r} on stderr; saw: {self.seen.decode(errors='replace')!r}")
            if select.select([fd], [], [], min(left, 1.0))[0]:
                chunk = os.read(fd, 65536)
                if not chunk and self.proc.poll() is not None:
                    continue
                self.seen += chunk
        return self.seen.decode("utf-8", "replace")

    def interrupt(self) -> Result:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=120)
        return Result(self.proc.returncode, out, self.seen + err)


# -- 1: every command that reads standard input refuses bytes that are not UTF-8 ------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "-"],
        ["next", "-"],
        ["explore", "-"],
        ["advise", "-"],
        ["tokens", "-"],
        ["perplexity", "-"],
        ["story", "new", "-"],
    ],
)
def test_bad_bytes_on_standard_input_exit_2_naming_the_byte(args: list[str]) -> None:
    result = _run(*args, input=b"\xff\xfe abc")
    assert result.code == 2, result
    assert "not UTF-8 text" in result.err or "not valid UTF-8 text" in result.err, result
    assert "byte 0" in result.err and "Internal error" not in result.err, result


# -- 2: perplexity streams its input, with a limit, progress from the start, and Ctrl+C in every phase ----


def test_perplexity_on_a_fifo_without_a_writer_says_it_waits_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    running = Reader("perplexity", str(fifo))
    seen = running.wait_for("Reading")
    assert str(fifo) in seen
    result = running.interrupt()
    assert result.code == 130, result
    assert "Interrupted" in result.err and "Traceback" not in result.err, result


def test_perplexity_refuses_an_endless_input_at_its_limit() -> None:
    result = _run("perplexity", "/dev/zero", "--max-chars", "3000000")
    assert result.code == 2, result
    assert "longer than 3,000,000 characters" in result.err and "--max-chars" in result.err, result
    assert "head -c" in result.err and "Internal error" not in result.err, result


def test_perplexity_refuses_a_text_beyond_the_default_limit_naming_the_figures(tmp_path: Path) -> None:
    from gptdesk.evaluate.perplexity import DEFAULT_MAX_CHARS

    big = tmp_path / "big.txt"
    with big.open("w", encoding="utf-8") as f:
        line = "Жили-были старик со старухой у самого синего моря.\n"
        f.write(line * (DEFAULT_MAX_CHARS // len(line) + 2))
    result = _run("perplexity", str(big))
    assert result.code == 2, result
    assert f"longer than {DEFAULT_MAX_CHARS:,} characters" in result.err, result
    assert "MB read so far of" in result.err and "Looking for the model" not in result.err, result


def test_ctrl_c_while_a_long_text_is_tokenized_exits_130_at_once(tmp_path: Path) -> None:
    text = _sample_text(400_000)
    path = tmp_path / "long.txt"
    path.write_text(text * 20, encoding="utf-8")  # 8 M characters: tokenizing takes a while
    running = Reader("perplexity", str(path), "--engine", "transformers")
    running.wait_for("Tokenizing")
    result = running.interrupt()
    assert result.code == 130, result
    assert "Interrupted" in result.err and "Traceback" not in result.err and result.out == "", result


def test_perplexity_falls_back_to_transformers_when_the_cache_cannot_be_used(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("a file where the cache folder should be")
    path = tmp_path / "text.txt"
    path.write_text(_sample_text(1500), encoding="utf-8")
    result = _run("perplexity", str(path), "--context", "128", env=_env(GPTDESK_CACHE_DIR=str(not_a_folder)))
    assert result.code == 0, result
    assert "Scoring on transformers instead of llama.cpp" in result.err and str(not_a_folder) in result.err, result
    assert "(transformers float32)" in result.out and "bits per character" in result.out, result


def test_chunked_tokenization_gives_the_tokens_of_the_whole_text() -> None:
    """The pieces cut at pre-token boundaries: the same ids and ends as one call, on real prose."""
    from gptdesk.evaluate.perplexity import tokenize_text
    from gptdesk.models.obtain import obtain
    from gptdesk.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(obtain(None).path)
    text = _sample_text(60_000) + " а  б\n\n  в\t\tг " + "x" * 3000 + " конец"
    whole = tokenize_text(text, tokenizer, piece_chars=len(text) + 1)
    pieces: list[int] = []
    cut = tokenize_text(text, tokenizer, piece_chars=1000, progress=lambda done, total: pieces.append(done))
    assert whole is not None and cut is not None
    assert len(pieces) > 50 and pieces[-1] == len(text)
    assert cut.ids == whole.ids and cut.ends == whole.ends


# -- 3: charts are drawn off screen whatever the platform, and a file that cannot be written is named ----


def test_next_draws_its_chart_with_an_xcb_platform_and_no_display(tmp_path: Path) -> None:
    target = tmp_path / "o.png"
    env = _env(QT_QPA_PLATFORM="xcb", DISPLAY="", WAYLAND_DISPLAY="")
    result = _run("next", "Москва", "--png", str(target), "--engine", "transformers", env=env)
    assert result.code == 0, result
    assert target.read_bytes().startswith(b"\x89PNG"), result


@needs_mounts
def test_next_names_a_chart_file_it_cannot_write(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    result = _in_mount(
        folder, "ro", "next", "Москва", "--png", str(folder / "o.png"), "--engine", "transformers", "--top", "5"
    )
    assert result.code == 5, result
    assert f"cannot be written to {folder / 'o.png'}" in result.err and "Read-only file system" in result.err, result
    assert "entropy" in result.out, result  # the view itself was printed


# -- 4: thread counts between 1 and the logical CPUs --------------------------------------------------


@pytest.mark.parametrize("threads", ["99999999999999999999", "10000", str((os.cpu_count() or 1) + 1), "0"])
def test_a_thread_count_beyond_the_cpus_is_refused_naming_it(threads: str) -> None:
    generate = ["generate", "Привет", "--engine", "llamacpp", "--max-new-tokens", "2"]
    result = _run(*generate, env=_env(GPTDESK_THREADS=threads))
    assert result.code == 2, result
    assert f"GPTDESK_THREADS = '{threads}'" in result.err, result
    assert f"from 1 to {os.cpu_count()}" in result.err and "Internal error" not in result.err, result


def test_the_machines_logical_cpus_are_accepted() -> None:
    threads = str(os.cpu_count() or 1)
    generate = ["generate", "Привет", "--engine", "llamacpp", "--max-new-tokens", "2"]
    result = _run(*generate, env=_env(GPTDESK_THREADS=threads))
    assert result.code == 0, result
    assert result.out.startswith("Привет"), result


# -- 5: a symlinked cache entry, an impossible --model -------------------------------------------------


def test_models_rm_removes_a_symlinked_entry_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (target / "snapshots").mkdir(parents=True)
    keep = target / "snapshots" / "precious.bin"
    keep.write_bytes(b"not the cache's to delete")
    hub = Path(os.environ["HF_HOME"]) / "hub"
    hub.mkdir(parents=True)
    link = hub / "models--evil--x"
    link.symlink_to(target, target_is_directory=True)
    result = _run("models", "rm", "evil/x")
    assert result.code == 0, result
    assert not link.is_symlink() and not link.exists(), result
    assert keep.read_bytes() == b"not the cache's to delete"


def test_a_model_name_too_long_for_any_file_is_bad_input() -> None:
    result = _run("generate", "x", "--model", "a" * 5000)
    assert result.code == 2, result
    assert "--model 'aaaa" in result.err and "5,000 characters long" in result.err, result
    assert "catalog name" in result.err and "Internal error" not in result.err, result


# -- 6: one table of exit codes, and a failing stderr keeps the code --------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_bad_settings_with_a_full_standard_error_still_exit_2() -> None:
    with open("/dev/full", "wb") as full:
        result = _run("generate", "x", "--temperature", "99", stderr=full)
    assert result.code == 2, result


def _returned_codes(path: Path) -> set[int]:
    """The integer literals a command module returns or assigns as exit codes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and type(node.value.value) is int:
            for target in node.targets:
                if isinstance(target, ast.Name) and (target.id.startswith("EXIT_") or target.id == "exit_code"):
                    constants[target.id] = node.value.value
    codes = set(constants.values())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and inner.value is not None:
                    for leaf in ast.walk(inner.value):
                        if isinstance(leaf, ast.Constant) and type(leaf.value) is int:
                            codes.add(leaf.value)
                        elif isinstance(leaf, ast.Name) and leaf.id in constants:
                            codes.add(constants[leaf.id])
    return codes


def test_every_exit_code_a_command_can_return_is_in_the_table() -> None:
    import gptdesk
    from gptdesk.cli.exits import EXIT_CODES
    from gptdesk.cli.main import SUBCOMMAND_MODULES
    from gptdesk.errors import GptDeskError

    table = {code for code, _ in EXIT_CODES}
    # Every typed error's code: each face turns them into its exit status.
    for module in ["gptdesk.cli.main", *SUBCOMMAND_MODULES]:
        __import__(module)
    for found in (REPO / "src" / "gptdesk").rglob("*.py"):
        if "exit_code" in found.read_text(encoding="utf-8"):
            name = ".".join(found.relative_to(REPO / "src").with_suffix("").parts)
            __import__(name)
    pending: list[type[GptDeskError]] = [GptDeskError]
    errors: set[type[GptDeskError]] = set()
    while pending:
        cls = pending.pop()
        errors.add(cls)
        pending.extend(cls.__subclasses__())
    assert len(errors) > 20
    missing = {cls.__name__: cls.exit_code for cls in errors if cls.exit_code not in table}
    assert not missing, f"error classes whose exit code the table lacks: {missing}"
    # Every code a command function returns itself.
    sources = [REPO / "src" / (m.replace(".", "/") + ".py") for m in ["gptdesk.cli.main", *SUBCOMMAND_MODULES]]
    sources += [Path(gptdesk.__file__).parent / "cli" / "console.py"]
    for source in sources:
        stray = _returned_codes(source) - table
        assert not stray, f"{source.name} returns {stray}, which the exit-code table does not list"


def test_desktop_entry_failures_use_a_listed_code(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "icons").write_text("a file where the icons folder should be")
    result = _run("desktop-entry", "install", "--data-dir", str(data))
    assert result.code == 7, result
    helped = _run("--help", env=_env(GPTDESK_LANG="en"))
    assert "    7  `desktop-entry` cannot write or remove the menu entry" in helped.out
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "  - 7 `desktop-entry` cannot write or remove the menu entry" in readme


# -- 7: file names that are not UTF-8; messages name the real argument -----------------------------------


def test_perplexity_takes_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/name\xff\xfe.txt"
    with open(name, "w", encoding="utf-8") as f:
        f.write(_sample_text(1200))
    result = _run("perplexity", name, "--engine", "transformers", "--context", "128")
    assert result.code == 0, result
    assert "bits per character" in result.out and "--file" not in result.err, result
    assert "name\\xff\\xfe.txt" in result.err, result  # the progress names it, its bytes shown as escapes


def test_a_missing_file_with_a_non_utf8_name_is_named_with_escapes(tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/gone\xff.txt"
    result = _run("perplexity", name)
    assert result.code == 2, result
    assert "Cannot read" in result.err and "gone\\xff.txt" in result.err and "Internal error" not in result.err, result


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["models", "rm", b"\xff"], "The argument NAME is not valid UTF-8 text"),
        (["models", "pull", b"\xff"], "The argument NAME is not valid UTF-8 text"),
        (["tokens", b"\xff"], "The prompt is not valid UTF-8 text"),
        (["generate", "x", "--stop", b"\xff"], "The value of --stop is not valid UTF-8 text"),
        (["explore", "x", "--vary", b"\xff"], "The value of --vary is not valid UTF-8 text"),
    ],
)
def test_a_message_names_the_argument_as_typed(args: list[str | bytes], named: str) -> None:
    result = _run(*args)
    assert result.code == 2, result
    assert named in result.err and "--name" not in result.err and "--text" not in result.err, result


# -- 8: a failed desktop-entry install leaves nothing behind ------------------------------------------------


def test_a_failed_desktop_entry_install_removes_what_it_wrote(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "icons").write_text("a file where the icons folder should be")
    result = _run("desktop-entry", "install", "--data-dir", str(data))
    assert result.code == 7, result
    assert "Nothing was installed" in result.err, result
    assert sorted(p.name for p in data.rglob("*")) == ["icons"]


# -- 9: explore --save prints its cells even when the history cannot be written ---------------------------


def test_explore_prints_its_results_when_the_save_fails(tmp_path: Path) -> None:
    blocked = tmp_path / "data-file"
    blocked.write_text("a file where the data folder should be")
    result = _run(
        "explore",
        "Жили-были",
        "--vary",
        "temperature=0.5,1.0",
        "--max-new-tokens",
        "4",
        "--engine",
        "transformers",
        "--save",
        env=_env(GPTDESK_DATA_DIR=str(blocked)),
    )
    assert result.code == 5, result
    assert result.out.count("== temperature") == 2 and result.out.count("Жили-были") == 2, result
    assert "the grid was not saved" in result.err and "The results above are complete" in result.err, result


# -- 10: a full cache disk is called a full disk, with the room needed --------------------------------------


@needs_mounts
def test_a_full_cache_disk_says_so_with_the_space_needed(tmp_path: Path) -> None:
    cache = tmp_path / "small-cache"
    cache.mkdir()
    result = _in_mount(
        cache,
        "size=1m",
        "generate",
        "Привет",
        "--engine",
        "llamacpp",
        "--max-new-tokens",
        "2",
        env=_env(GPTDESK_CACHE_DIR=str(cache)),
    )
    assert result.code == 4, result
    assert "The disk is full" in result.err and "It needs about" in result.err, result
    assert "make it writable" not in result.err and "Internal error" not in result.err, result
