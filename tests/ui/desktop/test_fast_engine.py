"""Without llama-cpp-python the app runs on transformers and says once what the fast engine would give."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gptdesk.cli.main import main
from gptdesk.ui.desktop.fast_engine import SPEEDUP_LARGE, fast_engine_notice, fast_requirement
from tests.ui.desktop.conftest import python_env

# The interpreter as a user without the `fast` extra has it: llama_cpp cannot be imported.
_WITHOUT_LLAMA = (
    "import sys; sys.modules['llama_cpp'] = None; from gptdesk.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def test_generate_says_once_on_stderr_that_the_fast_engine_is_missing() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LLAMA, "generate", "Жили-были", "--max-new-tokens", "4", "--seed", "1"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Жили-были") and len(proc.stdout.strip()) > len("Жили-были")
    assert proc.stderr.count("llama.cpp) is not installed") == 1
    assert f"about {SPEEDUP_LARGE:g}× faster" in proc.stderr
    assert f"-m pip install {fast_requirement()}" in proc.stderr
    assert "on transformers" in proc.stderr.splitlines()[-1]  # the summary: it really ran on transformers
    assert "stdout" not in proc.stdout and "not installed" not in proc.stdout  # notices never mix into the text


def test_explicit_transformers_engine_is_not_nagged() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LLAMA, "generate", "Жили", "--engine", "transformers", "--max-new-tokens", "2"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "not installed" not in proc.stderr


def test_no_notice_when_the_fast_engine_is_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert fast_engine_notice() is None
    assert main(["generate", "Жили", "--max-new-tokens", "2", "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "not installed" not in err and "on llamacpp" in err


def test_notice_texts_name_the_ratio_and_the_command_in_both_languages() -> None:
    notice = fast_engine_notice(installed=False)
    assert notice is not None
    assert "5.4×" in notice.en and "5,4 раза" in notice.ru
    assert fast_requirement() == "llama-cpp-python==0.3.36"  # the pin of pyproject's `fast` extra
    assert fast_requirement() in notice.en and fast_requirement() in notice.ru
    assert fast_engine_notice(installed=True) is None
