"""The README's and docs/*.md's `gptdesk` commands run as written, on the embedded model and the default engine.

The convention (the parser is tests/docs/examples.py):

- Every `gptdesk …` line of a fenced block with the language `sh`, `bash`, `shell`, `console` (its `$ ` lines)
  or none is one test case, named `FILE:LINE`. It runs through bash (`-o pipefail`), as written, and must exit
  0. A trailing backslash continues a line; pipes (`echo x | gptdesk generate -`), `&&` and `NAME=value`
  prefixes work as in a shell. `gptdesk` and `.venv/bin/gptdesk` are this checkout's command.
- What the tests provide, instead of the internet and a person:
  - a fake Hugging Face hub on 127.0.0.1 (`HF_ENDPOINT`, tests/models/hub_server.py) serving a tiny random
    GPT-2 under every catalog id, so `--model rugpt3large` and `models pull` download for real, in seconds;
  - `127.0.0.1:8000` in an example means the document's own `gptdesk serve`, which runs on a free port (the
    test's `gptdesk` passes `--port` to a `serve` that names none). A `serve` example passes when the server
    answers `/v1/models`; it keeps serving the rest of its document and must exit 0 on Ctrl+C at the end;
  - `my_text.txt` in the working folder (held-out prose that ships with the package);
  - `GROUP_ID` is the first group that `gptdesk explore --list` prints;
  - each document has its own history, home and working folder; converted models are shared.
    `GPTDESK_THREADS=1`, because the suite shares its cores with other jobs (docs/fast-engine.md, Threads).
- Examples of one block run in order in the same sandbox: running one alone first runs the block's earlier
  examples (`story grow 1` needs `story new`).
- Not run, and why, said in the document itself: `<!-- not run: REASON -->` as the last non-blank line
  before a fence (the whole block), or `not run: REASON` at the end of a line's `#` comment (that line).
  Use it for what needs a GPU server, the internet, a placeholder the tests cannot fill, or many minutes,
  and for a bare `gptdesk`, which opens the window (tests/ui/desktop starts the real command on a display).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import build_tiny_gpt2
from tests.docs.examples import Example, blocks, documents, examples, gptdesk_arguments, simple_commands
from tests.models.hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[2]
ALL = [example for document in documents(ROOT) for example in examples(document)]
RUN = [example for example in ALL if example.not_run is None]
TIMEOUT_S = 500  # one command, on a loaded 2-core machine (the Sber demo on llama.cpp: about 100 s there)

WRAPPER = '''#!{python}
"""This checkout's `gptdesk` for the doc examples: 127.0.0.1:8000 is the sandbox's own server."""
import os, sys

port = os.environ["GPTDESK_DOCS_PORT"]
args = [a.replace("127.0.0.1:8000", "127.0.0.1:" + port).replace("localhost:8000", "localhost:" + port)
        for a in sys.argv[1:]]
words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "--lang")]
if words[:1] == ["serve"] and not any(a == "--port" or a.startswith("--port=") for a in args):
    args += ["--port", port]
os.execv(sys.executable, [sys.executable, "-m", "gptdesk", *args])
'''


@dataclass
class World:
    """What every document shares: the fake hub, this checkout's command, the converted models."""

    hub: FakeHub
    bin: Path
    cache: Path
    text: Path


@dataclass
class Sandbox:
    """One document's history, home, working folder, port and servers."""

    world: World
    root: Path
    port: int
    done: set[tuple[Path, int]] = field(default_factory=set)
    services: list[tuple[Example, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    @property
    def cwd(self) -> Path:
        return self.root / "work"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GPTDESK_", "XDG_"))}
        env.update(
            PATH=f"{self.world.bin}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=str(ROOT / "src"),
            HOME=str(self.root / "home"),
            GPTDESK_DATA_DIR=str(self.root / "data"),
            GPTDESK_CACHE_DIR=str(self.world.cache),
            GPTDESK_LANG="en",
            GPTDESK_THREADS="1",
            GPTDESK_DOCS_PORT=str(self.port),
            HF_HOME=str(self.root / "hf"),
            HF_ENDPOINT=self.world.hub.url,
            QT_QPA_PLATFORM="offscreen",
        )
        return env

    def fill(self, command: str) -> str:
        """The placeholders the tests can fill (see the module's docstring)."""
        if re.search(r"\bGROUP_ID\b", command):
            listed = self.shell("gptdesk explore --list")
            assert listed.returncode == 0 and listed.stdout.strip(), _report("gptdesk explore --list", listed)
            command = re.sub(r"\bGROUP_ID\b", listed.stdout.split()[0], command)
        return command

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.cwd,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT_S,
        )

    def run(self, example: Example) -> None:
        """Run one example (a server in the background); fail with its output unless it exits 0."""
        command = self.fill(example.command)
        if any(_subcommand(args) == "serve" for args in _gptdesk_calls(command)):
            self.serve(example, command)
        else:
            result = self.shell(command)
            assert result.returncode == 0, _report(example.label(ROOT), result)
        self.done.add((example.path, example.line))

    def serve(self, example: Example, command: str) -> None:
        log = self.root / f"serve-{example.line}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", "exec " + command],
                cwd=self.cwd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.services.append((example, process, log))
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert process.poll() is None, f"{example.label(ROOT)} ended ({process.returncode}):\n{_tail(log)}"
            assert time.monotonic() < deadline, f"{example.label(ROOT)} never answered:\n{_tail(log)}"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/v1/models", timeout=5) as answer:
                    models = json.load(answer)
                break
            time.sleep(0.5)
        assert models["data"], models

    def close(self) -> list[str]:
        """Stop the servers with Ctrl+C; the ones that did not exit 0, with their output."""
        failures = []
        for example, process, log in self.services:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
            if code != 0:
                failures.append(f"{example.label(ROOT)} exited {code} on Ctrl+C:\n{_tail(log)}")
        return failures


def _gptdesk_calls(command: str) -> list[list[str]]:
    return [args for words in simple_commands(command) if (args := gptdesk_arguments(words)) is not None]


def _subcommand(args: list[str]) -> str | None:
    """The first word that is neither an option nor `--lang`'s value: None opens the window."""
    for i, word in enumerate(args):
        if word.startswith("-"):
            if word in ("--help", "-h", "--version"):
                return word
            continue
        if i > 0 and args[i - 1] == "--lang":
            continue
        return word
    return None


def _tail(log: Path, limit: int = 4000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-limit:]


def _report(label: str, result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{label} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from gptdesk.models.catalog import CATALOG, EMBEDDED_ID

    root = tmp_path_factory.mktemp("docs-world")
    tiny = build_tiny_gpt2(root / "tiny-gpt2", n_positions=2048)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "gptdesk"
    wrapper.write_text(WRAPPER.format(python=sys.executable), encoding="utf-8")
    wrapper.chmod(0o755)
    text = ROOT / "src" / "gptdesk" / "texts" / "heldout_ru.txt"
    with FakeHub() as hub:
        for entry in CATALOG:
            if entry.id != EMBEDDED_ID:
                for repo_id in (entry.id, *entry.aliases):
                    hub.add_repo(repo_id, tiny)
        yield World(hub, bin_dir, root / "cache", text)


@pytest.fixture(scope="session")
def sandboxes(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Sandbox]]:
    made: dict[Path, Sandbox] = {}
    yield made
    failures = [failure for sandbox in made.values() for failure in sandbox.close()]
    assert not failures, "\n\n".join(failures)


def _sandbox(document: Path, world: World, sandboxes: dict[Path, Sandbox], tmp: pytest.TempPathFactory) -> Sandbox:
    if document not in sandboxes:
        root = tmp.mktemp("docs-" + document.stem)
        sandbox = Sandbox(world, root, _free_port())
        sandbox.cwd.mkdir()
        (root / "home").mkdir()
        shutil.copy(world.text, sandbox.cwd / "my_text.txt")
        (sandbox.cwd / ".venv" / "bin").mkdir(parents=True)
        (sandbox.cwd / ".venv" / "bin" / "gptdesk").symlink_to(world.bin / "gptdesk")
        sandboxes[document] = sandbox
    return sandboxes[document]


@pytest.mark.parametrize("example", RUN, ids=[example.label(ROOT) for example in RUN])
def test_doc_example_runs(
    example: Example, world: World, sandboxes: dict[Path, Sandbox], tmp_path_factory: pytest.TempPathFactory
) -> None:
    calls = _gptdesk_calls(example.command)
    assert all(_subcommand(args) is not None for args in calls), (
        f"{example.label(ROOT)} opens the window: mark it `<!-- not run: … -->` (see this module's docstring)"
    )
    sandbox = _sandbox(example.path, world, sandboxes, tmp_path_factory)
    for earlier in RUN:
        same_block = earlier.path == example.path and earlier.block == example.block
        if same_block and earlier.line < example.line and (earlier.path, earlier.line) not in sandbox.done:
            sandbox.run(earlier)
    sandbox.run(example)


def test_the_docs_have_examples_and_each_not_run_says_why() -> None:
    """A parser that finds nothing would pass every doc silently; a marker must give a reason and sit on a block."""
    assert {example.path.name for example in RUN} >= {"README.md", "lab.md", "models.md", "serving.md"}
    assert len(RUN) >= 30, [example.label(ROOT) for example in RUN]
    for example in ALL:
        assert example.not_run is None or example.not_run.strip(), f"{example.label(ROOT)}: a marker without a reason"
    for document in documents(ROOT):
        marked = {block.line for block in blocks(document) if block.not_run is not None}
        lines = document.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if re.match(r"\s*<!--\s*not run", line):
                following = next((n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), None)
                assert following in marked, f"{document.name}:{number}: a not-run marker that is not on a block"
