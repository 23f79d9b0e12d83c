"""The CLI against hostile or unlucky input and output: escapes, bad bytes, closed pipes, full disks, Ctrl+C."""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptdesk.cli.main import main
from gptdesk.settings.escapes import decode_escapes

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **extra}
    env.pop("PYTHONIOENCODING", None)
    env.update(extra)
    return env


def _gptdesk(*args: str | bytes) -> list[str | bytes]:
    return [sys.executable, "-m", "gptdesk", *args]


def _run(*args: str | bytes, timeout: float = 300, **popen: object) -> subprocess.CompletedProcess[bytes]:
    env = popen.pop("env", None) or _env()
    popen.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(_gptdesk(*args), stderr=subprocess.PIPE, timeout=timeout, env=env, **popen)  # type: ignore[call-overload,no-any-return]


# -- item 7: stop strings with escapes and Cyrillic ------------------------------------------------


def test_escapes_are_decoded_and_cyrillic_is_left_alone() -> None:
    assert decode_escapes("привет\\n") == "привет\n"
    assert decode_escapes("старину.\\n") == "старину.\n"
    assert decode_escapes("\\t\\r\\\\\\'\\\"") == "\t\r\\'\""
    assert decode_escapes("\\x41\\u0416\\U0001F600\\101\\0") == "AЖ😀A\0"
    assert decode_escapes("\\N{CYRILLIC CAPITAL LETTER ZHE}") == "Ж"
    assert decode_escapes("é — ёжик") == "é — ёжик"  # Latin-1 and beyond, untouched
    assert decode_escapes("\\q\\д") == "\\q\\д"  # unknown escapes stay as typed, as in Python


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ("\\x", "\\x"),
        ("a\\xZ1", "\\xZ1"),
        ("\\u12", "\\u12"),
        ("\\U0011FFFF", "\\U0011FFFF"),
        ("\\ud800", "\\ud800"),
        ("\\N{NO SUCH NAME}", "\\N{NO SUCH NAME}"),
        ("конец\\", "\\"),
    ],
)
def test_a_malformed_escape_is_refused_and_named(bad: str, named: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(named)}$"):
        decode_escapes(bad)


def test_stop_string_with_cyrillic_and_a_newline_is_stored_as_typed(tiny_model_dir: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = ["generate", "Привет", "--model", str(tiny_model_dir), "--engine", "transformers", "--max-new-tokens", "2"]
    code = main([*args, "--stop", "привет\\n", "--stop", "конец", "--json"], out, err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["settings"]["stop"] == ["привет\n", "конец"]


def test_a_bad_escape_in_stop_exits_2_naming_the_value() -> None:
    result = _run("generate", "Привет", "--stop", "\\x")
    assert result.returncode == 2, result.stderr
    err = result.stderr.decode()
    assert "--stop '\\x'" in err and "Internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("engine", ["transformers", "llamacpp"])
def test_a_cyrillic_stop_string_ending_in_a_newline_stops_generation(engine: str) -> None:
    """The issue's command, on each engine: find «word.\\n» in the free text, then stop on it."""
    base = ["generate", "Москва — столица", "--greedy", "--max-new-tokens", "40", "--seed", "1"]
    base += ["--temperature", "1", "--top-k", "0", "--top-p", "1", "--engine", engine, "--json"]
    free = _run(*base)
    assert free.returncode == 0, free.stderr
    text = json.loads(free.stdout)["text"]
    found = re.search(r"([А-Яа-яЁё]+[.,!?]?)\n", text)
    assert found, f"the greedy text has no Cyrillic word before a new line: {text!r}"
    stop = found.group(1) + "\\n"
    stopped = _run(*base, "--stop", stop)
    assert stopped.returncode == 0, stopped.stderr
    result = json.loads(stopped.stdout)
    assert result["finish_reason"] == "stop"
    assert result["settings"]["stop"] == [found.group(0)]
    assert result["text"] == text[: found.start()]
    assert result["generated_tokens"] < 40


# -- item 8: tiny temperatures ------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", ["1e-40", "1e-300", "0.049"])
def test_a_temperature_below_the_floor_is_refused(temperature: str) -> None:
    err = io.StringIO()
    args = ["generate", "Привет", "--temperature", temperature, "--top-k", "0", "--top-p", "1"]
    assert main([*args, "--repetition-penalty", "1"], io.StringIO(), err) == 2
    assert f"temperature = {float(temperature)!r} is below 0.05" in err.getvalue()
    ru = io.StringIO()
    assert main(["--lang", "ru", *args], io.StringIO(), ru) == 2
    assert "меньше 0.05" in ru.getvalue()


# -- item 9: closed pipes, full disks, encodings without Cyrillic -----------------------------------


def _quiet_after_closing(cmd: list[str | bytes], keep: int, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run, read `keep` bytes of the output, close the pipe (as `| head -c` does), collect the rest."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), bufsize=0
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    if stdin is not None:
        proc.stdin.write(stdin)
    proc.stdin.close()
    head = b""
    while len(head) < keep:
        chunk = proc.stdout.read(keep - len(head))
        if not chunk:
            break
        head += chunk
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    return proc.wait(timeout=300), head, err


def test_generate_into_a_closed_pipe_exits_quietly() -> None:
    code, head, err = _quiet_after_closing(_gptdesk("generate", "Жили-были", "--max-new-tokens", "300"), 20)
    assert head.decode(errors="replace").startswith("Жили-были")
    assert code == 141, err.decode()
    assert err == b""


def test_tokens_into_a_closed_pipe_exits_quietly() -> None:
    text = ("Жили-были у старика со старухой " * 3000).encode()  # a table far beyond a pipe's buffer
    code, head, err = _quiet_after_closing(_gptdesk("tokens", "-"), 40, stdin=text)
    assert head.startswith(b"   #")
    assert code == 141, err.decode()
    assert err == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    "args",
    [
        ["generate", "Привет", "--max-new-tokens", "5"],
        ["tokens", "Привет"],
        ["models"],
        ["models", "--json"],
        ["--help"],
    ],
)
def test_a_full_disk_is_named(args: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        result = _run(*args, stdout=full)
    err = result.stderr.decode()
    assert result.returncode == 5, err
    assert "no space is left" in err and "Traceback" not in err and "Internal error" not in err


@pytest.mark.parametrize(
    "args", [["generate", "Привет", "--max-new-tokens", "5"], ["tokens", "Привет"], ["--lang", "ru", "--help"]]
)
def test_an_output_encoding_without_cyrillic_is_named(args: list[str]) -> None:
    result = _run(*args, env=_env(PYTHONIOENCODING="ascii"))
    err = result.stderr.decode()
    assert result.returncode == 5, err
    assert "encoding ascii" in err and "PYTHONIOENCODING=utf-8" in err and "Traceback" not in err


def test_an_encoding_error_in_russian_falls_back_to_english_readable_text() -> None:
    result = _run("--lang", "ru", "models", env=_env(PYTHONIOENCODING="ascii"))
    err = result.stderr.decode()
    assert result.returncode == 5, err
    assert err.startswith("Error: The standard output uses the encoding ascii")


# -- item 10: invalid UTF-8 in the arguments and on standard input ---------------------------------


@pytest.mark.parametrize("command", ["generate", "tokens"])
def test_invalid_utf8_in_the_prompt_exits_2(command: str) -> None:
    result = _run(command, b"\xff\xfe\x80abc")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "The prompt is not valid UTF-8 text" in err and "\\xff\\xfe\\x80abc" in err


@pytest.mark.parametrize("command", ["generate", "tokens"])
def test_invalid_utf8_on_standard_input_exits_2(command: str) -> None:
    result = _run(command, "-", input=b"\xd0\x9f\xff\xfe\x80abc")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "The prompt (standard input) is not valid UTF-8 text" in err and "at byte 2" in err


def test_invalid_utf8_in_an_option_names_the_option() -> None:
    result = _run("generate", "Привет", "--stop", b"\xff")
    assert result.returncode == 2
    assert "The value of --stop is not valid UTF-8 text" in result.stderr.decode()


def test_a_model_folder_may_have_any_bytes_in_its_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path) + b"/\xcf\xf0\xe8\xe2\xe5\xf2"  # "Привет" in cp1251: a valid Linux name
    os.symlink(tiny_model_dir, folder)
    result = _run("generate", "Привет", "--model", folder, "--engine", "transformers", "--max-new-tokens", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith("Привет")


# -- item 11: Ctrl+C at any moment of start-up ------------------------------------------------------


def _classify(code: int, out: str, err: str) -> str:
    if code == 130 and out == "" and err.strip() == "Interrupted.":
        return "start-up"
    if code == 130 and out.startswith("Жили-были") and ", cancelled;" in err and "Interrupted" not in err:
        tokens = int(err.split("[")[-1].split()[0])
        return "generation" if 0 <= tokens < 500 else "ignored"
    if code in (-signal.SIGINT, 1) and "KeyboardInterrupt" in err and _before_the_handler(err):
        # Still inside Python's own start-up (site, runpy), before the first lines of GPT Desk took
        # over Ctrl+C: no program can handle that; it lasts tens of milliseconds on an idle machine.
        return "before the program"
    return "wrong"


def _before_the_handler(traceback: str) -> bool:
    """Whether every GPT Desk frame of a traceback is before gptdesk.cli.launch installs its handler."""

    def line_of(module: str, start: str) -> int:
        lines = (REPO / "src" / "gptdesk" / module).read_text(encoding="utf-8").splitlines()
        return next(n for n, line in enumerate(lines, start=1) if line.startswith(start))

    installed_at = line_of("launch.py", "_signal.signal(")
    imports_launch = line_of("__main__.py", "from gptdesk.cli.launch import")
    for path, line in re.findall(r'File "([^"]+)", line (\d+)', traceback):
        if "/gptdesk/" not in path:
            continue
        if path.endswith("gptdesk/cli/launch.py") and int(line) < installed_at:
            continue
        if path.endswith("gptdesk/__main__.py") and int(line) == imports_launch:
            continue
        return False
    return True


def test_ctrl_c_during_start_up_always_exits_130_with_only_interrupted() -> None:
    """The issue saw 1 run in 60 abort (SIGABRT from pybind11), 3 in 60 report internal errors, 1 ignore it.

    Children run in parallel batches and get SIGINT at random moments of importing torch and
    transformers, loading the model and the first tokens. The default 120 runs (about a minute on
    two busy cores) catch a 1-in-60 failure with 87% certainty; GPTDESK_TEST_CTRL_C_RUNS=300 with 99%.
    """
    runs = int(os.environ.get("GPTDESK_TEST_CTRL_C_RUNS", "120"))
    parallel = 6
    rng = random.Random()
    outcomes: dict[str, int] = {}
    wrong: list[tuple[float, int, str, str]] = []
    env = _env(GPTDESK_LANG="en")
    for start in range(0, runs, parallel):
        batch = []
        for n in range(min(parallel, runs - start)):
            # Mostly the engine (torch, pybind11); some on auto (llama.cpp through ctypes, a conversion).
            engine = "auto" if n == parallel - 1 else "transformers"
            cmd = _gptdesk("generate", "Жили-были", "--max-new-tokens", "500", "--engine", engine)
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            batch.append((proc, time.monotonic(), rng.uniform(0.3, 3.0)))
        for proc, started, delay in sorted(batch, key=lambda b: b[1] + b[2]):
            time.sleep(max(0.0, started + delay - time.monotonic()))
            proc.send_signal(signal.SIGINT)
        for proc, _, delay in batch:
            out_b, err_b = proc.communicate(timeout=300)
            out, err = out_b.decode(errors="replace"), err_b.decode(errors="replace")
            kind = _classify(proc.returncode, out, err)
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if kind in ("wrong", "ignored"):
                wrong.append((delay, proc.returncode, out[:80], err[-2000:]))
    print(f"Ctrl+C outcomes over {runs} runs: {outcomes}")
    assert not wrong, wrong
    assert outcomes.get("start-up", 0) >= runs // 2, outcomes  # the interrupts did land in GPT Desk's start-up


def test_ctrl_c_while_a_hub_request_hangs_exits_at_once() -> None:
    """A mirror that accepts and never answers: the first Ctrl+C ends the wait (item 13)."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        env = _env(HF_ENDPOINT=f"http://127.0.0.1:{port}")
        env.pop("HF_HUB_OFFLINE", None)
        proc = subprocess.Popen(
            _gptdesk("generate", "Привет", "--model", "rugpt3small"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "downloading it" in line, line
        listener.settimeout(120)
        conn, _ = listener.accept()  # the request arrived and now waits for an answer that never comes
        with conn:
            pressed = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
            waited = time.monotonic() - pressed
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 130, err
    assert err.strip() == "Interrupted."
    print(f"Ctrl+C ended the stalled request after {waited:.2f} s")


# -- item 15: every exit code is documented, the same in --help and the README ---------------------


def _listed_codes(lines: list[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for line in lines:
        match = re.match(r"^\s+(?:- )?(\d{1,3})\s+(\S.*)$", line)
        if match:
            found[int(match.group(1))] = match.group(2)
    return found


def test_help_and_readme_list_the_same_exit_codes() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("- Exit codes"))
    end = next(i for i in range(start + 1, len(readme)) if not readme[i].startswith("  "))
    in_readme = _listed_codes(readme[start + 1 : end])
    helped = _run("--help", env=_env(GPTDESK_LANG="en"))
    assert helped.returncode == 0
    help_lines = helped.stdout.decode().split("exit status:")[1].splitlines()
    in_help = _listed_codes(help_lines)
    assert set(in_readme) == set(in_help) == {0, 1, 2, 3, 4, 5, 6, 7, 130, 141}
    for code, text in in_help.items():
        assert in_readme[code].startswith(text.split(" (")[0].split(":")[0]), (code, text, in_readme[code])


def test_no_display_exits_with_the_documented_code_6() -> None:
    env = _env(DISPLAY="", WAYLAND_DISPLAY="")
    env.pop("QT_QPA_PLATFORM", None)
    result = _run(env=env)
    assert result.returncode == 6, result.stderr
    assert "No graphical display" in result.stderr.decode()
    helped = _run("--help", env=_env(GPTDESK_LANG="en")).stdout.decode()
    assert "    6  no graphical display for the window" in helped


def test_a_closed_standard_output_or_error_is_no_internal_error() -> None:
    """`gptdesk … >&-` and `2>&-`: Python then has no sys.stdout (or sys.stderr) at all."""
    no_stdout = subprocess.run(
        _gptdesk("models"), stderr=subprocess.PIPE, env=_env(), preexec_fn=lambda: os.close(1), timeout=300
    )
    err = no_stdout.stderr.decode()
    assert no_stdout.returncode == 5, err
    assert err.startswith("Error: The standard output cannot be written (Bad file descriptor)")
    no_stderr = subprocess.run(
        _gptdesk("generate", "Привет", "--max-new-tokens", "3"),
        stdout=subprocess.PIPE,
        env=_env(),
        preexec_fn=lambda: os.close(2),
        timeout=300,
    )
    assert no_stderr.returncode == 0
    assert no_stderr.stdout.decode().startswith("Привет")
