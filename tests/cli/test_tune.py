"""`gptdesk tune` and `gptdesk adapters ls|show|rm` as users run them."""

from __future__ import annotations

import io
import json
from pathlib import Path

from gptdesk.cli.main import main

SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ru_literature" / "prose" / "Chekhov"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_tune_prints_the_figures_and_the_adapter_is_listed_shown_and_removed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    text = tmp_path / "chekhov.txt"
    text.write_text((SOURCE / "Дама с собачкой.txt").read_text(encoding="utf-8")[:10000], encoding="utf-8")
    code, out, err = run(
        "tune", str(text), "--model", str(tiny_model_dir), "--epochs", "0.1", "--seq-len", "32", "--rank", "2"
    )
    assert code == 0, err
    assert "Memory estimate:" in err and "held out" in err
    assert "Held-out bits/char:" in out and "Target (held-out bits/char down by >= 5%)" in out
    assert "gptdesk generate --adapter chekhov" in out

    code, out, _ = run("adapters", "ls")
    assert code == 0 and "chekhov" in out and str(tiny_model_dir) in out
    code, out, _ = run("adapters", "show", "chekhov", "--json")
    shown = json.loads(out)
    assert shown["rank"] == 2 and shown["texts_files"] == ["chekhov.txt"] and shown["steps"] >= 1

    code, _, err = run("tune", str(text), "--model", str(tiny_model_dir), "--epochs", "0.1", "--seq-len", "32")
    assert code == 2 and "exists already" in err

    code, out, _ = run("adapters", "rm", "chekhov")
    assert code == 0 and "Removed adapter 'chekhov'" in out
    code, _, err = run("adapters", "show", "chekhov")
    assert code == 3 and "No adapter named 'chekhov'" in err


def test_tune_refuses_a_non_utf8_file_with_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "win.txt"
    bad.write_bytes("Привет, мир.\n".encode("cp1251") * 2000)
    code, _, err = run("tune", str(bad), "--epochs", "1")
    assert code == 2 and "iconv -f cp1251 -t utf-8" in err and str(bad) in err
