"""llama.cpp's thread count: one per physical core, or GPTDESK_THREADS (for a machine kept busy by other work)."""

from __future__ import annotations

import io

import pytest

from gptdesk.engine import load_engine
from gptdesk.engine.llamacpp.native import default_threads, physical_cores
from gptdesk.errors import InvalidInputError


def test_the_environment_sets_the_threads_of_every_load(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_threads() == physical_cores() >= 1
    monkeypatch.setenv("GPTDESK_THREADS", "1")
    assert default_threads() == 1
    with load_engine(None, engine="auto") as engine:
        assert engine.fast.threads == 1  # type: ignore[attr-defined]
    monkeypatch.setenv("GPTDESK_THREADS", "auto")
    assert default_threads() == physical_cores()


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_value_names_itself_and_the_fix(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GPTDESK_THREADS", value)
    with pytest.raises(InvalidInputError) as err:
        default_threads()
    assert f"GPTDESK_THREADS = '{value}'" in err.value.text.en and "'auto'" in err.value.text.en
    assert f"GPTDESK_THREADS = «{value}»" in err.value.text.ru


def test_the_cli_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from gptdesk.cli.main import main

    monkeypatch.setenv("GPTDESK_THREADS", "many")
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", "Привет", "--engine", "llamacpp", "--max-new-tokens", "2"], out, err)
    assert code == 2 and "GPTDESK_THREADS = 'many'" in err.getvalue()
