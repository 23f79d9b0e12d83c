"""The `gptdesk` command end to end: real subprocesses on the embedded model and tiny models."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gptdesk.cli.main import main


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gptdesk", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_generate_on_the_embedded_model_prints_russian() -> None:
    result = _run("generate", "Москва — столица", "--seed", "7", "--max-new-tokens", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Москва — столица")
    continuation = result.stdout[len("Москва — столица") :]
    cyrillic = sum("а" <= ch.lower() <= "я" or ch.lower() == "ё" for ch in continuation)
    assert cyrillic >= 20, continuation
    assert "seed 7" in result.stderr


def test_generate_json_is_reproducible() -> None:
    first = _run("generate", "Жили-были", "--json", "--seed", "11", "--max-new-tokens", "20", "--preset", "creative")
    second = _run("generate", "Жили-были", "--json", "--seed", "11", "--max-new-tokens", "20", "--preset", "creative")
    assert first.returncode == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["text"] == b["text"]
    assert a["seed"] == 11
    assert a["model"] == "embedded"
    assert a["settings"]["temperature"] == 1.2
    assert a["settings"]["max_new_tokens"] == 20
    assert 0 < a["generated_tokens"] <= 20
    assert a["timings"]["total_s"] > 0


def test_tokens_prints_the_table_like_the_hobby_script(tiny_model_dir: Path) -> None:
    out = io.StringIO()
    code = main(["tokens", "Александр Сергеевич Пушкин родился в ", "--model", str(tiny_model_dir)], out, io.StringIO())
    assert code == 0
    lines = out.getvalue().splitlines()
    assert "28810" in lines[1] and "«Александр»" in lines[1]
    assert "20857" in lines[2] and "« Сергеевич»" in lines[2]
    as_json = io.StringIO()
    main(["tokens", "Пушкин", "--json", "--model", str(tiny_model_dir)], as_json, io.StringIO())
    pieces = json.loads(as_json.getvalue())
    assert "".join(p["piece"] for p in pieces) == "Пушкин"
    assert all(isinstance(p["id"], int) for p in pieces)


def test_bad_settings_exit_2_with_a_message() -> None:
    err = io.StringIO()
    code = main(["generate", "Привет", "--temperature", "9"], io.StringIO(), err)
    assert code == 2
    assert "temperature = 9.0" in err.getvalue()


def test_empty_prompt_exit_2() -> None:
    err = io.StringIO()
    assert main(["generate", "   "], io.StringIO(), err) == 2
    assert "prompt is empty" in err.getvalue()


def test_missing_model_exit_3(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["generate", "Привет", "--model", str(tmp_path / "none")], io.StringIO(), err) == 3
    assert "does not exist" in err.getvalue()


def test_russian_messages(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["--lang", "ru", "generate", "Привет", "--top-p", "0"], io.StringIO(), err) == 2
    assert "top_p" in err.getvalue() and "Неверные настройки" in err.getvalue()


def test_models_lists_the_catalog() -> None:
    out = io.StringIO()
    assert main(["models", "--json"], out, io.StringIO()) == 0
    data = json.loads(out.getvalue())
    ids = [m["id"] for m in data["models"]]
    assert "ai-forever/rugpt3large_based_on_gpt2" in ids
    large = next(m for m in data["models"] if m["name"] == "rugpt3large")
    assert 7.5e8 < large["params"] < 7.7e8
    assert large["ram_bytes"]["bfloat16"] < large["ram_bytes"]["float32"]
    embedded = next(m for m in data["models"] if m["id"] == "embedded")
    assert embedded["local_path"] is not None
    table = io.StringIO()
    main(["models"], table, io.StringIO())
    assert "rugpt3medium" in table.getvalue()


def test_ctrl_c_stops_cleanly_and_keeps_the_text() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gptdesk",
            "generate",
            "Жили-были",
            "--max-new-tokens",
            "400",
            "--min-new-tokens",
            "400",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    seen = ""
    while len(seen) < len("Жили-были") + 10:  # wait for tokens to stream, then press Ctrl+C
        ch = proc.stdout.read(1)
        assert ch, proc.stderr.read() if proc.stderr else ""
        seen += ch
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled" in err
    tokens = int(err.split("[")[-1].split()[0])
    assert 0 < tokens < 400
    assert (seen + out).startswith("Жили-были")


@pytest.mark.parametrize("command", [["--help"], ["generate", "--help"]])
def test_help_explains_the_parameters(command: list[str]) -> None:
    result = _run(*command, env={"GPTDESK_LANG": "ru"})
    assert result.returncode == 0
    if command[0] == "generate":
        assert "--num-beams" in result.stdout
        assert "лучей" in result.stdout or "луч" in result.stdout
